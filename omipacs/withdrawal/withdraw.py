"""Withdrawal: a client's data leave the archive, and stay out.

``omipacs withdraw CLIENT_ID`` (or ``--nhs-number``) and ``POST /api/v1/withdrawals``
call :func:`withdraw`, which works in this order so that a run killed at any point is
completed by the next one and leaves no trace of her:

1. **Tombstone** (one transaction, under the change feed's lock): the keyed hashes of
   her client ID and source identity (:mod:`omipacs.deid.tombstones`); her
   events leave the change feed and one ``client-withdrawn`` event carrying only the
   keyed client hash takes their place. From this commit on every door refuses her
   data, so nothing new of hers can arrive while the rest is removed.
2. **Held files**: quarantine entries and spool files whose header names her (parsed
   and pseudonymised the way ingest would; pending entries by her study keys).
3. **Instances**, in batches: the blobs first, then the index rows (instance, metadata,
   marks read from her SRs). A crash in between leaves index rows whose blobs are gone,
   which the next run finds and removes; never a blob nobody can trace back to her.
   Then her series, studies and patient row.
4. **Clinical records and marks**: her client row and everything hanging off it, and
   the tallies the brochure's tables count.
5. **Cohorts**: her members leave every saved version (their member hash is
   recomputed), and each cohort whose newest version held her gets a new version
   without her (docs/withdrawal.md).
6. **Identity map**: her entry, sites and study bindings.
7. The tombstone is marked complete.

On SQLite, deletes overwrite the freed bytes (``secure_delete``) and the write-ahead log
is checkpointed and truncated at the end, so her UIDs are not left in free pages of the
index file. Nothing here logs an identifier; the audit event names the keyed hash only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pydicom import dcmread
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from omipacs.access.audit import AuditRecord
from omipacs.annotations.models import Mark
from omipacs.clinical.importer import clear_client
from omipacs.clinical.models import Client, StudyLink
from omipacs.clinical.tally import add_to_tally, key_of
from omipacs.deid.engine import Deidentifier
from omipacs.deid.identity import IdentityMap, open_identity_map
from omipacs.deid.keys import DeidKeys
from omipacs.deid.nhs import normalise_nhs_number
from omipacs.deid.pseudonyms import LINKED_PREFIX, UNLINKED_PREFIX, client_pseudonym
from omipacs.deid.tombstones import client_key, source_key
from omipacs.errors import BadRequest, ConfigurationError, NotFound
from omipacs.index.changes import ChangeKind, lock_feed, record_change
from omipacs.index.db import checkpoint
from omipacs.index.models import (
    ChangeEvent,
    Instance,
    InstanceMetadata,
    Patient,
    Series,
    Study,
    Withdrawal,
)
from omipacs.ingest.quarantine import Quarantine
from omipacs.services import Services
from omipacs.withdrawal.cohorts import drop_from_cohorts

log = logging.getLogger(__name__)

BATCH: Final = 200
"""Instances removed per transaction."""

_CLIENT_ID: Final = re.compile(rf"^(?:{LINKED_PREFIX}|{UNLINKED_PREFIX})[A-Z2-7]{{12}}$")


@dataclass(frozen=True)
class Target:
    """Who is withdrawn: her client ID and, when known, the identity map's key."""

    client_id: str
    key_hash: str = ""

    def __repr__(self) -> str:  # never print the ID in a traceback or log line
        return "Target(...)"


