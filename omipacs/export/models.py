"""Tables of releases: one row per release of a licence, one per batch of its files.

A release is written by any number of workers (docs/releases.md, "Workers"); the index
is where they agree on what is done. The ``release`` row carries the state and the
progress people watch (``GET /api/v1/licences/{id}/releases/{n}``); ``release_batch``
is the journal: a batch of files is marked done only after every file of it is whole
at its destination, so a killed export resumes at the first batch not marked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from omipacs.index.models import Base


class Release(Base):
    """Release *number* of a licence, written to *url*."""

    __tablename__ = "release"
    __table_args__ = (UniqueConstraint("licence_pk", "number"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    licence_pk: Mapped[int] = mapped_column(ForeignKey("licence.pk"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    """The destination given (a folder, ``s3://…``, ``gs://…``); the release itself is
    under ``<url>/licence-<id>/release-<number>/``."""
    state: Mapped[str] = mapped_column(String(16), default="staging")
    """staging (being planned), running (files being copied), complete, failed."""
    base_number: Mapped[int | None] = mapped_column(Integer)
    """The earlier release at the same URL this one is incremental to (None: full)."""
    change_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    """The change-feed sequence number the release is consistent with."""
    files_total: Mapped[int] = mapped_column(BigInteger, default=0)
    files_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    batches_total: Mapped[int] = mapped_column(Integer, default=0)
    batches_done: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """Files copied and referenced, removed, withdrawn clients, outcome and 2D/3D."""
    verification: Mapped[str] = mapped_column(String(16), default="")
    """"" (not verified), passed or failed: the last ``omipacs release verify``."""
    verified_at: Mapped[datetime | None] = mapped_column(DateTime)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """What the manifest needs besides the batches: facts, the derived files (tables,
    README), what was removed and which clients were withdrawn."""
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)


class ReleaseBatch(Base):
    """One batch of a release's files: the unit a worker takes, and the journal."""

    __tablename__ = "release_batch"

    release_pk: Mapped[int] = mapped_column(
        ForeignKey("release.pk", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    files: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    entries: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """The files: path, bytes, sha256 and the blob key to copy from."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Times a worker started it: after the first, finished files are looked for at the
    destination before copying."""
    done_at: Mapped[datetime | None] = mapped_column(DateTime)
