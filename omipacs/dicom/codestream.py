"""Read what a compressed frame's own stream header declares, without decoding it.

A frame is decoded to the size its codec stream says (the JPEG SOF, the JPEG-LS SOF55,
the JPEG 2000 SIZ), not to the size the DICOM header says. A few kilobytes declaring
8192 x 8192 therefore cost a decoder hundreds of megabytes. Ingest
reads these headers and refuses a frame whose stream disagrees with Rows, Columns,
Samples per Pixel and Bits Allocated, so the DICOM header, which ingest bounds, is the
size every later decode allocates.

pydicom's own ``get_j2k_parameters`` returns only precision and signedness, and its JPEG
parser does not say which kind of SOF it found (JPEG or JPEG-LS), which is what tells a
stream that contradicts its transfer syntax; hence the small parsers here (ITU-T T.81
B.2, ITU-T T.87 C.2, ITU-T T.800 A.5, PS3.5 G.3 for RLE).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pydicom import uid as pyuid

from omipacs.errors import InvalidAttributes

JPEG_SYNTAXES = frozenset(
    {
        pyuid.JPEGBaseline8Bit,
        pyuid.JPEGExtended12Bit,
        pyuid.JPEGLossless,
        pyuid.JPEGLosslessSV1,
    }
)
JPEG_LS_SYNTAXES = frozenset({pyuid.JPEGLSLossless, pyuid.JPEGLSNearLossless})
J2K_SYNTAXES = frozenset(
    {
        pyuid.JPEG2000Lossless,
        pyuid.JPEG2000,
        pyuid.HTJ2KLossless,
        pyuid.HTJ2KLosslessRPCL,
        pyuid.HTJ2K,
    }
)
RLE_SYNTAXES = frozenset({pyuid.RLELossless})

#: Start-of-frame markers of ITU-T T.81 (all but DHT C4, JPG C8 and DAC CC).
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
#: Which SOF kinds each JPEG transfer syntax may carry (PS3.5 A.4.1).
_JPEG_SOF_FOR: dict[str, frozenset[int]] = {
    pyuid.JPEGBaseline8Bit: frozenset({0xC0}),
    pyuid.JPEGExtended12Bit: frozenset({0xC0, 0xC1}),
    pyuid.JPEGLossless: frozenset({0xC3}),
    pyuid.JPEGLosslessSV1: frozenset({0xC3}),
}
_SOF55 = 0xF7
#: Markers without a length field (RSTn, SOI, EOI, TEM).
_STANDALONE = frozenset({0x01, 0xD8, 0xD9, *range(0xD0, 0xD8)})

#: Bytes of a frame read to find its header; enough for any sane APP/DQT/DHT prelude.
HEADER_PROBE_BYTES = 1 << 16


@dataclass(frozen=True)
class StreamHeader:
    """What a frame's codec stream declares."""

    rows: int
    columns: int
    components: int
    precision: int
    """Bits per sample in the stream (for RLE: 8 per byte segment, times segments)."""


def _bad(what: str) -> InvalidAttributes:
    return InvalidAttributes(f"compressed frame: {what}")


def _jpeg(data: bytes, allowed: frozenset[int]) -> StreamHeader:
    """JPEG (T.81) or JPEG-LS (T.87) marker walk to the first SOF."""
    if data[:2] != b"\xff\xd8":
        raise _bad("no JPEG SOI marker at the start of the frame")
    pos = 2
    while True:
        while pos < len(data) and data[pos] == 0xFF and pos + 1 < len(data) and (
            data[pos + 1] == 0xFF
        ):
            pos += 1  # fill bytes (T.81 B.1.1.2)
        if pos + 4 > len(data):
            raise _bad("no start-of-frame marker in the frame's header")
        if data[pos] != 0xFF:
            raise _bad("malformed JPEG marker segment")
        marker = data[pos + 1]
        if marker in _STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            raise _bad("malformed JPEG marker segment length")
        if marker in _JPEG_SOF or marker == _SOF55:
            if marker not in allowed:
                raise _bad(
                    f"stream has a SOF marker 0xFF{marker:02X} the transfer syntax does not allow"
                )
            seg = data[pos + 4 : pos + 2 + length]
            if len(seg) < 6:
                raise _bad("start-of-frame segment is truncated")
            precision, rows, cols, comps = struct.unpack(">BHHB", seg[:6])
            return StreamHeader(rows, cols, comps, precision)
        if marker == 0xDA:
            raise _bad("scan data before any start-of-frame marker")
        pos += 2 + length