@dataclass
class WithdrawalReport:
    """What one run removed (counts only: nothing that names her but the keyed hash)."""

    client_hash: str
    already_complete: bool = False
    instances: int = 0
    clinical_record: bool = False
    marks: int = 0
    cohort_versions_amended: int = 0
    cohort_versions_added: int = 0
    quarantine_entries: int = 0
    spool_files: int = 0
    identity_entry: bool = False
    feed_events_removed: int = 0
    studies: list[str] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON object without her UIDs."""
        doc = asdict(self)
        doc.pop("studies")
        return doc


def target_for(
    keys: DeidKeys,
    identity: IdentityMap | None,
    *,
    client_id: str | None = None,
    nhs_number: str | None = None,
) -> Target:
    """Whom a withdrawal request names.

    An NHS number is checked (modulus 11) and turned into her client ID and identity map
    key with the archive's key, exactly as ingest does; it is not kept. A client ID must
    have the archive's form; the identity map gives its key when it knows her.

    Raises
    ------
    BadRequest
        Neither or both given, an NHS number that fails its check digit, or a client ID
        that is not one.
    """
    if (client_id is None) == (nhs_number is None):
        raise BadRequest("give either a client ID or an NHS number")
    if nhs_number is not None:
        number = normalise_nhs_number(nhs_number)
        if number is None:
            raise BadRequest("not a valid NHS number (10 digits with a modulus 11 check digit)")
        pseudonym = client_pseudonym(keys, number, "", "")
        return Target(pseudonym.client_id, pseudonym.key_hash)
    assert client_id is not None
    cid = client_id.strip().upper()
    if not _CLIENT_ID.match(cid):
        raise BadRequest("not a client ID (OPTM or UNLK and 12 base32 characters)")
    record = identity.lookup_client(cid) if identity is not None else None
    return Target(cid, record.key_hash if record is not None else "")


def _is_known(session: Session, keys: DeidKeys, target: Target, identity: IdentityMap | None
              ) -> bool:
    if target.key_hash or session.scalar(
        select(Withdrawal.pk).where(Withdrawal.client_hash == client_key(keys, target.client_id))
    ):
        return True
    if identity is not None and identity.lookup_client(target.client_id) is not None:
        return True
    return any(
        session.scalar(select(model.pk).where(column == target.client_id))
        for model, column in ((Patient, Patient.patient_id), (Client, Client.client_id))
    )


def withdraw(
    services: Services,
    keys: DeidKeys,
    identity: IdentityMap | None,
    target: Target,
    *,
    quarantine: Quarantine | None = None,
    batch: int = BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> WithdrawalReport:
    """Remove everything of ``target`` and keep the tombstone (see the module notes).

    Idempotent: a second run finds nothing left and only re-checks.

    Raises
    ------
    NotFound
        A client ID the archive has never heard of (an NHS number is always accepted:
        she may opt out before any of her data arrive).
    """
    chash = client_key(keys, target.client_id)
    report = WithdrawalReport(client_hash=chash)
    with services.sessions() as session:
        if not _is_known(session, keys, target, identity):
            raise NotFound("no such client")
        report.studies = list(session.scalars(
            select(Study.study_instance_uid).join(Patient, Study.patient_pk == Patient.pk)
            .where(Patient.patient_id == target.client_id)
        ))
        done = session.scalar(select(Withdrawal.completed_at).where(
            Withdrawal.client_hash == chash))
    report.already_complete = done is not None
    study_keys = (identity.study_keys_of(target.key_hash, target.client_id)
                  if identity is not None else [])
    _tombstone(services, keys, target, report)
    _held(services, keys, target, set(study_keys), quarantine, report)
    _instances(services, target, batch, report, on_progress)
    with services.write_sessions.begin() as session:
        _secure(session)
        _clinical(session, target.client_id, report)
        report.cohort_versions_amended, report.cohort_versions_added = drop_from_cohorts(
            session, target.client_id)
        # Events written meanwhile by a change that was already in flight.
        report.feed_events_removed += _drop_events(session, target.client_id, report.studies)
    if identity is not None:
        report.identity_entry = identity.forget(target.key_hash, target.client_id)
    with services.write_sessions.begin() as session:
        session.execute(update(Withdrawal).where(Withdrawal.client_hash == chash)
                        .values(completed_at=_now()))
    _checkpoint(services)
    log.info("withdrawal %s… complete: %d instances removed", chash[:12], report.instances)
    return report


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _secure(session: Session) -> None:
    """SQLite: overwrite what this connection deletes (no copy left in free pages)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("PRAGMA secure_delete=ON"))


