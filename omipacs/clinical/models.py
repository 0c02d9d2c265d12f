"""Clinical tables: clients, episodes, events, lesions, pathology, density, cohorts.

They share :class:`omipacs.index.models.Base` (and so its metadata, naming convention
and Alembic migrations) with the imaging index. The layout (docs/data-model.md) is:
one ``client`` per pseudonymous client ID (the de-identified Patient ID), NBSS
episodes with their events, per-breast screen reads, lesions and the pathology findings
each event recorded on them. Everything is stored de-identified: client IDs are the
keyed pseudonyms, dates carry the client's day offset, free text is gone, and the
``raw`` JSON columns keep only the unmodelled source fields that survived scrubbing.

Derived tables make the common questions cheap at OMI-DB's size (470k clients):

* ``client`` carries its outcome and imaging flags (has 2D, has 3D, is marked), and
  ``clinical_tally`` counts clients per combination, so the brochure's tables are read
  from a few rows (see :mod:`omipacs.clinical.tally`);
* ``study_link`` ties each study to its client and episode (see
  :mod:`omipacs.clinical.linking`);
* ``cohort`` and ``cohort_member`` freeze a cohort's definition and resolved members.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from omipacs.index.models import UID, Base

CLIENT_ID = String(64)
CODE = String(8)


class Site(Base):
    """A screening site that sends clinical records (and images)."""

    __tablename__ = "site"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128), default="")


class Client(Base):
    """A screened woman, known only by her pseudonymous client ID.

    A row exists for every client that has a clinical record *or* images: the importer
    creates it from an NBSS record, :func:`omipacs.clinical.imaging.sync_imaging` from
    the first image of a patient. ``patient_pk`` joins it to the imaging index once both
    exist; clinical records may arrive first.
    """

    __tablename__ = "client"
    __table_args__ = (
        Index("ix_client_key", "outcome", "has_2d", "has_3d", "is_marked"),
        # Cohort pages walk clients in client ID order within an outcome (with DBT).
        Index("ix_client_outcome_walk", "outcome", "client_id"),
        Index("ix_client_outcome_3d_walk", "outcome", "has_3d", "client_id"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(CLIENT_ID, unique=True)
    """The keyed pseudonym (``OPTM…`` linked by NHS number, ``UNLK…`` by local ID)."""
    patient_pk: Mapped[int | None] = mapped_column(
        ForeignKey("patient.pk", ondelete="SET NULL"), unique=True
    )
    linked: Mapped[bool | None] = mapped_column(Boolean)
    """True when derived from a valid NHS number; ``None`` when only images are known."""
    site_pk: Mapped[int | None] = mapped_column(ForeignKey("site.pk"), index=True)
    ethnicity: Mapped[str] = mapped_column(CODE, default="", index=True)
    """NHS ethnic category code (A-H, J-N, P, R, S, Z), "" if not recorded."""
    imd_decile: Mapped[int | None] = mapped_column(Integer, index=True)
    """Index of Multiple Deprivation decile, 1 (most deprived) to 10."""
    high_risk: Mapped[bool | None] = mapped_column(Boolean)
    mutation_genes: Mapped[list[str] | None] = mapped_column(JSON)
    has_clinical: Mapped[bool] = mapped_column(Boolean, default=False)
    """An NBSS record has been imported for this client."""
    status: Mapped[str | None] = mapped_column(String(2))
    """omidb client status: CI, M, B or N (``None`` without episodes)."""
    outcome: Mapped[str] = mapped_column(String(2), default="U")
    """Brochure outcome: N, B, M, CI or U (:class:`~omipacs.clinical.codes.CaseOutcome`)."""
    outcome_reason: Mapped[str] = mapped_column(String(64), default="")
    is_marked: Mapped[bool] = mapped_column(Boolean, default=False)
    """At least one expert ROI mark on her images; set through
    :func:`omipacs.clinical.tally.set_marked`, the hook for the marks table."""
    has_2d: Mapped[bool] = mapped_column(Boolean, default=False)
    """She has FFDM (Digital Mammography X-Ray) instances."""
    has_3d: Mapped[bool] = mapped_column(Boolean, default=False)
    """She has Breast Tomosynthesis instances."""
    record_sha256: Mapped[str] = mapped_column(String(64), default="")
    """Hash of the last imported (de-identified) record: an identical re-import is a no-op."""
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    imported_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime, server_default=func.now(), onupdate=func.now()
    )

    episodes: Mapped[list[Episode]] = relationship(
        back_populates="client", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Episode.earliest_date",
    )


class Episode(Base):
    """An NBSS episode: a screening round or a symptomatic/interval presentation."""

    __tablename__ = "episode"
    __table_args__ = (UniqueConstraint("client_pk", "nbss_episode_id"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_pk: Mapped[int] = mapped_column(
        ForeignKey("client.pk", ondelete="CASCADE"), index=True
    )
    nbss_episode_id: Mapped[str] = mapped_column(String(32))
    """NBSS episode ID, unique only within the client."""
    type: Mapped[str | None] = mapped_column(CODE, index=True)
    action: Mapped[str | None] = mapped_column(CODE)
    opened_date: Mapped[date | None] = mapped_column(Date, index=True)
    closed_date: Mapped[date | None] = mapped_column(Date)
    is_closed: Mapped[bool | None] = mapped_column(Boolean)
    ic_diagnosis_date: Mapped[date | None] = mapped_column(Date)
    age_years: Mapped[int | None] = mapped_column(Integer)
    actual_opened_year: Mapped[int | None] = mapped_column(Integer)
    """The true (unshifted) year; stored only when the import is told the licence allows."""
    end_points: Mapped[list[str] | None] = mapped_column(JSON)
    study_uids: Mapped[list[str] | None] = mapped_column(JSON)
    """De-identified Study Instance UIDs the source assigns to this episode."""
    earliest_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str | None] = mapped_column(CODE)
    outcome: Mapped[str | None] = mapped_column(CODE, index=True)
    outcome_undefined: Mapped[str] = mapped_column(String(32), default="")
    outcome_ref_episode_pk: Mapped[int | None] = mapped_column(
        ForeignKey("episode.pk", ondelete="SET NULL")
    )
    """The episode the outcome depends on: the cancer a CIP/MP prior precedes."""
    is_post_op: Mapped[bool | None] = mapped_column(Boolean)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    client: Mapped[Client] = relationship(back_populates="episodes")
    events: Mapped[list[Event]] = relationship(
        back_populates="episode", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Event.pk",
    )
    lesions: Mapped[list[Lesion]] = relationship(
        back_populates="episode", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Lesion.pk",
    )


class Event(Base):
    """One event block of an episode, with its per-breast opinions."""

    __tablename__ = "event"
    __table_args__ = (UniqueConstraint("episode_pk", "kind", "seq"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_pk: Mapped[int] = mapped_column(
        ForeignKey("episode.pk", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16), index=True)
    """:class:`~omipacs.clinical.codes.EventKind` value."""
    seq: Mapped[int] = mapped_column(Integer, default=0)
    """0, or the position of an ``OTHERSCREENING`` entry (1, 2, ...)."""
    date_performed: Mapped[date | None] = mapped_column(Date, index=True)
    dates: Mapped[list[str] | None] = mapped_column(JSON)
    """Every date the event records (ISO, shifted), for linking studies by date."""
    left_opinion: Mapped[str | None] = mapped_column(String(2))
    right_opinion: Mapped[str | None] = mapped_column(String(2))
    diagnostic_set_outcome: Mapped[str] = mapped_column(String(16), default="")
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    episode: Mapped[Episode] = relationship(back_populates="events")
    reads: Mapped[list[ScreenRead]] = relationship(
        back_populates="event", cascade="all, delete-orphan", passive_deletes=True,
        order_by="ScreenRead.side",
    )
    findings: Mapped[list[LesionFinding]] = relationship(
        back_populates="event", cascade="all, delete-orphan", passive_deletes=True,
        order_by="LesionFinding.pk",
    )


class ScreenRead(Base):
    """A screening event's record for one breast: date, opinion, equipment, readers."""

    __tablename__ = "screen_read"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_pk: Mapped[int] = mapped_column(ForeignKey("event.pk", ondelete="CASCADE"), index=True)
    side: Mapped[str] = mapped_column(String(1))
    date_taken: Mapped[date | None] = mapped_column(Date)
    opinion: Mapped[str | None] = mapped_column(CODE)
    equipment_make_model: Mapped[str] = mapped_column(String(64), default="")
    age_at_screening: Mapped[int | None] = mapped_column(Integer)
    readers: Mapped[list[str] | None] = mapped_column(JSON)
    """Keyed pseudonyms of the film readers (``RDR…``), never their codes."""
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    event: Mapped[Event] = relationship(back_populates="reads")


