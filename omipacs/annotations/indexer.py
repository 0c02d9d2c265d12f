"""Index the marks inside every stored SR, in the transaction that stores it.

:class:`SrMarkIndexer` is an :class:`~omipacs.ingest.pipeline.InstanceIndexer`: the
ingest pipeline calls it for every newly stored instance, whatever door it came
through (C-STORE, STOW-RS, import, or the archive's own SRs from mark records). Non-SR
SOP classes cost one string comparison. An SR that cannot be read is logged and left
unindexed, never refused: the instance itself has been accepted.

The marks of an SR supersede the ``current`` marks on the same image by the same
observer (the latest stored SR wins; see :mod:`omipacs.annotations.models`). The first
marks of a client set her ``is_marked`` flag through the clinical layer's tally hook
(:func:`omipacs.clinical.tally.change_client`), in the same transaction, so the
"marked cases" statistics count her at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydicom import dcmread
from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from omipacs.annotations.archive import MarkArchive
from omipacs.annotations.models import Mark, MarkLesion
from omipacs.annotations.sr_read import SR_CLASSES, SrMark, SrReadError, read_marks
from omipacs.blobs.base import BlobStore
from omipacs.clinical.models import Client
from omipacs.clinical.tally import change_client, ensure_client
from omipacs.dicom.parse import ParsedFile
from omipacs.index.changes import ChangeKind, record_change
from omipacs.index.models import Instance, Patient, Series, Study
from omipacs.ingest.origin import OriginKind

log = logging.getLogger(__name__)

SOURCE_IMPORT = "import"
SOURCE_SR = "sr"


class SrMarkIndexer:
    """Reads the marks of each new SR into the ``mark`` table (module notes).

    Parameters
    ----------
    blobs
        The archive's blob store: a value the header parser left on disk (over 256 KB)
        is read from the stored blob if the spool file is gone.
    """

    def __init__(self, blobs: BlobStore | None = None) -> None:
        self.blobs = blobs

    def index(self, session: Session, parsed: ParsedFile, instance_pk: int) -> None:
        """Index the marks of ``parsed`` if it is an SR that can hold them."""
        if str(parsed.dataset.get("SOPClassUID", "")) not in SR_CLASSES:
            return
        try:
            marks = self._read(session, parsed, instance_pk)
        except SrReadError as exc:
            log.warning("SR instance %d: marks not indexed: %s", instance_pk, exc)
            return
        except Exception:
            log.exception("SR instance %d: marks not indexed", instance_pk)
            return
        if not marks:
            return
        try:
            with session.begin_nested():
                store_sr_marks(session, instance_pk, marks)
        except Exception:
            log.exception("SR instance %d: marks could not be stored", instance_pk)

    def _read(self, session: Session, parsed: ParsedFile, instance_pk: int) -> list[SrMark]:
        try:
            return read_marks(parsed.dataset)
        except SrReadError as exc:
            if self.blobs is None or not isinstance(exc.__cause__, OSError):
                raise
        key = session.scalar(select(Instance.blob_key).where(Instance.pk == instance_pk))
        if key is None:
            return []
        with self.blobs.open(key) as f:
            return read_marks(dcmread(f))


def mark_client(session: Session, client_id: str, patient_pk: int | None) -> None:
    """Set the client's ``is_marked`` (and move her tally row) unless already set."""
    if session.scalar(select(Client.is_marked).where(Client.client_id == client_id)):
        return
    client = ensure_client(session, client_id, patient_pk=patient_pk)
    change_client(session, client, is_marked=True)