def _tombstone(services: Services, keys: DeidKeys, target: Target,
               report: WithdrawalReport) -> None:
    chash = report.client_hash
    shash = source_key(keys, target.key_hash) if target.key_hash else None
    with services.write_sessions.begin() as session:
        _secure(session)
        lock_feed(session)
        row = session.scalar(select(Withdrawal).where(Withdrawal.client_hash == chash))
        if row is None:
            session.add(Withdrawal(client_hash=chash, source_hash=shash, withdrawn_at=_now()))
        elif row.source_hash is None and shash is not None:
            row.source_hash = shash
        session.flush()
        report.feed_events_removed += _drop_events(session, target.client_id, report.studies)
        announced = session.scalar(select(ChangeEvent.seq).where(
            ChangeEvent.kind == ChangeKind.CLIENT_WITHDRAWN.value,
            ChangeEvent.client_hash == chash))
        if announced is None:
            record_change(session, ChangeKind.CLIENT_WITHDRAWN, client_hash=chash)


def _drop_events(session: Session, client_id: str, studies: list[str]) -> int:
    removed = _count(session.execute(
        delete(ChangeEvent).where(ChangeEvent.client_id == client_id)
        .execution_options(synchronize_session=False)
    ))
    for start in range(0, len(studies), 500):
        removed += _count(session.execute(
            delete(ChangeEvent).where(ChangeEvent.study_instance_uid.in_(
                studies[start:start + 500])).execution_options(synchronize_session=False)
        ))
    return removed


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _names_her(path: Path, keys: DeidKeys, target: Target, site: str, nhs_in_id: bool,
               deidentified: bool) -> bool:
    """Whether a held (identifiable) file's header belongs to ``target``."""
    try:
        header = dcmread(path, stop_before_pixels=True, force=True)
        patient_id = str(header.get("PatientID", "") or "").strip()
    except Exception:  # noqa: BLE001 - unreadable files are not hers as far as we know
        return False
    if patient_id == target.client_id:
        return True  # sent already pseudonymised (a trusted sender)
    if not deidentified:
        return False
    try:
        own = Deidentifier(keys).client_for(header, site=site,
                                            patient_id_is_nhs_number=nhs_in_id)
    except Exception:  # noqa: BLE001
        return False
    return own.client_id == target.client_id or (
        bool(target.key_hash) and own.key_hash == target.key_hash)


def _held(services: Services, keys: DeidKeys, target: Target, study_keys: set[str],
          quarantine: Quarantine | None, report: WithdrawalReport) -> None:
    if quarantine is not None:
        for entry in quarantine.entries():
            path = quarantine.dir / f"{entry.id}.dcm"
            if (study_keys & set(entry.pending_keys)) or _names_her(
                path, keys, target, entry.source_ae_title, entry.patient_id_is_nhs_number,
                entry.deidentify,
            ):
                quarantine.discard(entry.id)
                report.quarantine_entries += 1
    for path in sorted(services.spool.base.rglob("*")):
        if path.is_file() and path.suffix != ".lock" and _names_her(
            path, keys, target, "", False, True
        ):
            path.unlink(missing_ok=True)
            report.spool_files += 1


