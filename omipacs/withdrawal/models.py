"""The withdrawal tombstone: keyed hashes of withdrawn clients, and nothing else.

A woman who opts out (the NHS national data opt-out, or a request to the archive) is
removed everywhere (:mod:`omipacs.withdrawal.withdraw`); what remains is one row here,
so that data sent for her later, from any site, is refused before it is de-identified,
and so that a release can tell a withdrawn client from one merely absent. The row holds
HMACs keyed with the archive's de-identification key (:mod:`omipacs.withdrawal.tombstones`):
without the key they name nobody, and the NHS number and the client ID are never stored.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from omipacs.index.models import Base


class Withdrawal(Base):
    """One withdrawn client."""

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
