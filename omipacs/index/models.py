"""The research index: typed SQLAlchemy 2 models for patient, study, series, instance.

Everything a query filters on is a real, indexed column (docs/data-model.md), including the
mammography attributes no general-purpose archive indexes: laterality (ImageLaterality,
or FrameLaterality for tomosynthesis), view position and view code, presentation intent
(processed or unprocessed), SOP class (2D or DBT), manufacturer and model. Values stored
here are the de-identified ones; the index never holds a patient's identity (only the
quarantine does, for a limited time, as received: omipacs/ingest/quarantine.py).

Person names are also kept upper-cased in ``*_search`` columns so case-insensitive
matching (PS3.4 C.2.2.2.1) uses an index on every database.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UID = String(64)


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations are stable."""

    metadata = MetaData(naming_convention=NAMING)


class Patient(Base):
    """A (pseudonymised) patient: a client of the screening programme."""

    __tablename__ = "patient"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), unique=True)
    issuer: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    patient_name_search: Mapped[str] = mapped_column(String(324), default="", index=True)
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    studies: Mapped[list[Study]] = relationship(back_populates="patient")


class Study(Base):
    """A study (one screening or assessment visit's imaging)."""

    __tablename__ = "study"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patient.pk"), index=True)
    study_date: Mapped[date | None] = mapped_column(Date, index=True)
    study_time: Mapped[str] = mapped_column(String(16), default="")
    accession_number: Mapped[str] = mapped_column(String(64), default="", index=True)
    study_id: Mapped[str] = mapped_column(String(64), default="")
    study_description: Mapped[str] = mapped_column(String(256), default="")
    referring_physician_name: Mapped[str] = mapped_column(String(324), default="")
    patient_age: Mapped[str] = mapped_column(String(8), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now(), index=True)

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(Base):
    """A series; in mammography usually one image (processed or unprocessed) each."""

    __tablename__ = "series"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("study.pk"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    series_number: Mapped[int | None] = mapped_column(Integer)
    series_description: Mapped[str] = mapped_column(String(256), default="")
    series_date: Mapped[date | None] = mapped_column(Date)
    body_part_examined: Mapped[str] = mapped_column(String(16), default="")
    presentation_intent_type: Mapped[str] = mapped_column(String(32), default="", index=True)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")


class Instance(Base):
    """One stored SOP instance: its indexed attributes and where its bytes are."""

    __tablename__ = "instance"
    __table_args__ = (Index("ix_instance_view", "laterality", "view_position", "sop_class_uid"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    series_pk: Mapped[int] = mapped_column(ForeignKey("series.pk"), index=True)
    sop_class_uid: Mapped[str] = mapped_column(UID, index=True)
    instance_number: Mapped[int | None] = mapped_column(Integer)
    transfer_syntax_uid: Mapped[str] = mapped_column(UID)
    # Image geometry
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    number_of_frames: Mapped[int | None] = mapped_column(Integer, index=True)
    bits_allocated: Mapped[int | None] = mapped_column(Integer)
    bits_stored: Mapped[int | None] = mapped_column(Integer)
    photometric_interpretation: Mapped[str] = mapped_column(String(16), default="")
    # Mammography view (docs/data-model.md, "Mammography attributes")
    laterality: Mapped[str] = mapped_column(String(2), default="", index=True)
    """ImageLaterality, or FrameLaterality for tomosynthesis (L, R, B or U)."""
    view_position: Mapped[str] = mapped_column(String(16), default="", index=True)
    view_code: Mapped[str] = mapped_column(String(16), default="", index=True)
    """ViewCodeSequence CodeValue (SCT, e.g. 399162004 for cranio-caudal)."""
    view_code_meaning: Mapped[str] = mapped_column(String(64), default="")
    view_modifier_codes: Mapped[str] = mapped_column(String(128), default="")
    presentation_intent_type: Mapped[str] = mapped_column(String(32), default="", index=True)
    image_type: Mapped[str] = mapped_column(String(128), default="")
    # Equipment and exposure
    manufacturer: Mapped[str] = mapped_column(String(64), default="", index=True)
    manufacturer_model_name: Mapped[str] = mapped_column(String(64), default="", index=True)
    software_versions: Mapped[str] = mapped_column(String(128), default="")
    body_part_thickness: Mapped[float | None] = mapped_column(Float)
    compression_force: Mapped[float | None] = mapped_column(Float)
    kvp: Mapped[float | None] = mapped_column(Float)
    organ_dose: Mapped[float | None] = mapped_column(Float)
    breast_implant_present: Mapped[str] = mapped_column(String(8), default="")
    imager_pixel_spacing: Mapped[str] = mapped_column(String(64), default="")
    voi_lut_function: Mapped[str] = mapped_column(String(16), default="")
    burned_in_annotation: Mapped[str] = mapped_column(String(8), default="")
    patient_identity_removed: Mapped[str] = mapped_column(String(8), default="")
    frame_of_reference_uid: Mapped[str] = mapped_column(String(64), default="")
    content_date: Mapped[date | None] = mapped_column(Date)
    # Storage
    blob_key: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the stored file (what ``omipacs verify`` checks)."""
    dataset_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    """Where the data set starts (after the File Meta Information). A re-send is the same
    instance if its data set bytes are equal, whichever door (and so whichever meta
    information) it came through; they are compared only when a UID repeats."""
    received_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now(), index=True)
    source_ae_title: Mapped[str] = mapped_column(String(16), default="")
    source_kind: Mapped[str] = mapped_column(String(16), default="")

    series: Mapped[Series] = relationship(back_populates="instances")
    meta: Mapped[InstanceMetadata] = relationship(back_populates="instance", uselist=False)


class InstanceMetadata(Base):
    """Precomputed retrieval data, kept out of the hot ``instance`` table.

    ``dicom_json`` is the gzipped DICOM JSON of the stored header (bulk data as relative
    URIs); ``frames`` lists each frame's byte ranges in the blob; ``pixel`` locates the
    pixel data value for ``/bulkdata``.
    """

    __tablename__ = "instance_metadata"

    instance_pk: Mapped[int] = mapped_column(
        ForeignKey("instance.pk", ondelete="CASCADE"), primary_key=True
    )
    dicom_json: Mapped[bytes] = mapped_column(LargeBinary)
    frames: Mapped[Any | None] = mapped_column(JSON)
    pixel: Mapped[Any | None] = mapped_column(JSON)
    header_length: Mapped[int] = mapped_column(BigInteger, default=0)

    instance: Mapped[Instance] = relationship(back_populates="meta")


class Setting(Base):
    """Small key/value facts about this index (schema origin, release tags)."""

    __tablename__ = "archive_setting"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")


class ChangeEvent(Base):
    """One entry of the change feed (docs/data-model.md, "Change feed").

    ``seq`` only grows and is never reused, also after rows are deleted: AUTOINCREMENT on
    SQLite, an identity column on PostgreSQL. Each event is written in the transaction
    of the change it records (:func:`omipacs.index.changes.record_change`), so the feed
    never names a change that was rolled back nor misses one that was committed.
    """

    __tablename__ = "change_event"
    __table_args__ = (
        Index("ix_change_event_client_id", "client_id"),
        Index("ix_change_event_study", "study_instance_uid"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), Identity(), primary_key=True
    )
    at: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(24))
    study_instance_uid: Mapped[str | None] = mapped_column(UID)
    series_instance_uid: Mapped[str | None] = mapped_column(UID)
    sop_instance_uid: Mapped[str | None] = mapped_column(UID)
    client_id: Mapped[str | None] = mapped_column(String(64))
    client_hash: Mapped[str | None] = mapped_column(String(64))
    """Only on ``client-withdrawn`` events: the keyed hash of the withdrawn client's ID
    (:func:`omipacs.deid.tombstones.client_key`), never the ID itself."""


class Withdrawal(Base):
    """One withdrawn client: keyed hashes only (the withdrawal tombstone).

    A woman who opts out is removed everywhere (:mod:`omipacs.withdrawal.withdraw`);
    what remains is this row, so that data sent for her later, from any site, is refused
    before it is de-identified, and so that a release can tell a withdrawn client from
    one merely absent. The hashes are HMACs keyed with the archive's de-identification
    key (:mod:`omipacs.deid.tombstones`): without the key they name nobody, and the NHS
    number and the client ID are never stored.
    """

    __tablename__ = "withdrawal"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """Keyed hash of the pseudonymous client ID."""
    source_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    """Keyed hash of her source identity (the identity map's key: the keyed hash of her
    NHS number, or of site and local ID), when the identity map knew her."""
    withdrawn_at: Mapped[datetime] = mapped_column(DateTime)
    """When the tombstone was written (before anything was removed)."""
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    """When everything of hers was removed; ``None`` while a withdrawal is unfinished
    (a killed run), which the next run of ``omipacs withdraw`` completes."""