def store_sr_marks(session: Session, sr_instance_pk: int, marks: Sequence[SrMark]) -> int:
    """Add the marks of a stored SR; returns how many were added.

    Idempotent: an SR whose marks are already indexed adds nothing.
    """
    if session.scalar(select(exists().where(Mark.sr_instance_pk == sr_instance_pk))):
        return 0
    sr_uid, source_kind, patient_pk, client_id, study_uid = session.execute(
        select(Instance.sop_instance_uid, Instance.source_kind, Patient.pk, Patient.patient_id,
               Study.study_instance_uid)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
        .where(Instance.pk == sr_instance_pk)
    ).one()
    source = SOURCE_IMPORT if source_kind == OriginKind.INTERNAL.value else SOURCE_SR
    images = {uid: pk for uid, pk in session.execute(
        select(Instance.sop_instance_uid, Instance.pk)
        .where(Instance.sop_instance_uid.in_({m.image_sop_uid for m in marks}))
    )}
    for sop_uid, reader in sorted({(m.image_sop_uid, m.reader) for m in marks}):
        session.execute(
            update(Mark)
            .where(Mark.sop_instance_uid == sop_uid, Mark.reader == reader,
                   Mark.current.is_(True), Mark.sr_instance_pk != sr_instance_pk)
            .values(current=False)
            .execution_options(synchronize_session=False)
        )
    for m in marks:
        session.add(Mark(
            omidb_mark_id=m.omidb_mark_id,
            instance_pk=images.get(m.image_sop_uid),
            sop_instance_uid=m.image_sop_uid,
            frame_no=m.frame,
            col_min=m.col_min,
            row_min=m.row_min,
            col_max=m.col_max,
            row_max=m.row_max,
            graphic_type=m.graphic_type[:16],
            conspicuity=m.conspicuity,
            mass_class=m.mass_class,
            benign_class=m.benign_class,
            **{feature: True for feature in m.features},
            finding_kind=m.finding_kind.value,
            finding_code=m.finding_code[:96],
            finding_meaning=m.finding_meaning,
            pathology=m.pathology,
            reader=m.reader[:64],
            tracking_uid=m.tracking_uid if len(m.tracking_uid) <= 64 else "",
            sr_instance_uid=sr_uid,
            sr_instance_pk=sr_instance_pk,
            source=source,
            current=True,
            extra=m.extra or None,
            lesions=[MarkLesion(nbss_lesion_no=n[:16]) for n in m.lesion_numbers],
        ))
    session.flush()
    mark_client(session, client_id, patient_pk)
    record_change(session, ChangeKind.MARKS_CHANGED, study_uid=study_uid,
                  sop_uid=sr_uid, client_id=client_id)
    return len(marks)


def make_current(session: Session, sr_instance_uid: str) -> int:
    """Make the marks of an SR the current ones again (a re-import of an older set).

    Returns the number of marks of that SR.
    """
    rows = session.execute(
        select(Mark.sop_instance_uid, Mark.reader).where(Mark.sr_instance_uid == sr_instance_uid)
    ).all()
    changed = 0
    for sop_uid, reader in sorted(set(rows)):
        result = session.execute(
            update(Mark)
            .where(Mark.sop_instance_uid == sop_uid, Mark.reader == reader,
                   Mark.current != (Mark.sr_instance_uid == sr_instance_uid))
            .values(current=Mark.sr_instance_uid == sr_instance_uid)
            .execution_options(synchronize_session=False)
        )
        changed += int(getattr(result, "rowcount", 0) or 0)
    if changed:
        where = session.execute(
            select(Study.study_instance_uid, Patient.patient_id)
            .join(Series, Series.study_pk == Study.pk)
            .join(Instance, Instance.series_pk == Series.pk)
            .join(Patient, Study.patient_pk == Patient.pk)
            .where(Instance.sop_instance_uid == sr_instance_uid)
        ).first()
        record_change(session, ChangeKind.MARKS_CHANGED,
                      study_uid=where[0] if where else None, sop_uid=sr_instance_uid,
                      client_id=where[1] if where else None)
    return len(rows)


def resolve_pending_marks(session: Session) -> int:
    """Join marks whose SR arrived before its image to the image, now stored."""
    image = select(Instance.pk).where(Instance.sop_instance_uid == Mark.sop_instance_uid)
    result = session.execute(
        update(Mark)
        .where(Mark.instance_pk.is_(None), image.exists())
        .values(instance_pk=image.scalar_subquery())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def index_stored_sr(services: MarkArchive, sr_instance_pk: int) -> int:
    """Read one stored SR from its blob and index its marks (if not indexed yet)."""
    with services.sessions() as session:
        key = session.scalar(select(Instance.blob_key).where(Instance.pk == sr_instance_pk))
    if key is None:
        return 0
    with services.blobs.open(key) as f:
        ds = dcmread(f)
    marks = read_marks(ds)
    if not marks:
        return 0
    with services.write_sessions.begin() as session:
        return store_sr_marks(session, sr_instance_pk, marks)


def backfill_marks(services: MarkArchive) -> int:
    """Index the marks of stored SRs that have none indexed, oldest first.

    For SRs stored before the indexer was installed, or to rebuild the ``mark`` table
    from the archive. Returns the number of marks added; unreadable SRs are logged.
    """
    with services.sessions() as session:
        pending = list(session.scalars(
            select(Instance.pk)
            .where(Instance.sop_class_uid.in_(list(SR_CLASSES)),
                   ~exists().where(Mark.sr_instance_pk == Instance.pk))
            .order_by(Instance.pk)
        ))
    added = 0
    for pk in pending:
        try:
            added += index_stored_sr(services, pk)
        except SrReadError as exc:
            log.warning("SR instance %d: marks not indexed: %s", pk, exc)
    return added
