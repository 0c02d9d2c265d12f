"""One error hierarchy for the whole archive.

Every failure that a peer can see is one of these classes. Each class carries the
codes a protocol adapter needs (the C-STORE/C-FIND status, the STOW-RS FailureReason
and the HTTP status), so the DIMSE handlers and the Flask error handler map errors in
exactly one place and no handler holds a bare hex literal.

Codes follow PS3.4 Annex B (C-STORE), PS3.7 Annex C and PS3.18 section 10.5.3.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Self


class DimseStatus(IntEnum):
    """DIMSE status codes used by omipacs (PS3.4 B.2-1, PS3.7 C)."""

    SUCCESS = 0x0000
    """The operation completed."""
    PROCESSING_FAILURE = 0x0110
    """Generic failure; also STOW's FailureReason for an instance outside the URL's study."""
    DUPLICATE_SOP_INSTANCE = 0x0111
    """Same SOP Instance UID, different content: the stored copy is kept."""
    NO_SUCH_SOP_CLASS = 0x0122
    """The SOP class is not one the archive stores."""
    NOT_AUTHORIZED = 0x0124
    """The calling peer may not do this."""
    OUT_OF_RESOURCES = 0xA700
    """Disk full or another resource exhausted; for C-FIND, more matches than the limit."""
    SUB_OPERATIONS_REFUSED = 0xA702
    """C-MOVE/C-GET: unable to perform the sub-operations (PS3.4 C.4.2.1.5)."""
    MOVE_DESTINATION_UNKNOWN = 0xA801
    """C-MOVE: the destination AE is not one the archive knows."""
    DATASET_DOES_NOT_MATCH = 0xA900
    """Required attributes missing or invalid, or declared sizes inconsistent."""
    CANNOT_UNDERSTAND = 0xC000
    """The bytes are not a readable DICOM data set."""
    TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
    """The transfer syntax is not one the archive accepts."""
    SUB_OPERATIONS_WARNING = 0xB000
    """C-MOVE/C-GET: some sub-operations failed (the failed UIDs are listed)."""
    UNABLE_TO_PROCESS = 0xC000
    """C-FIND/C-MOVE/C-GET: the request could not be processed."""
    CANCEL = 0xFE00
    """The peer cancelled the operation (C-CANCEL)."""
    PENDING = 0xFF00
    """More C-FIND matches follow."""


class OmipacsError(Exception):
    """Base of every error a peer may see.

    Subclasses set the class attributes; the message is the reason shown to the peer
    (HTTP body, DIMSE ErrorComment), so it must never contain patient data.
    """

    dimse_status: DimseStatus = DimseStatus.PROCESSING_FAILURE
    http_status: int = 500

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sop_class_uid = ""
        self.sop_instance_uid = ""

    def about(self, sop_class_uid: str, sop_instance_uid: str) -> Self:
        """Name the instance this error is about, unless it is already named.

        Set by the ingest pipeline from what it parsed, so a STOW-RS response can list
        the failed instance (PS3.18 §10.5.3) without reading the part a second time.
        Only syntactically valid UIDs should be passed (they are shown to the peer).
        """
        if not self.sop_instance_uid:
            self.sop_class_uid = sop_class_uid
            self.sop_instance_uid = sop_instance_uid
        return self


class InvalidInstance(OmipacsError):
    """The bytes cannot be read as DICOM (truncated, not DICOM, malformed)."""

    dimse_status = DimseStatus.CANNOT_UNDERSTAND
    http_status = 400


class InvalidAttributes(OmipacsError):
    """Readable DICOM, but required attributes are missing, invalid or inconsistent."""

    dimse_status = DimseStatus.DATASET_DOES_NOT_MATCH
    http_status = 400


class SopClassNotSupported(OmipacsError):
    """The SOP class is not on the archive's list of storage classes."""

    dimse_status = DimseStatus.NO_SUCH_SOP_CLASS
    http_status = 400


