"""Index writes and lookups; every function takes the caller's Session.

Patients, studies and series are created on first sight with ``INSERT .. ON CONFLICT
DO NOTHING`` so concurrent associations storing the same study never create duplicates
or fail on a unique constraint (the DIMSE tests store one
study from many associations at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from omipacs.index.changes import ChangeKind, record_change
from omipacs.index.extract import InstanceFacts
from omipacs.index.models import Base, Instance, InstanceMetadata, Patient, Series, Study


@dataclass(frozen=True)
class StoredInstance:
    """What the index knows about a stored instance's bytes."""

    pk: int
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    blob_key: str
    size_bytes: int
    sha256: str
    dataset_offset: int
    transfer_syntax_uid: str


def _insert_ignore(session: Session, model: type[Base], values: dict[str, Any], key: str) -> None:
    dialect = session.get_bind().dialect.name
    table: Any = model.__table__
    if dialect == "postgresql":
        stmt: Any = (
            postgresql.insert(table).values(**values).on_conflict_do_nothing(index_elements=[key])
        )
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing(index_elements=[key])
    else:  # pragma: no cover - other databases: plain insert, the caller retries on conflict
        stmt = table.insert().values(**values)
    session.execute(stmt)


def _get_or_create(session: Session, model: Any, key: str, values: dict[str, Any]) -> int:
    column = getattr(model, key)
    pk = session.scalar(select(model.pk).where(column == values[key]))
    if pk is None:
        _insert_ignore(session, model, values, key)
        pk = session.scalar(select(model.pk).where(column == values[key]))
    assert pk is not None
    return int(pk)


def find_instance(session: Session, sop_instance_uid: str) -> StoredInstance | None:
    """The stored instance with this SOP Instance UID, if any."""
    row = session.execute(
        select(Instance, Series.series_instance_uid, Study.study_instance_uid)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .where(Instance.sop_instance_uid == sop_instance_uid)
    ).first()
    if row is None:
        return None
    inst, series_uid, study_uid = row
    return StoredInstance(
        inst.pk,
        inst.sop_instance_uid,
        inst.sop_class_uid,
        study_uid,
        series_uid,
        inst.blob_key,
        inst.size_bytes,
        inst.sha256,
        inst.dataset_offset,
        inst.transfer_syntax_uid,
    )


def add_instance(
    session: Session, facts: InstanceFacts, *, storage: dict[str, Any], metadata: dict[str, Any]
) -> int:
    """Insert an instance (and its patient, study, series on first sight); returns its pk.

    A study keeps the patient it was first stored under: a later instance cannot move a
    study to another patient.
    """
    study_uid = facts.study["study_instance_uid"]
    patient_pk = session.scalar(
        select(Study.patient_pk).where(Study.study_instance_uid == study_uid)
    )
    if patient_pk is None:
        patient_pk = _get_or_create(session, Patient, "patient_id", facts.patient)
    study_pk = _get_or_create(
        session, Study, "study_instance_uid", {**facts.study, "patient_pk": patient_pk}
    )
    series_pk = _get_or_create(
        session, Series, "series_instance_uid", {**facts.series, "study_pk": study_pk}
    )
    inst = Instance(**facts.instance, **storage, series_pk=series_pk)
    session.add(inst)
    session.flush()
    session.add(InstanceMetadata(instance_pk=inst.pk, **metadata))
    session.flush()
    return inst.pk


def client_of_instance(session: Session, instance_pk: int) -> str:
    """The (pseudonymous) patient ID an instance is filed under."""
    found = session.scalar(
        select(Patient.patient_id)
        .join(Study, Study.patient_pk == Patient.pk)
        .join(Series, Series.study_pk == Study.pk)
        .join(Instance, Instance.series_pk == Series.pk)
        .where(Instance.pk == instance_pk)
    )
    return found or ""


def delete_instance(session: Session, instance_pk: int) -> None:
    """Take an instance out of the index (its bytes are the caller's) and say so in the
    change feed, in the caller's transaction."""
    row = session.execute(
        select(
            Study.study_instance_uid,
            Series.series_instance_uid,
            Instance.sop_instance_uid,
            Patient.patient_id,
        )
        .join(Series, Series.study_pk == Study.pk)
        .join(Instance, Instance.series_pk == Series.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
        .where(Instance.pk == instance_pk)
    ).first()
    if row is None:
        return
    session.execute(delete(InstanceMetadata).where(InstanceMetadata.instance_pk == instance_pk))
    session.execute(delete(Instance).where(Instance.pk == instance_pk))
    record_change(
        session,
        ChangeKind.INSTANCE_DELETED,
        study_uid=row[0],
        series_uid=row[1],
        sop_uid=row[2],
        client_id=row[3] or None,
    )
