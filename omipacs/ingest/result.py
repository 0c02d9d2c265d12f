"""The protocol-neutral outcome of one ingest."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IngestOutcome(StrEnum):
    """What happened to an instance that was not rejected."""

    STORED = "stored"
    """New instance, durable and indexed."""
    ALREADY_STORED = "already_stored"
    """Identical to a stored instance; nothing written (idempotent retries)."""
    QUARANTINED = "quarantined"
    """Held back: it could not be made safe to publish."""


@dataclass(frozen=True)
class IngestResult:
    """Identity and fate of an ingested instance (UIDs are the stored, de-identified ones)."""

    outcome: IngestOutcome
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    size: int
    sha256: str
    reason: str = ""
    """Why an instance was quarantined."""
