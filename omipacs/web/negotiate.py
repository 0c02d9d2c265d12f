"""Accept-header negotiation for WADO-RS (PS3.18 §8.7.3 and Table 8.7.3-5).

Only decides; producing the bytes is the retrieve service's job. Every decision is
taken before a response starts, so "cannot honour this" is a clean 406.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from omipacs.dicom.uids import NATIVE_TRANSFER_SYNTAXES
from omipacs.errors import NotAcceptable
from omipacs.retrieve.transcode import supported_targets
from omipacs.web.media import MediaRange, MediaType, parse_accept, quality

NATIVE = NATIVE_TRANSFER_SYNTAXES

#: Bulk (frame) media type of each compressed syntax (PS3.18 Table 8.7.3-5).
SYNTAX_MEDIA_TYPE: dict[str, str] = {
    JPEGBaseline8Bit: "image/jpeg",
    JPEGExtended12Bit: "image/jpeg",
    JPEGLossless: "image/jpeg",
    JPEGLosslessSV1: "image/jpeg",
    JPEGLSLossless: "image/jls",
    JPEGLSNearLossless: "image/jls",
    JPEG2000Lossless: "image/jp2",
    JPEG2000: "image/jp2",
    HTJ2KLossless: "image/jphc",
    HTJ2KLosslessRPCL: "image/jphc",
    HTJ2K: "image/jphc",
    RLELossless: "image/x-dicom-rle",
}
#: Default syntax of each bulk media type when no transfer-syntax is given.
MEDIA_TYPE_DEFAULT: dict[str, str] = {
    "application/octet-stream": ExplicitVRLittleEndian,
    "image/jpeg": JPEGBaseline8Bit,
    "image/jls": JPEGLSLossless,
    "image/jp2": JPEG2000Lossless,
    "image/jphc": HTJ2KLossless,
    "image/x-dicom-rle": RLELossless,
}
ANY = "*"


def _ranges(accept: str | None) -> list[MediaRange]:
    """The acceptable ranges, by preference; no header means ``*/*``, and a header of
    only ``q=0`` ranges accepts nothing (RFC 9110 §12.5.1)."""
    parsed = parse_accept(accept or "")
    if not parsed:
        return parse_accept("*/*")
    return [r for r in parsed if r.q > 0]


def _part_type(r: MediaRange, default_part: str) -> tuple[str | None, bool]:
    """The part media type a range asks for, and whether it is multipart."""
    if r.essence == "multipart/related":
        return (r.param("type") or default_part).lower(), True
    if r.type == "*" or (r.essence == "multipart/*"):
        return default_part, True
    return r.essence, False


def choose_instance_syntax(
    accept: str | None, stored: set[str], *, count: int
) -> tuple[str | None, bool]:
    """The transfer syntax to send instances in (None: as stored) and whether multipart.

    ``multipart/related; type="application/dicom"`` without ``transfer-syntax`` means
    Explicit VR Little Endian (PS3.18 §8.7.3.5.2); ``transfer-syntax=*`` means as stored.
    A single instance may also be asked for as a bare ``application/dicom``.
    """
    for r in _ranges(accept):
        part, multipart = _part_type(r, "application/dicom")
        if part not in ("application/dicom", "*/*") or (not multipart and count != 1):
            continue
        wanted = r.param("transfer-syntax") or ExplicitVRLittleEndian
        if wanted == ANY:
            return None, multipart
        if all(wanted in supported_targets(s) for s in stored):
            return (None if stored == {wanted} else wanted), multipart
    raise NotAcceptable(
        "cannot provide the instances in any media type and transfer syntax accepted"
    )


@dataclass(frozen=True)
class FrameChoice:
    """How to send frames: target syntax (None: as stored), part media type, multipart."""

    target: str | None
    media_type: str
    multipart: bool


def frame_media_type(syntax: str) -> str:
    """Content-Type of one frame part in ``syntax`` (its transfer-syntax parameter set)."""
    essence = (
        "application/octet-stream"
        if syntax in NATIVE
        else SYNTAX_MEDIA_TYPE.get(syntax, "application/octet-stream")
    )
    return f"{essence}; transfer-syntax={syntax}"


