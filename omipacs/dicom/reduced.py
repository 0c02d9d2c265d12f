"""Decode a frame at a half, a quarter, ... of its resolution when its codec allows it.

``/rendered`` with a viewport and ``/thumbnail`` produce a picture much smaller than the
frame, so decoding every pixel of a 3328 x 4096 (or, at the ingest bound, 8192 x 8192)
frame only to average it away costs memory and time for nothing. Two codecs can decode
at a lower resolution directly:

* JPEG 2000 and HTJ2K (PS3.5 A.4.4, A.4.6): the wavelet's resolution levels; decoding
  ``r`` levels fewer gives the image at 1/2**r, the low-pass band the full decode would
  have filtered down anyway (T.800 annex B.5, OpenJPEG's ``reduce``).
* Baseline JPEG, 8 bits (PS3.5 A.4.1): libjpeg's DCT scaling to 1/2, 1/4 or 1/8.

Both go through Pillow, whose bundled OpenJPEG and libjpeg expose these options
(``Jpeg2KImageFile.reduce``, ``JpegImageFile.draft``); pylibjpeg's plugins do not. Only
one-sample unsigned frames (mammograms, projections, slices) take this path; colour and
signed frames, and every other codec (JPEG-LS, lossless JPEG, RLE, native), are decoded
in full by :func:`omipacs.dicom.pixels.decode_frame` and reduced by the renderer.
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from typing import Final

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
)

from omipacs.dicom.pixels import (
    decode_cost,
    decode_frame,
    decode_slot,
    note_decoded,
    pixel_options,
)

LOGGER = logging.getLogger(__name__)

J2K_SYNTAXES: Final[frozenset[str]] = frozenset(
    {JPEG2000Lossless, JPEG2000, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K}
)
"""Transfer syntaxes whose frames are JPEG 2000 (or HTJ2K) codestreams."""

_MONOCHROME: Final = frozenset({"MONOCHROME1", "MONOCHROME2"})


def decode_frame_reduced(
    header: Dataset, frame: bytes, transfer_syntax: str, most: int
) -> tuple[np.ndarray, int]:
    """Decode one frame at 1/`scale` of its resolution, `scale` a power of two <= `most`.

    Parameters
    ----------
    header, frame, transfer_syntax
        As for :func:`omipacs.dicom.pixels.decode_frame`.
    most : int
        The largest reduction the caller can use (the ratio of the frame to the picture
        it will make); 1 asks for the full frame.

    Returns
    -------
    tuple[numpy.ndarray, int]
        The pixels (stored values, as :func:`~omipacs.dicom.pixels.decode_frame` returns
        them) and the scale they were decoded at: 1 when the codec cannot reduce, and
        then the array is the full frame. A reduced frame's side is the full side divided
        by the scale, rounded up or to the nearest (as the codec does).

    Raises
    ------
    NotAcceptable
        As :func:`~omipacs.dicom.pixels.decode_frame`; a stream the reduced decoder
        refuses is decoded in full, so a corrupt one is refused the same way.
    """
    scale = reduction(header, frame, transfer_syntax, most)
    if scale > 1:
        try:
            with decode_slot(decode_cost(header, transfer_syntax, scale)):
                reduced = _decode_with_pillow(
                    header, frame, transfer_syntax, scale.bit_length() - 1
                )
                if reduced is not None:
                    note_decoded(reduced[0].nbytes)
                    return reduced
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            LOGGER.debug("reduced decoding failed (%s); decoding in full", exc)
    return decode_frame(header, frame, transfer_syntax), 1


def reduction(header: Dataset, frame: bytes, transfer_syntax: str, most: int) -> int:
    """The scale :func:`decode_frame_reduced` decodes `frame` at given `most`: a power of
    two no larger than `most` and than the codec allows (JPEG 2000: the codestream's
    decomposition levels; JPEG: 8), or 1."""
    levels = int(math.log2(most)) if most >= 2 else 0
    if not levels or not _reducible(header, transfer_syntax):
        return 1
    if transfer_syntax in J2K_SYNTAXES:
        levels = min(levels, _j2k_levels(frame))
    else:
        levels = min(levels, 3)
    return 1 << levels


def _reducible(header: Dataset, transfer_syntax: str) -> bool:
    """One unsigned grey sample of 8 (JPEG) or 8/16 (JPEG 2000) bits allocated."""
    if transfer_syntax not in J2K_SYNTAXES and transfer_syntax != JPEGBaseline8Bit:
        return False
    opts = pixel_options(header)
    bits = opts["bits_allocated"]
    return bool(
        opts["samples_per_pixel"] == 1
        and opts["pixel_representation"] == 0
        and opts["photometric_interpretation"] in _MONOCHROME
        and (bits == 8 if transfer_syntax == JPEGBaseline8Bit else bits in (8, 16))
    )


def _decode_with_pillow(
    header: Dataset, frame: bytes, transfer_syntax: str, levels: int
) -> tuple[np.ndarray, int] | None:
    """Decode with Pillow at up to `levels` halvings, or None when the stream does not
    describe the frame the header does (then the full decoder has its say)."""
    opts = pixel_options(header)
    rows, columns = opts["rows"], opts["columns"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(frame))
    if image.size != (columns, rows):
        return None
    shift = 0
    if transfer_syntax in J2K_SYNTAXES:
        if image.format != "JPEG2000" or image.mode not in ("L", "I;16"):
            return None
        precision = _j2k_precision(frame)
        if precision is None or precision > opts["bits_allocated"]:
            return None
        levels = min(levels, _j2k_levels(frame))
        if levels < 1:
            return None
        # Pillow scales samples of fewer than 16 bits up to 16 (I;16); undo it.
        shift = 16 - precision if image.mode == "I;16" else 0
        image.reduce = levels  # type: ignore[assignment,method-assign]
        scale = 1 << levels
    else:
        if image.format != "JPEG" or image.mode != "L":
            return None
        wanted = (-(-columns // (1 << levels)), -(-rows // (1 << levels)))
        image.draft("L", wanted)
        scale = next((s for s in (8, 4, 2) if -(-columns // s) == image.size[0]), 1)
        if scale == 1:
            return None
    pixels = np.asarray(image)
    if shift:
        pixels = pixels >> shift
    dtype = np.uint8 if opts["bits_allocated"] == 8 else np.uint16
    return pixels.astype(dtype, copy=False), scale


def _j2k_precision(stream: bytes) -> int | None:
    """Bits per sample of a one-component codestream's SIZ segment (T.800 A.5.1)."""
    if stream[:4] != b"\xff\x4f\xff\x51" or len(stream) < 43:
        return None
    return (stream[42] & 0x7F) + 1


def _j2k_levels(stream: bytes) -> int:
    """Decomposition levels of the main header's COD segment (T.800 A.6.1), 0 if not found.

    OpenJPEG cannot drop more resolution levels than the codestream has.
    """
    pos = 2  # after SOC
    while pos + 4 <= len(stream):
        marker = int.from_bytes(stream[pos : pos + 2], "big")
        length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        if marker == 0xFF52:  # COD: Lcod, Scod, SGcod (4 bytes), then SPcod's levels
            return stream[pos + 9] if pos + 9 < len(stream) else 0
        if marker in (0xFF90, 0xFF93) or length < 2:  # SOT or SOD: main header over
            return 0
        pos += 2 + length
    return 0
