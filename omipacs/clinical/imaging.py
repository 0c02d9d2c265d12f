"""Fold newly stored images into the clinical layer: clients, 2D/3D flags, study links.

The ingest pipeline knows nothing of clinical data, so the clinical layer follows the
index instead: :func:`sync_imaging` reads the instances stored since its last run (a
watermark on ``instance.pk``, an index range scan however large the archive), makes
sure every patient has a ``client`` row joined to it, sets her 2D and 3D flags, and
links her studies to her episodes. It is idempotent and cheap when nothing is new; the
server should run it periodically and after imports (the statistics are exact even
between runs: :func:`pending_imaging` gives what it has not folded in yet).

2D is Digital Mammography X-Ray (For Presentation or For Processing), 3D is Breast
Tomosynthesis (PS3.4 Annex B; :mod:`omipacs.dicom.uids`).

On PostgreSQL, instance rows are committed out of ``pk`` order by concurrent senders,
so the watermark only advances past instances received more than ``margin`` ago;
younger ones are read again next time (setting a flag twice changes nothing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Exists, case, func, select, update
from sqlalchemy.orm import Session

from omipacs.clinical.linking import link_client
from omipacs.clinical.models import Client, ClinicalState, StudyLink
from omipacs.clinical.tally import (
    WATERMARK_KEY,
    change_client,
    dialect_insert,
    ensure_client,
)
from omipacs.clinical.tally import rebuild_tally as _rebuild_tally
from omipacs.dicom.uids import BREAST_TOMOSYNTHESIS, MG_FOR_PRESENTATION, MG_FOR_PROCESSING
from omipacs.index.models import Instance, Patient, Series, Study

log = logging.getLogger(__name__)

TWO_D_SOP_CLASSES: Final = (MG_FOR_PRESENTATION, MG_FOR_PROCESSING)
THREE_D_SOP_CLASSES: Final = (BREAST_TOMOSYNTHESIS,)
DEFAULT_MARGIN: Final = timedelta(minutes=10)
BATCH: Final = 50_000


@dataclass(frozen=True)
class PendingPatient:
    """What instances beyond the watermark say about one patient."""

    patient_pk: int
    client_id: str
    has_2d: bool
    has_3d: bool


@dataclass(frozen=True)
class SyncReport:
    """What :func:`sync_imaging` did."""

    instances: int
    clients_created: int
    clients_changed: int
    studies_linked: int
    watermark: int


def _flag(classes: tuple[str, ...]) -> ColumnElement[Any]:
    return func.max(case((Instance.sop_class_uid.in_(classes), 1), else_=0))


def pending_imaging(
    session: Session, after_pk: int, upto_pk: int | None = None
) -> list[PendingPatient]:
    """Per patient, the 2D/3D flags of instances with ``after_pk < pk <= upto_pk``."""
    stmt = (
        select(
            Patient.pk,
            Patient.patient_id,
            _flag(TWO_D_SOP_CLASSES),
            _flag(THREE_D_SOP_CLASSES),
        )
        .select_from(Instance)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
        .where(Instance.pk > after_pk)
        .group_by(Patient.pk, Patient.patient_id)
    )
    if upto_pk is not None:
        stmt = stmt.where(Instance.pk <= upto_pk)
    return [
        PendingPatient(int(pk), str(pid), bool(two), bool(three))
        for pk, pid, two, three in session.execute(stmt)
    ]


def _patients_with_unlinked_studies(session: Session, after_pk: int, upto_pk: int) -> set[int]:
    """Patients of instances in the range that have a study without a ``study_link``."""
    return set(session.scalars(
        select(Study.patient_pk)
        .join(Series, Series.study_pk == Study.pk)
        .join(Instance, Instance.series_pk == Series.pk)
        .where(
            Instance.pk > after_pk,
            Instance.pk <= upto_pk,
            ~select(StudyLink.study_pk).where(StudyLink.study_pk == Study.pk).exists(),
        )
        .distinct()
    ))


def _lock_watermark(session: Session) -> int:
    stmt = dialect_insert(session, ClinicalState.__table__).values(key=WATERMARK_KEY, value=0)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
    return int(
        session.scalars(
            select(ClinicalState.value).where(ClinicalState.key == WATERMARK_KEY)
            .with_for_update()
        ).one()
    )


def _settled(session: Session, watermark: int, newest: int, margin: timedelta) -> int:
    """The highest pk below which no instance can still be committed."""
    if session.get_bind().dialect.name == "sqlite":
        return newest  # one writer at a time: pks are committed in order
    cutoff = datetime.now(UTC).replace(tzinfo=None) - margin
    settled = session.scalar(
        select(func.max(Instance.pk)).where(
            Instance.pk > watermark, Instance.pk <= newest, Instance.received_at < cutoff
        )
    )
    return max(watermark, int(settled or 0))


def sync_imaging(
    session: Session, *, margin: timedelta = DEFAULT_MARGIN, batch: int = BATCH
) -> SyncReport:
    """Fold instances stored since the last run into the clients (see the module notes).

    Runs in the caller's transaction, which must be able to write; serialised against
    other runs by a row lock on the watermark.
    """
    watermark = _lock_watermark(session)
    newest = session.scalar(select(func.max(Instance.pk))) or 0
    if newest <= watermark:
        return SyncReport(0, 0, 0, 0, watermark)
    touched: dict[int, Client] = {}
    created = changed = 0
    low = watermark
    while low < newest:
        high = min(newest, low + batch)
        for pending in pending_imaging(session, low, high):
            client = touched.get(pending.patient_pk)
            if client is None:
                before = session.scalar(
                    select(Client.pk).where(Client.client_id == pending.client_id)
                )
                client = ensure_client(session, pending.client_id, patient_pk=pending.patient_pk)
                created += before is None
                touched[pending.patient_pk] = client
            changed += change_client(
                session,
                client,
                has_2d=client.has_2d or pending.has_2d,
                has_3d=client.has_3d or pending.has_3d,
            )
        low = high
    # Linking depends on a study's UID and date, not on its images: only clients with a
    # study not linked yet need it (a re-read of young instances links nothing again).
    unlinked = _patients_with_unlinked_studies(session, watermark, newest)
    linked = sum(link_client(session, client) for pk, client in touched.items()
                 if pk in unlinked)
    new_mark = _settled(session, watermark, newest, margin)
    session.execute(
        update(ClinicalState).where(ClinicalState.key == WATERMARK_KEY).values(value=new_mark)
    )
    session.flush()
    count = session.scalar(
        select(func.count()).select_from(Instance)
        .where(Instance.pk > watermark, Instance.pk <= newest)
    ) or 0
    log.info("clinical sync: %d instances, %d new clients, %d studies linked",
             count, created, linked)
    return SyncReport(int(count), created, changed, linked, new_mark)


def rebuild_imaging(session: Session, *, relink: bool = True) -> None:
    """Recompute every client's imaging facts and the tally from the whole index.

    Set-based, for repair and for data loaded in bulk. Creates clients for patients
    without one, joins clients to patients, recomputes both flags, relinks every
    study (unless ``relink`` is False) and moves the watermark to the newest instance.
    """
    session.execute(
        dialect_insert(session, Client.__table__)
        .from_select(
            ["client_id", "patient_pk"],
            select(Patient.patient_id, Patient.pk).where(
                ~select(Client.pk).where(Client.client_id == Patient.patient_id).exists()
            ),
        )
    )
    session.execute(
        update(Client)
        .where(Client.patient_pk.is_(None))
        .values(
            patient_pk=select(Patient.pk)
            .where(Patient.patient_id == Client.client_id)
            .scalar_subquery()
        )
        .execution_options(synchronize_session=False)
    )

    def has(classes: tuple[str, ...]) -> Exists:
        return (
            select(Instance.pk)
            .join(Series, Instance.series_pk == Series.pk)
            .join(Study, Series.study_pk == Study.pk)
            .where(Study.patient_pk == Client.patient_pk, Instance.sop_class_uid.in_(classes))
            .exists()
        )

    session.execute(
        update(Client)
        .values(
            has_2d=case((has(TWO_D_SOP_CLASSES), True), else_=False),
            has_3d=case((has(THREE_D_SOP_CLASSES), True), else_=False),
        )
        .execution_options(synchronize_session=False)
    )
    _rebuild_tally(session)
    newest = session.scalar(select(func.max(Instance.pk))) or 0
    _lock_watermark(session)
    session.execute(
        update(ClinicalState)
        .where(ClinicalState.key == WATERMARK_KEY)
        .values(value=_settled(session, 0, newest, DEFAULT_MARGIN))
    )
    session.expire_all()
    if relink:
        for client in session.scalars(select(Client).where(Client.patient_pk.is_not(None))):
            link_client(session, client)
    session.flush()


__all__ = [
    "THREE_D_SOP_CLASSES",
    "TWO_D_SOP_CLASSES",
    "PendingPatient",
    "SyncReport",
    "pending_imaging",
    "rebuild_imaging",
    "sync_imaging",
]