def choose_frame_syntax(accept: str | None, stored: str, *, count: int) -> FrameChoice:
    """Negotiate bulk pixel data for ``/frames`` (and ``/bulkdata`` of Pixel Data)."""
    targets = supported_targets(stored)
    for r in _ranges(accept):
        part, multipart = _part_type(r, "application/octet-stream")
        if part is None:
            continue
        if not multipart and count != 1:
            continue
        wanted = r.param("transfer-syntax")
        if part in ("*/*", "application/*"):
            part = "application/octet-stream"
            wanted = wanted or ANY
        if wanted == ANY:
            return FrameChoice(None, frame_media_type(stored), multipart)
        if part not in MEDIA_TYPE_DEFAULT:
            continue
        wanted = wanted or (
            stored if SYNTAX_MEDIA_TYPE.get(stored) == part else MEDIA_TYPE_DEFAULT[part]
        )
        if part == "application/octet-stream" and wanted not in NATIVE:
            continue
        if part != "application/octet-stream" and SYNTAX_MEDIA_TYPE.get(wanted) != part:
            continue
        if wanted == stored:
            return FrameChoice(None, frame_media_type(stored), multipart)
        if wanted in targets:
            return FrameChoice(wanted, frame_media_type(wanted), multipart)
    if any(_part_type(r, "")[0] == "image/jpeg" for r in _ranges(accept)):
        raise NotAcceptable(
            "JPEG frames are served only for instances stored as JPEG: the archive does "
            "not re-encode lossily (JPEG baseline) and has no JPEG lossless encoder; ask "
            "for application/octet-stream, image/jls, image/jp2 or image/x-dicom-rle"
        )
    raise NotAcceptable("cannot provide the frames in any media type and transfer syntax accepted")


#: Parameters every textual answer has: its bytes are UTF-8 (PS3.18 §8.7.3.1), so a
#: range asking for ``charset=utf-8`` matches it (RFC 9110 §12.5.1 compares parameters).
TEXT_PARAMS: dict[str, str] = {"charset": "utf-8"}
_TEXTUAL = ("application/dicom+json", "application/json", "application/dicom+xml", "text/")


def produced(candidate: str) -> MediaType:
    """The media type ``candidate`` is served as, with the parameters it really has."""
    main, sub = candidate.split("/", 1)
    textual = candidate.startswith(_TEXTUAL)
    return MediaType(main, sub, dict(TEXT_PARAMS) if textual else {})


def wants(accept: str | None, *candidates: str) -> str:
    """The first of ``candidates`` the Accept header allows, by preference (406 if none).

    A range's parameters must be parameters the answer has (RFC 9110 §12.5.1): so
    ``application/dicom+json; charset=utf-8`` is served, ``...; charset=latin1`` is not.
    """
    parsed = parse_accept(accept or "")
    for r in _ranges(accept):
        for c in candidates:
            # The most specific range decides a type's quality: "*/*, a/b;q=0" refuses a/b.
            if r.matches(produced(c)) and quality(parsed, produced(c)) > 0:
                return c
    raise NotAcceptable(f"this resource is available as {', '.join(candidates)}")


def wants_xml_metadata(accept: str | None) -> bool:
    """Whether ``/metadata`` is asked for as PS3.19 XML rather than DICOM JSON.

    XML comes only as ``multipart/related; type="application/dicom+xml"`` (PS3.18
    Table 8.7.3-2); JSON answers ``application/dicom+json``, ``application/json`` and
    wildcards. The first acceptable range, by preference, decides; 406 when neither.
    """
    json_types = [produced("application/dicom+json"), produced("application/json")]
    for r in _ranges(accept):
        if r.essence == "multipart/related" and (r.param("type") or "").lower() == (
            "application/dicom+xml"
        ):
            return True
        if any(r.matches(t) for t in json_types):
            return False
    raise NotAcceptable(
        "metadata is available as application/dicom+json or multipart/related; "
        'type="application/dicom+xml"'
    )