def _instances(services: Services, target: Target, batch: int, report: WithdrawalReport,
               on_progress: Callable[[int], None] | None) -> None:
    mine = (
        select(Instance.pk, Instance.blob_key, Instance.sop_instance_uid)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
        .where(Patient.patient_id == target.client_id)
        .order_by(Instance.pk)
        .limit(batch)
    )
    while True:
        with services.sessions() as session:
            rows = session.execute(mine).all()
        if not rows:
            break
        for _, key, _ in rows:
            services.blobs.delete(key)  # bytes first: a crash leaves rows, found next run
        pks = [r[0] for r in rows]
        uids = [r[2] for r in rows]
        with services.write_sessions.begin() as session:
            _secure(session)
            report.marks += _count(session.execute(
                delete(Mark).where(Mark.instance_pk.in_(pks) | Mark.sr_instance_pk.in_(pks)
                                   | Mark.sop_instance_uid.in_(uids))
                .execution_options(synchronize_session=False)))
            session.execute(delete(InstanceMetadata).where(InstanceMetadata.instance_pk.in_(pks)))
            session.execute(delete(Instance).where(Instance.pk.in_(pks)))
        report.instances += len(rows)
        if on_progress is not None:
            on_progress(report.instances)
    with services.write_sessions.begin() as session:
        _secure(session)
        studies = select(Study.pk).join(Patient, Study.patient_pk == Patient.pk).where(
            Patient.patient_id == target.client_id)
        study_pks = list(session.scalars(studies))
        if study_pks:
            session.execute(delete(StudyLink).where(StudyLink.study_pk.in_(study_pks)))
            session.execute(delete(Series).where(Series.study_pk.in_(study_pks)))
            session.execute(delete(Study).where(Study.pk.in_(study_pks)))
        session.execute(update(Client).where(Client.client_id == target.client_id)
                        .values(patient_pk=None))
        session.execute(delete(Patient).where(Patient.patient_id == target.client_id))


def _clinical(session: Session, client_id: str, report: WithdrawalReport) -> None:
    client = session.scalar(select(Client).where(Client.client_id == client_id))
    if client is None:
        return
    report.clinical_record = bool(client.has_clinical)
    clear_client(session, client.pk)
    add_to_tally(session, {key_of(client): -1})
    session.delete(client)
    session.flush()


def _checkpoint(services: Services) -> None:
    """SQLite: no old page of hers left in the write-ahead log."""
    if not checkpoint(services.engine):
        log.warning("the index's write-ahead log could not be truncated now (readers "
                    "active); SQLite truncates it at a later checkpoint")


def run_withdrawal(
    services: Services,
    *,
    client_id: str | None = None,
    nhs_number: str | None = None,
    actor: str = "local",
    door: str = "cli",
    remote: str = "",
    on_progress: Callable[[int], None] | None = None,
) -> WithdrawalReport:
    """Withdraw the client named by ``client_id`` or ``nhs_number``, and audit it.

    The audit event names the keyed client hash only.

    Raises
    ------
    ConfigurationError
        The archive has no de-identification key (the tombstone is keyed with it).
    """
    keys = services.extras.get("deid.keys")
    if not isinstance(keys, DeidKeys):
        raise ConfigurationError("withdrawal needs the de-identification key")
    cleaner = services.pipeline.cleaner
    identity = cleaner.identity if isinstance(cleaner, Deidentifier) else None
    own = None
    if identity is None and services.settings.deid.enabled:
        identity = own = open_identity_map(services.settings)
    try:
        target = target_for(keys, identity, client_id=client_id, nhs_number=nhs_number)
        report = withdraw(services, keys, identity, target,
                          quarantine=Quarantine(services.settings.storage.root),
                          on_progress=on_progress)
    finally:
        if own is not None:
            own.close()
    if services.audit is not None:
        services.audit.record(AuditRecord(
            at=_now(), user_email=actor, token_prefix="", licence_pk=None, remote=remote,
            door=door, action="withdraw", resource=f"withdrawal:{report.client_hash}",
            outcome="allowed", reason="already complete" if report.already_complete else "",
        ))
    return report


def list_withdrawals(session: Session) -> list[dict[str, Any]]:
    """The tombstones (keyed hashes and times), oldest first."""
    return [
        {"client_hash": w.client_hash, "withdrawn_at": w.withdrawn_at.isoformat() + "Z",
         "completed_at": w.completed_at.isoformat() + "Z" if w.completed_at else None}
        for w in session.scalars(select(Withdrawal).order_by(Withdrawal.pk))
    ]
