"""Checks an instance must pass before anything is stored (docs/architecture.md, "Hostile input").

Only what the archive relies on is enforced: identity UIDs, SOP class, transfer syntax,
and that the declared image size is bounded and matches the bytes (so no later reader
can be made to allocate gigabytes from a forged header); what an
image must have to be decodable is in :mod:`omipacs.ingest.image`.
"""

from __future__ import annotations

from omipacs.dicom.frames import native_frame_length, number_of_frames
from omipacs.dicom.parse import ParsedFile
from omipacs.dicom.uids import ACCEPTED_TRANSFER_SYNTAXES, STORAGE_SOP_CLASSES, is_valid_uid
from omipacs.errors import (
    InvalidAttributes,
    SopClassNotSupported,
    StudyMismatch,
    TransferSyntaxNotSupported,
)
from omipacs.ingest.image import check_image, check_modality
from omipacs.ingest.origin import IngestOrigin

REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
MAX_FRAMES = 100_000


def _uid(parsed: ParsedFile, keyword: str) -> str:
    try:
        value = parsed.dataset.get(keyword)
    except Exception:
        value = None
    if value is None or str(value) == "":
        raise InvalidAttributes(f"{keyword} is missing")
    text = str(value)
    if not is_valid_uid(text):
        raise InvalidAttributes(f"{keyword} is not a valid UID ([0-9.], at most 64 characters)")
    return text


#: Default largest decoded frame: a full-field mammogram (about 4,800 x 6,000 x 16 bits,
#: 58 MB) fits; a forged 8192 x 8192 x 16 bits (128 MiB) or 65535 x 65535 does not.
MAX_FRAME_BYTES = 64 * 1024**2


def validate(
    parsed: ParsedFile,
    origin: IngestOrigin,
    max_instance_bytes: int,
    max_frame_bytes: int = MAX_FRAME_BYTES,
) -> None:
    """Raise the right :mod:`omipacs.errors` class if ``parsed`` may not be stored."""
    uids = {kw: _uid(parsed, kw) for kw in REQUIRED_UIDS}
    if parsed.transfer_syntax not in ACCEPTED_TRANSFER_SYNTAXES:
        raise TransferSyntaxNotSupported("transfer syntax is not accepted by this archive")
    if uids["SOPClassUID"] not in STORAGE_SOP_CLASSES:
        raise SopClassNotSupported("SOP class is not stored by this archive")
    meta_uid = str(parsed.file_meta.get("MediaStorageSOPInstanceUID", "") or "")
    if meta_uid and meta_uid != uids["SOPInstanceUID"]:
        raise InvalidAttributes("MediaStorageSOPInstanceUID differs from SOPInstanceUID")
    if (
        origin.expected_sop_instance_uid
        and origin.expected_sop_instance_uid != uids["SOPInstanceUID"]
    ):
        raise InvalidAttributes("data set SOPInstanceUID differs from the request's")
    if origin.expected_sop_class_uid and origin.expected_sop_class_uid != uids["SOPClassUID"]:
        raise InvalidAttributes("data set SOPClassUID differs from the request's")
    if origin.expected_study_uid and origin.expected_study_uid != uids["StudyInstanceUID"]:
        raise StudyMismatch("instance belongs to another study than the one in the request")
    check_modality(parsed, uids["SOPClassUID"])
    if parsed.pixel is not None:
        _validate_pixels(parsed, max_instance_bytes)
    check_image(parsed, uids["SOPClassUID"], max_frame_bytes)


def _validate_pixels(parsed: ParsedFile, max_instance_bytes: int) -> None:
    ds = parsed.dataset
    pixel = parsed.pixel
    assert pixel is not None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
        spp = int(ds.get("SamplesPerPixel") or 1)
    except Exception:
        raise InvalidAttributes(
            "pixel data without valid Rows, Columns and BitsAllocated"
        ) from None
    frames = number_of_frames(ds)
    if not (
        0 < rows <= 65535
        and 0 < cols <= 65535
        and bits in (1, 8, 16, 32, 64)
        and spp in (1, 3, 4)
        and frames <= MAX_FRAMES
    ):
        raise InvalidAttributes("image dimensions are out of range")
    declared = rows * cols * spp * frames * bits // 8
    if declared > max_instance_bytes:
        raise InvalidAttributes("declared image size is larger than this archive accepts")
    if pixel.encapsulated:
        return
    assert pixel.value is not None
    per_frame = native_frame_length(ds)
    expected = (
        per_frame * frames if per_frame is not None else (rows * cols * spp * frames + 7) // 8
    )
    if not (expected <= pixel.value.length <= expected + 1):
        raise InvalidAttributes(
            f"pixel data has {pixel.value.length} bytes; Rows x Columns x frames x bits "
            f"declare {expected}"
        )
