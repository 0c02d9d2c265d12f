"""Tables of researcher access: users, licences, tokens, access requests, the audit trail.

A licence is what the brochure sells: time-limited, purpose-bound access to one saved
cohort *version* (frozen members) and to the data types it names. Users reach data
through tokens; a token is stored only as its SHA-256, with a short visible prefix so
people can tell their tokens apart. The audit table is append-only (the migration adds
triggers refusing UPDATE and DELETE on both databases).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
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

from omipacs.index.models import Base


class User(Base):
    """A person who may use the archive: an admin, a curator or a researcher."""

    __tablename__ = "app_user"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    organisation: Mapped[str] = mapped_column(String(128), default="")
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True)
    """The ``sub`` (or configured claim) of the user's single sign-on identity."""
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class Licence(Base):
    """A licence: a cohort version, data scopes, a term and a state."""

    __tablename__ = "licence"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(256))
    purpose: Mapped[str] = mapped_column(Text, default="")
    organisation: Mapped[str] = mapped_column(String(128), default="")
    cohort_pk: Mapped[int] = mapped_column(ForeignKey("cohort.pk"), index=True)
    scopes: Mapped[str] = mapped_column(String(128))
    """Comma-separated data scopes (see :mod:`omipacs.access.scopes`)."""
    starts: Mapped[date] = mapped_column(Date)
    ends: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16), default="active")
    """active, suspended or revoked; "expired" is derived from the dates."""
    request_pk: Mapped[int | None] = mapped_column(ForeignKey("access_request.pk"))
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class LicenceMember(Base):
    """A user who may work under a licence (the licensee organisation's researchers)."""

    __tablename__ = "licence_member"
    __table_args__ = (UniqueConstraint("licence_pk", "user_pk"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    licence_pk: Mapped[int] = mapped_column(ForeignKey("licence.pk", ondelete="CASCADE"))
    user_pk: Mapped[int] = mapped_column(ForeignKey("app_user.pk", ondelete="CASCADE"), index=True)


class Token(Base):
    """A bearer token: only its SHA-256 is kept."""

    __tablename__ = "api_token"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("app_user.pk"), index=True)
    licence_pk: Mapped[int | None] = mapped_column(ForeignKey("licence.pk"))
    prefix: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class AccessRequest(Base):
    """A data access request, as the brochure describes the application."""

    __tablename__ = "access_request"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    applicant_pk: Mapped[int] = mapped_column(ForeignKey("app_user.pk"), index=True)
    organisation: Mapped[str] = mapped_column(String(128), default="")
    title: Mapped[str] = mapped_column(String(256))
    technical_summary: Mapped[str] = mapped_column(Text, default="")
    lay_summary: Mapped[str] = mapped_column(Text, default="")
    data_types: Mapped[str] = mapped_column(String(128), default="")
    patient_benefit: Mapped[str] = mapped_column(Text, default="")
    cohort_pk: Mapped[int | None] = mapped_column(ForeignKey("cohort.pk"))
    state: Mapped[str] = mapped_column(String(32), default="submitted")
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class AccessDecision(Base):
    """One step of a request's history after it was filed: a decision of the steering
    committee with its reason, or (``resubmitted``, by the applicant) the answer to a
    request for more information."""

    __tablename__ = "access_decision"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_pk: Mapped[int] = mapped_column(ForeignKey("access_request.pk"), index=True)
    reviewer_pk: Mapped[int] = mapped_column(ForeignKey("app_user.pk"))
    decision: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    licence_pk: Mapped[int | None] = mapped_column(ForeignKey("licence.pk"))
    decided_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class AuditEvent(Base):
    """One access decision or data access. Rows are only ever inserted."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_user_at", "user_email", "at"),
        Index("ix_audit_event_licence_at", "licence_pk", "at"),
    )

    pk: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    user_email: Mapped[str] = mapped_column(String(254), default="")
    token_prefix: Mapped[str] = mapped_column(String(16), default="")
    licence_pk: Mapped[int | None] = mapped_column(Integer)
    remote: Mapped[str] = mapped_column(String(64), default="")
    door: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    resource: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[int | None] = mapped_column(Integer)
    bytes_sent: Mapped[int | None] = mapped_column(BigInteger)
