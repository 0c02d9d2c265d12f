"""Import OMI-DB mark records: check them against the index, store them as SRs.

For each image (and reader) with valid marks, one Measurement Report is built
(:mod:`omipacs.annotations.sr_write`) and stored through the ingest pipeline as an
instance of the image's study, in its own series, exactly like an SR a viewer sends;
the pipeline's :class:`~omipacs.annotations.indexer.SrMarkIndexer` then indexes its
marks in the same transaction. The mark table is thus always what the stored SRs say.

Re-importing the same marks builds a byte-identical SR, which the pipeline answers
"already stored": nothing new is written, and that SR's marks become the current ones
again if another set had replaced them. A changed set of marks for an image is a new SR
with new UIDs; it supersedes the previous one in queries, and both stay in the archive.

Records are refused one by one, with the reason: malformed values
(:func:`~omipacs.annotations.records.parse_mark_record`), an image the archive does
not hold or that is not in the named study and series, a box outside the image's
Columns x Rows, a frame the image does not have (or none for a multi-frame image), and
a repeated mark.
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from omipacs.annotations.archive import MarkArchive
from omipacs.annotations.indexer import index_stored_sr, make_current
from omipacs.annotations.lesions import pathology_for_mark
from omipacs.annotations.models import Mark
from omipacs.annotations.records import MarkInput, parse_mark_record
from omipacs.annotations.sr_write import PlannedMark, build_marks_sr, write_sr
from omipacs.blobs.base import BlobStore
from omipacs.clinical.nbss import reader_pseudonym
from omipacs.deid.keys import DeidKeys
from omipacs.deid.pseudonyms import remap_uid
from omipacs.errors import DuplicateInstance, InvalidRecord, OmipacsError
from omipacs.index.models import Instance, InstanceMetadata, Series, Study
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.ingest.result import IngestOutcome

log = logging.getLogger(__name__)

ORIGIN: Final = IngestOrigin(OriginKind.INTERNAL, ae_title="OMIPACS", deidentify=False)
"""Our SRs are made against archive UIDs: they must not be de-identified again."""
_CHUNK: Final = 500
KEYS_EXTRA: Final = "deid.keys"
"""Where ``open_archive`` leaves the archive's de-identification keys (``Services.extras``)."""


@dataclass(frozen=True)
class MarkRejection:
    """A record that was not imported."""

    index: int
    """Position of the record in the input (0-based)."""
    reason: str
    mark_id: str | None = None


@dataclass(frozen=True)
class StoredSr:
    """One SR of the import."""

    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    image_sop_instance_uid: str
    reader: str
    marks: int
    outcome: str
    """``stored`` (new SR) or ``already_stored`` (the same marks were imported before)."""