class TransferSyntaxNotSupported(OmipacsError):
    """The transfer syntax is not accepted (e.g. deflate, which can hide a bomb)."""

    dimse_status = DimseStatus.TRANSFER_SYNTAX_NOT_SUPPORTED
    http_status = 400


class DuplicateInstance(OmipacsError):
    """Same SOP Instance UID as a stored instance but different content."""

    dimse_status = DimseStatus.DUPLICATE_SOP_INSTANCE
    http_status = 409


class StudyMismatch(OmipacsError):
    """A STOW-RS part belongs to another study than the one in the URL."""

    dimse_status = DimseStatus.PROCESSING_FAILURE
    http_status = 409


class IdentifiableInstance(OmipacsError):
    """An instance offered as already pseudonymous still names a patient."""

    dimse_status = DimseStatus.NOT_AUTHORIZED
    http_status = 403


class Withdrawn(OmipacsError):
    """The client has withdrawn (opted out): nothing of hers is accepted, from any site.

    She used the NHS national data opt-out or asked the archive. C-STORE answers 0x0124
    (Refused: Not Authorized) with this reason as the Error Comment; STOW-RS lists the
    instance with that FailureReason; the message never names her (docs/withdrawal.md).
    """

    dimse_status = DimseStatus.NOT_AUTHORIZED
    http_status = 403


class OutOfResources(OmipacsError):
    """Storage is full or a resource limit was reached; the sender may retry.

    507 Insufficient Storage (RFC 4918 §11.5) is what STOW-RS answers when no part
    could be stored for lack of space (as Orthanc's MaxStorage tests expect)."""

    dimse_status = DimseStatus.OUT_OF_RESOURCES
    http_status = 507


class ServerBusy(OmipacsError):
    """A bounded resource (image decoding) stayed busy for too long; retry shortly."""

    dimse_status = DimseStatus.OUT_OF_RESOURCES
    http_status = 503


class Quarantined(OmipacsError):
    """The instance was kept out of the archive because it cannot be made safe."""

    dimse_status = DimseStatus.PROCESSING_FAILURE
    http_status = 422


class InvalidQuery(OmipacsError):
    """A QIDO-RS parameter or C-FIND identifier cannot be honoured."""

    dimse_status = DimseStatus.DATASET_DOES_NOT_MATCH
    http_status = 400


class TooManyMatches(OmipacsError):
    """A C-FIND matched more than the configured maximum; the first ones were sent."""

    dimse_status = DimseStatus.OUT_OF_RESOURCES
    http_status = 400


class NotFound(OmipacsError):
    """No such resource (or not visible to the caller: the two look the same)."""

    http_status = 404


class NotAcceptable(OmipacsError):
    """The requested media type or transfer syntax cannot be produced."""

    http_status = 406


class UnsupportedMediaType(OmipacsError):
    """The request body has a media type the endpoint does not take."""

    http_status = 415


class PayloadTooLarge(OmipacsError):
    """The request body is over a configured limit; refused before it is read."""

    dimse_status = DimseStatus.OUT_OF_RESOURCES
    http_status = 413


class BadRequest(OmipacsError):
    """A malformed request (bad multipart framing, bad parameter)."""

    dimse_status = DimseStatus.CANNOT_UNDERSTAND
    http_status = 400


class RangeNotSatisfiable(OmipacsError):
    """A byte range outside the resource."""

    http_status = 416


class Unauthorized(OmipacsError):
    """No valid credentials."""

    dimse_status = DimseStatus.NOT_AUTHORIZED
    http_status = 401


class Forbidden(OmipacsError):
    """Valid credentials, but not allowed to do this."""

    dimse_status = DimseStatus.NOT_AUTHORIZED
    http_status = 403


class ConfigurationError(OmipacsError):
    """The configuration is unusable or unsafe; the server refuses to start."""


class InvalidRecord(OmipacsError):
    """A clinical (NBSS) or mark record that cannot be imported: malformed,
    unidentifiable, naming an unknown image, or holding a value that cannot be read.
    The whole record is refused."""

    dimse_status = DimseStatus.DATASET_DOES_NOT_MATCH
    http_status = 400
