"""The saved cohort tables: one row per version, and its frozen members."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from omipacs.clinical.models import CLIENT_ID
from omipacs.index.models import UID, Base


class Cohort(Base):
    """A saved cohort: one version of a named definition and its frozen member list."""

    __tablename__ = "cohort"
    __table_args__ = (UniqueConstraint("name", "version"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    definition_sha256: Mapped[str] = mapped_column(String(64))
    members_sha256: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the sorted member list (see :func:`omipacs.cohorts.members_hash`)."""
    client_count: Mapped[int] = mapped_column(Integer)
    study_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class CohortMember(Base):
    """One study of a saved cohort, with the client it belongs to."""

    __tablename__ = "cohort_member"
    __table_args__ = (
        UniqueConstraint("cohort_pk", "study_instance_uid"),
        Index("ix_cohort_member_client", "cohort_pk", "client_id"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    cohort_pk: Mapped[int] = mapped_column(ForeignKey("cohort.pk", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(CLIENT_ID)
    study_instance_uid: Mapped[str] = mapped_column(UID)