@dataclass
class MarksImportReport:
    """What :func:`import_marks` did."""

    accepted: int = 0
    """Records stored (in a new or an existing SR)."""
    rejected: list[MarkRejection] = field(default_factory=list)
    srs: list[StoredSr] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected

    @property
    def stored(self) -> int:
        return sum(1 for s in self.srs if s.outcome == IngestOutcome.STORED.value)

    @property
    def already_stored(self) -> int:
        return sum(1 for s in self.srs if s.outcome == IngestOutcome.ALREADY_STORED.value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with every rejection and SR."""
        return {
            "accepted": self.accepted,
            "rejected": [asdict(r) for r in self.rejected],
            "srs_stored": self.stored,
            "srs_already_stored": self.already_stored,
            "srs": [asdict(s) for s in self.srs],
        }


@dataclass(frozen=True)
class ImageFacts:
    """What the importer needs to know about a marked image, from the index."""

    pk: int
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    rows: int | None
    columns: int | None
    frames: int
    laterality: str
    blob_key: str
    header_length: int


def find_images(session: Session, sop_uids: Iterable[str]) -> dict[str, ImageFacts]:
    """Index facts of the named instances (those the archive holds)."""
    wanted = sorted(set(sop_uids))
    found: dict[str, ImageFacts] = {}
    for start in range(0, len(wanted), _CHUNK):
        rows = session.execute(
            select(Instance.pk, Instance.sop_instance_uid, Series.series_instance_uid,
                   Study.study_instance_uid, Instance.rows, Instance.columns,
                   Instance.number_of_frames, Instance.laterality, Instance.blob_key,
                   InstanceMetadata.header_length)
            .join(Series, Instance.series_pk == Series.pk)
            .join(Study, Series.study_pk == Study.pk)
            .join(InstanceMetadata, InstanceMetadata.instance_pk == Instance.pk)
            .where(Instance.sop_instance_uid.in_(wanted[start : start + _CHUNK]))
        ).all()
        for pk, sop, series, study, rows_, cols, frames, lat, key, length in rows:
            found[sop] = ImageFacts(pk, sop, series, study, rows_, cols, frames or 1,
                                    lat or "", key, length)
    return found


def check_against_image(mark: MarkInput, image: ImageFacts | None) -> MarkInput:
    """The mark, with its frame normalised, if it fits the image; else InvalidRecord."""
    if image is None:
        raise InvalidRecord("mark record: no such image in the archive")
    if (mark.study_uid, mark.series_uid) != (image.study_instance_uid,
                                             image.series_instance_uid):
        raise InvalidRecord("mark record: the image is not in the named study and series")
    if not image.rows or not image.columns:
        raise InvalidRecord("mark record: the instance is not an image (no Rows/Columns)")
    if mark.col_max > image.columns or mark.row_max > image.rows:
        raise InvalidRecord(
            f"mark record: the box lies outside the image ({image.columns} columns x "
            f"{image.rows} rows)"
        )
    frame = mark.frame
    if image.frames > 1 and frame is None:
        raise InvalidRecord("mark record: a mark on a multi-frame image must name its frame")
    if frame is not None and frame > image.frames:
        raise InvalidRecord(f"mark record: the image has no frame {frame}")
    if image.frames == 1 and frame == 1:
        frame = None  # the image itself: no Referenced Frame Number
    return mark if frame == mark.frame else replace(mark, frame=frame)


def read_header(blobs: BlobStore, image: ImageFacts) -> Dataset:
    """The stored header of an image (its first bytes, without pixel data)."""
    with blobs.open(image.blob_key) as f:
        prefix = f.read(image.header_length)
    return dcmread(io.BytesIO(prefix), stop_before_pixels=True)


def _parse_all(
    records: Iterable[Any], keys: DeidKeys | None, source_uids: bool,
    report: MarksImportReport,
) -> list[tuple[int, MarkInput]]:
    if source_uids and keys is None:
        raise InvalidRecord("mark records with source UIDs need the archive's keys")
    uid_map = (lambda uid: remap_uid(keys, uid)) if source_uids and keys else None
    reader_map = (lambda code: reader_pseudonym(keys, code)) if keys else None
    parsed: list[tuple[int, MarkInput]] = []
    for index, record in enumerate(records):
        try:
            parsed.append((index, parse_mark_record(record, uid_map=uid_map,
                                                    reader_map=reader_map)))
        except InvalidRecord as exc:
            mark_id = record.get("MarkID") if isinstance(record, dict) else None
            report.rejected.append(MarkRejection(index, exc.reason, _text(mark_id)))
    return parsed


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:32]


def _check_all(
    session: Session, parsed: list[tuple[int, MarkInput]], report: MarksImportReport
) -> tuple[dict[str, ImageFacts], dict[tuple[str, str], list[tuple[int, MarkInput]]]]:
    images = find_images(session, (m.sop_uid for _, m in parsed))
    groups: dict[tuple[str, str], list[tuple[int, MarkInput]]] = defaultdict(list)
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for index, mark in parsed:
        try:
            checked = check_against_image(mark, images.get(mark.sop_uid))
        except InvalidRecord as exc:
            report.rejected.append(MarkRejection(index, exc.reason, mark.mark_id))
            continue
        group = (checked.sop_uid, checked.reader)
        identity = (f"id:{checked.mark_id}" if checked.mark_id is not None
                    else f"mark:{checked.canonical()!r}")
        if identity in seen[group]:
            report.rejected.append(MarkRejection(
                index, "mark record: the same mark (MarkID) appears twice for this image",
                checked.mark_id,
            ))
            continue
        seen[group].add(identity)
        groups[group].append((index, checked))
    return images, groups


def import_marks(
    services: MarkArchive,
    records: Iterable[Any],
    *,
    keys: DeidKeys | None = None,
    source_uids: bool = False,
) -> MarksImportReport:
    """Import OMI-DB mark records (see the module notes).

    Parameters
    ----------
    services
        The archive. Its pipeline normally has the
        :class:`~omipacs.annotations.indexer.SrMarkIndexer` (``open_archive`` adds it);
        without it the SRs are indexed here, after they are stored.
    records
        Decoded JSON objects, one per mark (:mod:`omipacs.annotations.records`).
    keys
        The archive's de-identification keys (by default those ``open_archive`` put in
        ``services.extras``): reader codes are replaced by their pseudonyms, and with
        ``source_uids`` the image UIDs are remapped.
    source_uids
        The records name the images by the UIDs the site sent (an IMAGEDB file);
        otherwise by the archive's (de-identified) UIDs.
    """
    if keys is None:
        found = services.extras.get(KEYS_EXTRA)
        keys = found if isinstance(found, DeidKeys) else None
    report = MarksImportReport()
    parsed = _parse_all(records, keys, source_uids, report)
    with services.sessions() as session:
        images, groups = _check_all(session, parsed, report)
        planned: list[tuple[ImageFacts, list[tuple[int, PlannedMark]]]] = []
        for (sop_uid, _reader), members in sorted(groups.items()):
            image = images[sop_uid]
            planned.append((image, [
                (index, PlannedMark(mark, pathology_for_mark(
                    session, image.pk, image.laterality, mark.lesion_numbers)))
                for index, mark in members
            ]))
    for image, sr_marks in planned:
        _store_sr(services, image, sr_marks, report)
    report.rejected.sort(key=lambda r: r.index)
    return report


def _store_sr(
    services: MarkArchive,
    image: ImageFacts,
    members: Sequence[tuple[int, PlannedMark]],
    report: MarksImportReport,
) -> None:
    marks = [m for _, m in members]
    try:
        sr = build_marks_sr(read_header(services.blobs, image), marks)
    except (OSError, ValueError) as exc:
        _reject(report, members, type(exc).__name__)
        return
    path = services.spool.new_path()
    try:
        write_sr(sr, path)
    except OSError as exc:
        path.unlink(missing_ok=True)
        _reject(report, members, type(exc).__name__)
        return
    try:
        outcome = services.pipeline.ingest_spooled(path, ORIGIN).outcome
    except DuplicateInstance:
        # Same UID means same marks (the UID is a hash of them); only the encoding
        # libraries differ. The stored copy stands.
        log.warning("SR for image %s stored with other bytes; kept", image.sop_instance_uid)
        outcome = IngestOutcome.ALREADY_STORED
    except OmipacsError as exc:
        _reject(report, members, exc.reason)
        return
    sop_uid = str(sr.SOPInstanceUID)
    _ensure_current(services, sop_uid)
    report.accepted += len(marks)
    report.srs.append(StoredSr(
        sop_instance_uid=sop_uid,
        series_instance_uid=str(sr.SeriesInstanceUID),
        study_instance_uid=str(sr.StudyInstanceUID),
        image_sop_instance_uid=image.sop_instance_uid,
        reader=marks[0].mark.reader,
        marks=len(marks),
        outcome=outcome.value,
    ))


def _reject(
    report: MarksImportReport, members: Sequence[tuple[int, PlannedMark]], reason: str
) -> None:
    log.warning("SR of %d marks not stored: %s", len(members), reason)
    for index, planned in members:
        report.rejected.append(MarkRejection(
            index, f"mark record: the SR could not be stored ({reason})", planned.mark.mark_id
        ))


def _ensure_current(services: MarkArchive, sr_uid: str) -> None:
    """Make the SR's marks the current ones: after an "already stored" answer (an older
    set imported again), and as a guard, indexing it if the pipeline did not."""
    with services.sessions() as session:
        row = session.execute(
            select(Instance.pk, select(Mark.pk).where(Mark.sr_instance_uid == sr_uid)
                   .limit(1).scalar_subquery())
            .where(Instance.sop_instance_uid == sr_uid)
        ).first()
    if row is None:
        return
    sr_pk, any_mark = row
    if any_mark is None:
        index_stored_sr(services, sr_pk)
    with services.write_sessions.begin() as session:
        make_current(session, sr_uid)
