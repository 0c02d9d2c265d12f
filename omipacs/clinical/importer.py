"""Import NBSS-style client records: de-identify, store, classify, link.

One client record is one unit of work: it is parsed and de-identified
(:mod:`omipacs.clinical.nbss`), then stored inside its own savepoint, so a record that
fails at any point leaves nothing behind while the records before it stay; with
``commit=True`` (the default) each record is also committed on its own, as a large
import of 470k clients must not be one transaction.

Re-importing a client replaces her clinical data (OMI-DB delivers the whole NBSS record
of a client each time): her episodes, events, lesions, findings, densities and features
are deleted and written again, her outcome recomputed and her studies relinked. An
identical record (same de-identified content) is recognised by its hash and skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from omipacs.clinical.classify import DEFAULT_WINDOWS, Windows, classify_client
from omipacs.clinical.linking import link_client
from omipacs.clinical.models import (
    Density,
    Episode,
    Event,
    ImageFeature,
    Lesion,
    LesionFinding,
    ScreenRead,
    Site,
)
from omipacs.clinical.nbss import DEFAULT_KEEP_FIELDS, ParsedClient, ParsedEpisode, parse_record
from omipacs.clinical.tally import change_client, dialect_insert, ensure_client
from omipacs.deid.keys import DeidKeys
from omipacs.deid.tombstones import is_withdrawn
from omipacs.errors import InvalidRecord, Withdrawn
from omipacs.index.changes import ChangeKind, lock_feed, record_change
from omipacs.index.models import Patient

log = logging.getLogger(__name__)

RecordStatus = Literal["created", "updated", "unchanged", "rejected"]


@dataclass(frozen=True)
class RecordResult:
    """What happened to one record."""

    index: int
    """Position of the record in the input (0-based)."""
    status: RecordStatus
    client_id: str = ""
    reason: str = ""
    """Why a record was rejected (never quotes a value from it)."""
    source: str = ""
    """Where the record came from (a file name), when known."""
    episodes: int = 0
    outcome: str = ""


@dataclass
class ImportReport:
    """The outcome of one import."""

    results: list[RecordResult] = field(default_factory=list)
    dropped_fields: int = 0
    """Free-text or identifying fields dropped, over all records."""

    def count(self, status: RecordStatus) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def created(self) -> int:
        return self.count("created")

    @property
    def updated(self) -> int:
        return self.count("updated")

    @property
    def unchanged(self) -> int:
        return self.count("unchanged")

    @property
    def rejected(self) -> int:
        return self.count("rejected")

    @property
    def ok(self) -> bool:
        """True when no record was rejected."""
        return self.rejected == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary and per-record results."""
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "dropped_fields": self.dropped_fields,
            "results": [asdict(r) for r in self.results],
        }


def import_records(
    session: Session,
    records: Iterable[Any],
    keys: DeidKeys,
    *,
    windows: Windows = DEFAULT_WINDOWS,
    keep_true_year: bool = False,
    commit: bool = True,
    sources: Sequence[str] | None = None,
    keep_fields: Iterable[str] = DEFAULT_KEEP_FIELDS,
) -> ImportReport:
    """Import client records (decoded NBSS JSON objects).

    Parameters
    ----------
    session
        A session that may write (on SQLite, one from ``Services.write_sessions``).
    records
        One object per client, in the layout of :mod:`omipacs.clinical.nbss`.
    keys
        The archive's de-identification keys, the ones its images are cleaned with.
    windows
        Prior and follow-up windows of the episode outcomes.
    keep_true_year
        Keep ``ActualEpisodeOpenedYear`` (only where the licence allows).
    commit
        Commit after each record; otherwise the caller commits (each record still
        has its own savepoint).
    sources
        Optional names of the records (file names) for the report.
    keep_fields
        Unmodelled fields kept (``[deid] clinical_fields``); others are dropped.
    """
    report = ImportReport()
    for index, record in enumerate(records):
        source = sources[index] if sources is not None and index < len(sources) else ""
        report.results.append(
            _import_one(session, index, record, keys, windows, keep_true_year, commit, source,
                        report, frozenset(keep_fields))
        )
    return report


def _import_one(
    session: Session,
    index: int,
    record: Any,
    keys: DeidKeys,
    windows: Windows,
    keep_true_year: bool,
    commit: bool,
    source: str,
    report: ImportReport,
    keep_fields: frozenset[str],
) -> RecordResult:
    try:
        parsed = parse_record(record, keys, keep_true_year=keep_true_year,
                              keep_fields=keep_fields)
    except InvalidRecord as exc:
        return RecordResult(index, "rejected", reason=exc.reason, source=source)
    try:
        with session.begin_nested():
            lock_feed(session)  # ordered against a withdrawal writing its tombstone
            if is_withdrawn(session, parsed.client_id, keys):
                log.warning("clinical record %d refused: its client has withdrawn", index)
                raise Withdrawn(WITHDRAWN_RECORD)
            status, outcome = store_client(session, parsed, windows)
        if commit:
            session.commit()
    except Withdrawn as exc:
        if commit:
            session.rollback()
        return RecordResult(index, "rejected", reason=exc.reason, source=source)
    except SQLAlchemyError as exc:
        if commit:
            session.rollback()
        log.warning("clinical record %d (client %s) not stored: %s", index, parsed.client_id,
                    type(exc).__name__)
        return RecordResult(index, "rejected", parsed.client_id,
                            "the record could not be stored (database error)", source)
    report.dropped_fields += parsed.dropped_fields
    return RecordResult(index, status, parsed.client_id, "", source, len(parsed.episodes),
                        outcome)


