"""The protocol-neutral outcome of one ingest."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from omipacs.errors import DimseStatus


class IngestOutcome(StrEnum):
    """What happened to an instance that was not rejected."""

    STORED = "stored"
    """New instance, durable and indexed."""
    ALREADY_STORED = "already_stored"
    """Identical to a stored instance; nothing written (idempotent retries)."""
    QUARANTINED = "quarantined"
    """Held back: it could not be made safe to publish."""

    @property
    def dimse_status(self) -> DimseStatus:
        """The status every door reports for this outcome (C-STORE status; for STOW-RS
        the instance is listed in ReferencedSOPSequence, without WarningReason).

        All three are success: the archive has the bytes and the sender must not send
        them again. A quarantined instance is held durably until an operator releases
        or purges it, so it is received, just not yet published (no RetrieveURL).
        """
        return _OUTCOME_STATUS[self]


_OUTCOME_STATUS = {
    IngestOutcome.STORED: DimseStatus.SUCCESS,
    IngestOutcome.ALREADY_STORED: DimseStatus.SUCCESS,
    IngestOutcome.QUARANTINED: DimseStatus.SUCCESS,
}


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
    received_sop_instance_uid: str = ""
    """A quarantined instance's SOP Instance UID as the sender sent it (it has no stored
    UID yet), so the sender's STOW-RS response can name it; never logged."""