def _j2k(data: bytes) -> StreamHeader:
    """JPEG 2000 / HTJ2K codestream: SOC then SIZ (T.800 A.5.1)."""
    if data[:4] != b"\xff\x4f\xff\x51":
        raise _bad("not a JPEG 2000 codestream (no SOC and SIZ markers; JP2 boxes not allowed)")
    if len(data) < 4 + 38 + 3:
        raise _bad("JPEG 2000 SIZ segment is truncated")
    (_lsiz, _rsiz, xsiz, ysiz, xo, yo, _xt, _yt, _xto, _yto, csiz) = struct.unpack(
        ">HHIIIIIIIIH", data[4:42]
    )
    if csiz < 1 or len(data) < 42 + 3 * csiz:
        raise _bad("JPEG 2000 SIZ segment is truncated or has no components")
    precisions = {(data[42 + 3 * i] & 0x7F) + 1 for i in range(csiz)}
    if xsiz <= xo or ysiz <= yo:
        raise _bad("JPEG 2000 image area is empty")
    return StreamHeader(ysiz - yo, xsiz - xo, csiz, max(precisions))


def _rle(data: bytes, frame_length: int, segments_expected: int) -> StreamHeader:
    """RLE Lossless header: segment count and 15 offsets (PS3.5 G.3.1)."""
    if len(data) < 64:
        raise _bad("RLE header is truncated")
    count, *offsets = struct.unpack("<16L", data[:64])
    if count != segments_expected:
        raise _bad(
            f"RLE header has {count} segments; Samples per Pixel and Bits Allocated need "
            f"{segments_expected}"
        )
    used = offsets[:count]
    if not used or used[0] != 64 or used != sorted(set(used)) or used[-1] >= frame_length:
        raise _bad("RLE segment offsets are out of order or outside the frame")
    if any(offsets[count:]):
        raise _bad("RLE header has offsets for unused segments")
    return StreamHeader(0, 0, 0, 8 * count)


def read_header(
    transfer_syntax: str, head: bytes, frame_length: int, rle_segments: int = 0
) -> StreamHeader | None:
    """The header of one compressed frame (``head``: its first bytes), or None for a
    transfer syntax without one (native data).

    For RLE, rows and columns are not in the stream (the decoder takes them from the
    DICOM header), so they are returned as 0; ``rle_segments`` is the expected count.

    Raises
    ------
    InvalidAttributes
        The frame does not start with the header its transfer syntax requires, or the
        header is malformed.
    """
    if transfer_syntax in JPEG_SYNTAXES:
        return _jpeg(head, _JPEG_SOF_FOR[transfer_syntax])
    if transfer_syntax in JPEG_LS_SYNTAXES:
        return _jpeg(head, frozenset({_SOF55}))
    if transfer_syntax in J2K_SYNTAXES:
        return _j2k(head)
    if transfer_syntax in RLE_SYNTAXES:
        return _rle(head, frame_length, rle_segments)
    return None


def is_encapsulated_syntax(transfer_syntax: str) -> bool:
    """True for transfer syntaxes whose pixel data must be encapsulated (PS3.5 A.4)."""
    return transfer_syntax in JPEG_SYNTAXES | JPEG_LS_SYNTAXES | J2K_SYNTAXES | RLE_SYNTAXES