WITHDRAWN_RECORD = "the client of this record has withdrawn from the archive; not stored"


def _site_pk(session: Session, code: str) -> int | None:
    if not code:
        return None
    stmt = dialect_insert(session, Site.__table__).values(code=code)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["code"]))
    return session.scalar(select(Site.pk).where(Site.code == code))


_CLINICAL_ROWS = (Episode, Event, ScreenRead, Lesion, LesionFinding, Density, ImageFeature)


def clear_client(session: Session, client_pk: int) -> None:
    """Delete a client's clinical rows, children first (no reliance on FK cascades).

    The deletes bypass the ORM, so loaded objects of these tables are first removed from
    the session: a deleted row's primary key may be reused by the rows written next.
    """
    for obj in list(session.identity_map.values()):
        if isinstance(obj, _CLINICAL_ROWS) and obj in session:  # expunge cascades
            session.expunge(obj)
    episodes = select(Episode.pk).where(Episode.client_pk == client_pk)
    events = select(Event.pk).where(Event.episode_pk.in_(episodes))
    for stmt in (
        delete(LesionFinding).where(LesionFinding.event_pk.in_(events)),
        delete(ScreenRead).where(ScreenRead.event_pk.in_(events)),
        delete(Event).where(Event.episode_pk.in_(episodes)),
        delete(Lesion).where(Lesion.episode_pk.in_(episodes)),
        delete(Episode).where(Episode.client_pk == client_pk),
        delete(Density).where(Density.client_pk == client_pk),
        delete(ImageFeature).where(ImageFeature.client_pk == client_pk),
    ):
        session.execute(stmt.execution_options(synchronize_session=False))


def store_client(
    session: Session, parsed: ParsedClient, windows: Windows = DEFAULT_WINDOWS
) -> tuple[RecordStatus, str]:
    """Write one parsed client; returns (created/updated/unchanged, outcome)."""
    client = ensure_client(session, parsed.client_id)
    digest = parsed.sha256()
    if client.has_clinical and client.record_sha256 == digest:
        return "unchanged", client.outcome
    status: RecordStatus = "updated" if client.has_clinical else "created"
    clear_client(session, client.pk)
    session.expire(client, ["episodes"])
    classified = classify_client([e.facts() for e in parsed.episodes], windows)
    rows: dict[str, Episode] = {}
    for parsed_episode in parsed.episodes:
        rows[parsed_episode.nbss_id] = _add_episode(session, client.pk, parsed_episode)
    session.flush()
    for nbss_id, row in rows.items():
        result = classified.episodes[nbss_id]
        row.status = result.status.value if result.status else None
        row.outcome = result.outcome.outcome.value if result.outcome.outcome else None
        row.outcome_undefined = result.outcome.undefined.value if result.outcome.undefined else ""
        ref = result.outcome.ref_key
        row.outcome_ref_episode_pk = rows[ref].pk if ref in rows else None
        row.earliest_date = result.earliest_date
        row.is_post_op = result.post_op
    for density in parsed.densities:
        session.add(Density(
            client_pk=client.pk, study_instance_uid=density.study_uid,
            sop_instance_uid=density.sop_uid, side=density.side, algorithm=density.algorithm,
            measured_date=density.measured_date, vbd_pct=density.vbd_pct,
            fgv_cm3=density.fgv_cm3, breast_vol_cm3=density.breast_vol_cm3,
            density_grade=density.density_grade, raw=density.raw or None,
        ))
    for feature in parsed.features:
        session.add(ImageFeature(
            client_pk=client.pk, study_instance_uid=feature.study_uid,
            sop_instance_uid=feature.sop_uid, side=feature.side, category=feature.category,
            feature=feature.feature, value=feature.value, source=feature.source,
        ))
    client.linked = parsed.pseudonym.linked
    client.site_pk = _site_pk(session, parsed.site)
    client.ethnicity = parsed.ethnicity
    client.imd_decile = parsed.imd_decile
    client.high_risk = parsed.high_risk
    client.mutation_genes = list(parsed.mutation_genes) or None
    client.has_clinical = True
    client.status = classified.status.value if classified.status else None
    client.outcome_reason = classified.reason
    client.raw = parsed.raw or None
    client.record_sha256 = digest
    client.imported_at = datetime.now(UTC).replace(tzinfo=None)
    if client.patient_pk is None:
        client.patient_pk = session.scalar(
            select(Patient.pk).where(Patient.patient_id == client.client_id)
        )
    change_client(session, client, outcome=classified.outcome.value)
    session.flush()
    link_client(session, client)
    record_change(session, ChangeKind.CLINICAL_CHANGED, client_id=client.client_id)
    return status, client.outcome