class Lesion(Base):
    """A lesion of one breast, numbered by NBSS within the episode."""

    __tablename__ = "lesion"
    __table_args__ = (UniqueConstraint("episode_pk", "side", "nbss_lesion_no"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_pk: Mapped[int] = mapped_column(
        ForeignKey("episode.pk", ondelete="CASCADE"), index=True
    )
    side: Mapped[str] = mapped_column(String(1))
    nbss_lesion_no: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(CODE, index=True)
    position: Mapped[str | None] = mapped_column(CODE)
    cyst_aspirated: Mapped[bool | None] = mapped_column(Boolean)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    episode: Mapped[Episode] = relationship(back_populates="lesions")
    findings: Mapped[list[LesionFinding]] = relationship(
        back_populates="lesion", cascade="all, delete-orphan", passive_deletes=True,
        order_by="LesionFinding.pk",
    )


class LesionFinding(Base):
    """What one event found on one lesion: opinion and pathology."""

    __tablename__ = "lesion_finding"
    __table_args__ = (Index("ix_lesion_finding_pathology", "disease_grade", "her2_status"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    lesion_pk: Mapped[int] = mapped_column(
        ForeignKey("lesion.pk", ondelete="CASCADE"), index=True
    )
    event_pk: Mapped[int] = mapped_column(ForeignKey("event.pk", ondelete="CASCADE"), index=True)
    date_performed: Mapped[date | None] = mapped_column(Date)
    opinion: Mapped[str | None] = mapped_column(CODE)
    mammo_opinion: Mapped[str | None] = mapped_column(CODE)
    uss_opinion: Mapped[str | None] = mapped_column(CODE)
    mammo_size_mm: Mapped[float | None] = mapped_column(Float)
    invasive_present: Mapped[bool | None] = mapped_column(Boolean)
    invasive_components: Mapped[list[str] | None] = mapped_column(JSON)
    invasive_type: Mapped[str | None] = mapped_column(CODE)
    disease_grade: Mapped[str | None] = mapped_column(CODE)
    insitu_components: Mapped[list[str] | None] = mapped_column(JSON)
    dcis_grade: Mapped[str | None] = mapped_column(CODE, index=True)
    malignancy_type: Mapped[str | None] = mapped_column(String(1))
    her2_score: Mapped[str | None] = mapped_column(CODE)
    her2_status: Mapped[str | None] = mapped_column(CODE)
    er_score: Mapped[str | None] = mapped_column(CODE)
    er_status: Mapped[str | None] = mapped_column(CODE)
    pr_score: Mapped[str | None] = mapped_column(CODE)
    pr_status: Mapped[str | None] = mapped_column(CODE)
    tumour_size_mm: Mapped[float | None] = mapped_column(Float)
    ductal_size_mm: Mapped[float | None] = mapped_column(Float)
    nodes_positive: Mapped[int | None] = mapped_column(Integer)
    margins: Mapped[str | None] = mapped_column(String(16))
    mutation_codes: Mapped[list[str] | None] = mapped_column(JSON)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    lesion: Mapped[Lesion] = relationship(back_populates="findings")
    event: Mapped[Event] = relationship(back_populates="findings")


class Density(Base):
    """A breast density measurement (Volpara-style) of one image or one breast."""

    __tablename__ = "density"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("client.pk", ondelete="CASCADE"), index=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, default="")
    sop_instance_uid: Mapped[str] = mapped_column(UID, default="", index=True)
    """De-identified SOP Instance UID of the image measured; "" for a per-breast value."""
    side: Mapped[str] = mapped_column(String(1), default="")
    algorithm: Mapped[str] = mapped_column(String(32), default="")
    measured_date: Mapped[date | None] = mapped_column(Date)
    vbd_pct: Mapped[float | None] = mapped_column(Float)
    """Volumetric breast density, percent."""
    fgv_cm3: Mapped[float | None] = mapped_column(Float)
    """Fibroglandular tissue volume, cm³."""
    breast_vol_cm3: Mapped[float | None] = mapped_column(Float)
    density_grade: Mapped[str | None] = mapped_column(CODE, index=True)
    """Density grade, 1-4 (Volpara density grade, like BI-RADS a-d)."""
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ImageFeature(Base):
    """A technical (blur, artefact) or biological (microcalcifications) image feature."""

    __tablename__ = "image_feature"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("client.pk", ondelete="CASCADE"), index=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, default="")
    sop_instance_uid: Mapped[str] = mapped_column(UID, default="", index=True)
    side: Mapped[str] = mapped_column(String(1), default="")
    category: Mapped[str] = mapped_column(String(16), default="")
    """``technical`` or ``biological``."""
    feature: Mapped[str] = mapped_column(String(32), index=True)
    value: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(32), default="")


class StudyLink(Base):
    """Which client and episode a study belongs to, and how that was decided."""

    __tablename__ = "study_link"

    study_pk: Mapped[int] = mapped_column(
        ForeignKey("study.pk", ondelete="CASCADE"), primary_key=True
    )
    client_pk: Mapped[int] = mapped_column(ForeignKey("client.pk", ondelete="CASCADE"), index=True)
    episode_pk: Mapped[int | None] = mapped_column(
        ForeignKey("episode.pk", ondelete="SET NULL"), index=True
    )
    method: Mapped[str] = mapped_column(String(16), default="")
    """``episode_id`` (the source listed the study), ``event_date``, ``window`` or ""."""
    event_kinds: Mapped[list[str] | None] = mapped_column(JSON)
    """Events of the episode on the study date (none when two studies share the date)."""


class ClinicalTally(Base):
    """How many clients have each (outcome, 2D, 3D, marked) combination."""

    __tablename__ = "clinical_tally"

    outcome: Mapped[str] = mapped_column(String(2), primary_key=True)
    has_2d: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    has_3d: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    is_marked: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    clients: Mapped[int] = mapped_column(BigInteger, default=0)


class ClinicalState(Base):
    """Progress markers of the clinical layer (the last instance folded into clients)."""

    __tablename__ = "clinical_state"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