def _add_episode(session: Session, client_pk: int, parsed: ParsedEpisode) -> Episode:
    episode = Episode(
        client_pk=client_pk,
        nbss_episode_id=parsed.nbss_id,
        type=parsed.type.value if parsed.type else None,
        action=parsed.action.value if parsed.action else None,
        opened_date=parsed.opened_date,
        closed_date=parsed.closed_date,
        is_closed=parsed.is_closed,
        ic_diagnosis_date=parsed.ic_diagnosis_date,
        age_years=parsed.age_years,
        actual_opened_year=parsed.actual_opened_year,
        end_points=list(parsed.end_points) or None,
        study_uids=list(parsed.study_uids) or None,
        raw=parsed.raw or None,
    )
    session.add(episode)
    lesions = {
        (lesion.side, lesion.lesion_no): Lesion(
            side=lesion.side,
            nbss_lesion_no=lesion.lesion_no,
            description=lesion.description.value if lesion.description else None,
            position=lesion.position,
            cyst_aspirated=lesion.cyst_aspirated,
            raw=lesion.raw or None,
        )
        for lesion in parsed.lesions
    }
    episode.lesions = list(lesions.values())
    for parsed_event in parsed.events:
        event = Event(
            kind=parsed_event.kind.value,
            seq=parsed_event.seq,
            date_performed=parsed_event.date_performed,
            dates=[d.isoformat() for d in parsed_event.dates] or None,
            left_opinion=parsed_event.left_opinion.value if parsed_event.left_opinion else None,
            right_opinion=(
                parsed_event.right_opinion.value if parsed_event.right_opinion else None
            ),
            diagnostic_set_outcome=parsed_event.diagnostic_set_outcome,
            raw=parsed_event.raw or None,
        )
        event.reads = [
            ScreenRead(
                side=read.side, date_taken=read.date_taken, opinion=read.opinion,
                equipment_make_model=read.equipment_make_model,
                age_at_screening=read.age_at_screening, readers=list(read.readers) or None,
                raw=read.raw or None,
            )
            for read in parsed_event.reads
        ]
        event.findings = [
            LesionFinding(lesion=lesions[(f.side, f.lesion_no)], raw=f.raw or None,
                          **_finding_values(f.values))
            for f in parsed_event.findings
        ]
        episode.events.append(event)
    return episode


def _finding_values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


# -- files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRecord:
    """One record read from a file, or why it could not be read."""

    source: str
    record: Any = None
    error: str = ""


def read_record_files(paths: Iterable[Path]) -> Iterator[SourceRecord]:
    """Records from files and folders, in a stable order.

    A folder is searched for ``NBSS_*.json`` / ``nbss_*.json`` (OMI-DB's
    ``DATA/<client>/NBSS_<client>.json``). A file holds one record (a JSON object),
    several (a JSON array), or one per line (JSON Lines, ``.jsonl``).
    """
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*.json") if p.name.lower().startswith("nbss_")
            )
            yield from read_record_files(found)
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            yield SourceRecord(path.name, error=f"cannot read the file: {type(exc).__name__}")
            continue
        if path.suffix.lower() == ".jsonl":
            for line_no, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    yield _decode(line, f"{path.name}:{line_no}")
            continue
        decoded = _decode(text, path.name)
        if decoded.error or not isinstance(decoded.record, list):
            yield decoded
        else:
            for n, item in enumerate(decoded.record, start=1):
                yield SourceRecord(f"{path.name}[{n}]", item)


def _decode(text: str, source: str) -> SourceRecord:
    try:
        return SourceRecord(source, json.loads(text))
    except json.JSONDecodeError as exc:
        return SourceRecord(source, error=f"not valid JSON (line {exc.lineno})")


def import_paths(
    session: Session, paths: Iterable[Path], keys: DeidKeys, **options: Any
) -> ImportReport:
    """``omipacs clinical import PATH...``: read the files and import every record.

    Unreadable files are reported as rejected records; ``options`` go to
    :func:`import_records`.
    """
    items = list(read_record_files(paths))
    good = [i for i in items if not i.error]
    report = import_records(session, [i.record for i in good], keys,
                            sources=[i.source for i in good], **options)
    offset = len(good)
    for n, item in enumerate(i for i in items if i.error):
        report.results.append(RecordResult(offset + n, "rejected", reason=item.error,
                                           source=item.source))
    return report
