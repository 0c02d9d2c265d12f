"""Re-encode stored instances and frames in another transfer syntax for WADO-RS.

A WADO-RS client may ask for ``transfer-syntax=1.2.840.10008.1.2.1`` (or another syntax)
when the archive holds the instance in a compressed form, or the reverse (PS3.18 8.7.3.5).
The archive keeps what it received, so the conversion happens on the way out:

* :func:`transcode_frame` converts a single frame for ``/frames`` requests.
* :func:`transcode_instance` converts a whole Part 10 file for instance, series and study
  retrieval, as a stream of chunks: the re-encoded header first, then the pixel data one
  frame at a time. At most one decoded frame is held at once, so a 1 GB tomosynthesis
  object costs about one frame of memory, not one object.

Every conversion is lossless with respect to the stored pixels: decompression to a native
syntax, or recompression with a reversible codec (RLE, reversible JPEG 2000, JPEG-LS with
NEAR=0). A request for JPEG 2000 (.4.91) or JPEG-LS near-lossless (.4.81) is answered with
a reversible codestream, which both syntaxes permit (PS3.5 A.4.4, A.4.3). Lossy targets
(JPEG baseline, lossy JPEG 2000) are never produced: a research archive must not degrade
pixels behind the client's back.

Decisions are made before the first byte is produced, so a refusal is a clean 406 rather
than a response cut off mid-stream (the first frame is converted eagerly for that reason).
"""

from __future__ import annotations

import copy
import io
import os
import struct
from collections.abc import Generator, Iterator
from typing import Any, BinaryIO, Final

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.pixels.encoders.base import get_encoder
from pydicom.pixels.utils import pack_bits
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    ExplicitVRBigEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from omipacs.dicom.pixels import (
    LOSSY_SYNTAXES,
    can_decode,
    decode_frame_with_properties,
    is_native,
    native_frame_length,
    number_of_frames,
    pixel_options,
)
from omipacs.dicom.uids import NATIVE_TRANSFER_SYNTAXES
from omipacs.errors import NotAcceptable

CHUNK_SIZE: Final = 1 << 20
"""Bytes per chunk when native pixel data is copied without decoding."""

NATIVE_TARGETS: Final[frozenset[str]] = NATIVE_TRANSFER_SYNTAXES
"""Uncompressed syntaxes produced here; Explicit VR Big Endian is retired (PS3.5 A.3)."""

_ENCODE_WITH: Final[dict[str, str]] = {
    RLELossless: RLELossless,
    JPEG2000Lossless: JPEG2000Lossless,
    JPEG2000: JPEG2000Lossless,
    JPEGLSLossless: JPEGLSLossless,
    JPEGLSNearLossless: JPEGLSLossless,
}
"""Compressed target -> the reversible encoder used to produce it."""

_RELABEL: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        (JPEG2000Lossless, JPEG2000),
        (JPEGLSLossless, JPEGLSNearLossless),
        (JPEGLosslessSV1, JPEGLossless),
        (HTJ2KLossless, HTJ2K),
        (HTJ2KLosslessRPCL, HTJ2K),
        (HTJ2KLosslessRPCL, HTJ2KLossless),
    }
)
"""(source, target) pairs where the stored codestream already conforms to the target.

A reversible JPEG 2000 codestream is valid JPEG 2000 (.4.91), a NEAR=0 JPEG-LS one valid
near-lossless JPEG-LS (.4.81), selection value 1 is one case of Process 14 (.4.57), and an
HTJ2K lossless codestream, RPCL or not, is valid HTJ2K (PS3.5 A.4.1, A.4.3, A.4.4, A.4.6).
These conversions copy the fragments and change only the Transfer Syntax UID.
"""

_PIXEL_TAGS: Final = {0x7FE00010: "PixelData", 0x7FE00008: "OF", 0x7FE00009: "OD"}
_ITEM: Final = 0xFFFEE000
_SEQUENCE_DELIMITER: Final = 0xFFFEE0DD
_UNDEFINED: Final = 0xFFFFFFFF
_TRAILING_PADDING: Final = 0xFFFCFFFC


def _encoder_available(target: str) -> bool:
    """Return True if pydicom has a working encoder plugin for `target`."""
    via = _ENCODE_WITH.get(target)
    return via is not None and get_encoder(UID(via)).is_available


def supported_targets(source_syntax: str) -> frozenset[str]:
    """Return the transfer syntaxes an instance stored in `source_syntax` can be sent in.

    Always the source itself and any syntax its codestreams already satisfy
    (``_RELABEL``); when its frames can be decoded here, also Explicit and
    Implicit VR Little Endian and every compressed syntax in ``_ENCODE_WITH`` whose encoder
    is installed. Whether a particular image fits a codec (bit depth, colour model) is
    checked per instance by :func:`transcode_instance` and :func:`transcode_frame`.
    """
    targets = {str(source_syntax)}
    targets |= {target for source, target in _RELABEL if source == source_syntax}
    if can_decode(source_syntax):
        targets |= NATIVE_TARGETS
        targets |= {target for target in _ENCODE_WITH if _encoder_available(target)}
    return frozenset(targets)


def _check_target(source_syntax: str, target_syntax: str) -> None:
    """Raise NotAcceptable unless `target_syntax` is reachable from `source_syntax`."""
    if target_syntax not in supported_targets(source_syntax):
        raise NotAcceptable(
            f"cannot convert {UID(source_syntax).name} to transfer syntax {target_syntax}"
        )


def _native_bytes(arr: np.ndarray, bits_allocated: int) -> bytes:
    """Encode a decoded frame as native little endian pixel data (PS3.5 8.1.1)."""
    if bits_allocated == 1:
        return pack_bits(arr, pad=False)
    if arr.dtype.itemsize * 8 != bits_allocated:
        raise NotAcceptable(f"cannot write {bits_allocated}-bit native pixel data")
    little: np.ndarray = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return little.tobytes()


def _encode_options(header: Dataset, props: dict[str, str | int]) -> dict[str, Any]:
    """Return encoder options: the header's Image Pixel values as decoded (one frame)."""
    opts = pixel_options(header)
    opts.pop("pixel_keyword", None)
    opts["photometric_interpretation"] = props.get(
        "photometric_interpretation", opts["photometric_interpretation"]
    )
    if opts["samples_per_pixel"] > 1:
        opts["planar_configuration"] = 0
    return opts


def _encode_frame(arr: np.ndarray, opts: dict[str, Any], target_syntax: str) -> bytes:
    """Compress one decoded frame with the reversible encoder for `target_syntax`."""
    encoder = get_encoder(UID(_ENCODE_WITH[target_syntax]))
    try:
        return bytes(encoder.encode(arr, **opts))
    except (ValueError, RuntimeError) as exc:
        raise NotAcceptable(
            f"this image cannot be encoded as {UID(target_syntax).name}: {str(exc).splitlines()[0]}"
        ) from exc


def _convert(
    arr: np.ndarray, header: Dataset, props: dict[str, str | int], target_syntax: str
) -> bytes:
    """Encode a decoded frame in `target_syntax` (native or compressed)."""
    if target_syntax in NATIVE_TARGETS:
        return _native_bytes(arr, int(header.BitsAllocated))
    return _encode_frame(arr, _encode_options(header, props), target_syntax)


def transcode_frame(header: Dataset, frame_bytes: bytes, from_syntax: str, to_syntax: str) -> bytes:
    """Convert one frame, as stored, to another transfer syntax for ``/frames``.

    Parameters
    ----------
    header : pydicom.dataset.Dataset
        The instance's attributes (read with ``stop_before_pixels``).
    frame_bytes : bytes
        The stored frame: native bytes, or an encapsulated frame's fragments joined.
    from_syntax, to_syntax : str
        The stored and the requested transfer syntax UIDs.

    Returns
    -------
    bytes
        Native little endian frame bytes, or one compressed codestream. Colour frames
        decoded from YBR come back as RGB with planar configuration 0.

    Raises
    ------
    NotAcceptable
        If the conversion is impossible here, or the frame cannot be decoded or encoded.
    """
    if from_syntax == to_syntax or (from_syntax, to_syntax) in _RELABEL:
        return bytes(frame_bytes)
    _check_target(from_syntax, to_syntax)
    if (
        is_native(from_syntax)
        and from_syntax != ExplicitVRBigEndian
        and to_syntax in (NATIVE_TARGETS)
    ):
        return bytes(frame_bytes)  # both little endian: the frame bytes are the same
    arr, props = decode_frame_with_properties(header, frame_bytes, from_syntax)
    return _convert(arr, header, props, to_syntax)


# -------------------------------------------------------------------- whole instances


class _PixelElement:
    """Where the pixel data element sits in the source file, and what it is."""

    def __init__(self, tag: int, vr: str | None, length: int, value_start: int, end: int):
        self.tag = tag
        self.vr = vr
        self.length = length
        self.value_start = value_start
        self.end = end

    @property
    def encapsulated(self) -> bool:
        """True for undefined length, i.e. encapsulated pixel data (PS3.5 A.4)."""
        return self.length == _UNDEFINED


def _read_pixel_element(fp: BinaryIO, implicit: bool, little: bool) -> _PixelElement | None:
    """Parse the pixel data element header at the current position and find its end.

    For encapsulated data only the item headers are read (each value is skipped with a
    seek), so finding the end costs a few bytes per fragment.
    """
    order = "<" if little else ">"
    start = fp.tell()
    head = fp.read(8)
    if len(head) < 8:
        fp.seek(start)
        return None
    group, elem = struct.unpack(f"{order}HH", head[:4])
    tag = group << 16 | elem
    if tag not in _PIXEL_TAGS:
        fp.seek(start)
        return None
    vr: str | None = None
    if implicit:
        length = struct.unpack(f"{order}L", head[4:])[0]
        value_start = start + 8
    else:
        vr = head[4:6].decode("ascii", "replace")
        length = struct.unpack(f"{order}L", fp.read(4))[0]
        value_start = start + 12
    if length != _UNDEFINED:
        return _PixelElement(tag, vr, length, value_start, value_start + length)
    fp.seek(value_start)
    while True:
        item = fp.read(8)
        if len(item) < 8:
            end = fp.tell()  # truncated sequence: treat the end of file as its end
            break
        item_group, item_elem, item_length = struct.unpack(f"{order}HHL", item)
        item_tag = item_group << 16 | item_elem
        if item_tag == _SEQUENCE_DELIMITER:
            end = fp.tell()
            break
        if item_tag != _ITEM or item_length == _UNDEFINED:
            raise ValueError("malformed encapsulated pixel data in stored instance")
        fp.seek(item_length, os.SEEK_CUR)
    fp.seek(value_start)
    return _PixelElement(tag, vr, length, value_start, end)


def _element_header(tag: int, vr: str, length: int, implicit: bool) -> bytes:
    """Encode a little endian data element header (PS3.5 7.1.1, 7.1.2)."""
    if implicit:
        return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, length)
    return struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr.encode("ascii"), 0, length)


def _item(payload: bytes) -> bytes:
    """Encode one fragment item, padded to even length (PS3.5 A.4)."""
    if len(payload) % 2:
        payload += b"\x00"
    return struct.pack("<HHL", 0xFFFE, 0xE000, len(payload)) + payload


def _encode_dataset(ds: Dataset, implicit: bool, charset: Any) -> bytes:
    """Encode elements that follow the pixel data with the target's VR encoding."""
    if not len(ds):
        return b""
    out = DicomBytesIO()
    out.is_little_endian = True
    out.is_implicit_VR = implicit
    write_dataset(out, ds, parent_encoding=charset or "iso8859")
    return out.getvalue()


class TranscodedInstance(Iterator[bytes]):
    """A Part 10 file being re-encoded, as an iterator of byte chunks.

    It has ``close()``, which WSGI servers call when a response ends or is abandoned, so
    the source file is released even if the client disconnects mid-stream.
    """

    def __init__(
        self,
        chunks: Generator[bytes, None, None],
        transfer_syntax: str,
        fp: BinaryIO | None,
    ) -> None:
        self._chunks = chunks
        self._fp = fp
        self.transfer_syntax = transfer_syntax
        """The transfer syntax UID of the bytes produced."""

    def __iter__(self) -> TranscodedInstance:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        """Stop producing chunks and close the source file if this object opened it."""
        self._chunks.close()
        if self._fp is not None:
            self._fp.close()
            self._fp = None

    def __enter__(self) -> TranscodedInstance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _copy(fp: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    """Yield `length` bytes of `fp` from `start`, CHUNK_SIZE at a time."""
    fp.seek(start)
    remaining = length
    while remaining > 0:
        chunk = fp.read(min(CHUNK_SIZE, remaining))
        if not chunk:
            raise ValueError("stored instance is shorter than its pixel data element")
        remaining -= len(chunk)
        yield chunk


def _source_frames(
    fp: BinaryIO, header: Dataset, element: _PixelElement, source_syntax: str
) -> Iterator[bytes]:
    """Yield the stored frames one at a time (native bytes or joined fragments)."""
    count = number_of_frames(header)
    fp.seek(element.value_start)
    if element.encapsulated:
        extended = None
        if "ExtendedOffsetTable" in header and "ExtendedOffsetTableLengths" in header:
            extended = (header.ExtendedOffsetTable, header.ExtendedOffsetTableLengths)
        order = ">" if source_syntax == ExplicitVRBigEndian else "<"
        frames = generate_frames(
            fp, number_of_frames=count, extended_offsets=extended, endianness=order
        )
        for index, frame in enumerate(frames):
            if index >= count:
                break
            yield frame
        return
    size = native_frame_length(header)
    if (
        int(header.BitsAllocated) == 1
        and count > 1
        and size * 8
        != (int(header.Rows) * int(header.Columns) * int(header.get("SamplesPerPixel", 1)))
    ):
        raise NotAcceptable("1-bit frames that are not byte aligned cannot be converted")
    for _ in range(count):
        frame = fp.read(size)
        if len(frame) < size:
            raise ValueError("stored instance is shorter than its declared frames")
        yield frame


def _prepare_header(
    header: Dataset, source_syntax: str, target_syntax: str, props: dict[str, str | int] | None
) -> Dataset:
    """Adjust the header for the new encoding of its pixel data.

    * Photometric Interpretation and Planar Configuration follow the decoded frames (a
      YBR_FULL_422 JPEG decompresses to RGB, planar configuration 0; PS3.5 8.2.1).
    * The extended offset table describes the old fragments, so it goes (PS3.3 C.7.6.3).
    * Pixels that were lossy compressed stay marked so (Lossy Image Compression "01",
      PS3.3 C.7.6.1.1.5) even once they are stored natively.

    Works on a copy: the frames still to be decoded need the stored description.
    """
    header = copy.deepcopy(header)
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in header:
            delattr(header, keyword)
    if props is not None:
        header.PhotometricInterpretation = props.get(
            "photometric_interpretation", header.PhotometricInterpretation
        )
        if int(header.get("SamplesPerPixel", 1) or 1) > 1:
            header.PlanarConfiguration = 0
    if source_syntax in LOSSY_SYNTAXES and "LossyImageCompression" not in header:
        header.LossyImageCompression = "01"
    header.file_meta.TransferSyntaxUID = UID(target_syntax)
    return header


def transcode_instance(
    source: str | os.PathLike[str] | BinaryIO, target_syntax: str
) -> TranscodedInstance:
    """Re-encode a stored Part 10 file in `target_syntax`, streamed in chunks.

    The checks and the conversion of the first frame happen before this function returns,
    so a refusal raises here and never truncates a response. The returned iterator yields
    the preamble, file meta and header (re-encoded by pydicom), then the pixel data
    element one frame at a time, then any elements stored after the pixel data.

    Native targets get a defined-length pixel data element; compressed targets get
    encapsulated pixel data with an empty Basic Offset Table and one fragment per frame
    (PS3.5 A.4). Converting between the two little endian native syntaxes copies the
    pixel bytes without decoding them. The SOP Instance UID is unchanged, as the pixels
    are (PS3.18 8.7.3.5.2).

    Parameters
    ----------
    source : path or binary file
        The stored instance. A path is opened here and closed by the iterator; a file
        object stays the caller's to close.
    target_syntax : str
        The requested transfer syntax UID.

    Returns
    -------
    TranscodedInstance
        An iterator of byte chunks with ``close()`` and ``transfer_syntax``.

    Raises
    ------
    NotAcceptable
        If the stored syntax cannot be converted to `target_syntax`, or this image does
        not fit the target's codec.
    """
    owned = isinstance(source, str | os.PathLike)
    fp: BinaryIO = (
        open(os.fspath(source), "rb") if isinstance(source, str | os.PathLike) else source
    )
    try:
        stream = _plan(fp, str(target_syntax))
    except BaseException:
        if owned:
            fp.close()
        raise
    return TranscodedInstance(stream, str(target_syntax), fp if owned else None)


def _plan(fp: BinaryIO, target_syntax: str) -> Generator[bytes, None, None]:
    """Do every check and the first frame's conversion now; return the chunk generator."""
    file_start = fp.tell()
    header = pydicom.dcmread(fp, stop_before_pixels=True)
    source_syntax = str(header.file_meta.get("TransferSyntaxUID", ""))
    if not source_syntax:
        raise NotAcceptable("the stored instance has no Transfer Syntax UID")
    if source_syntax == target_syntax:
        fp.seek(0, os.SEEK_END)
        size = fp.tell() - file_start
        return _as_generator(_copy(fp, file_start, size))
    _check_target(source_syntax, target_syntax)

    implicit_src = source_syntax == ImplicitVRLittleEndian
    little_src = source_syntax != ExplicitVRBigEndian
    element = _read_pixel_element(fp, implicit_src, little_src)
    pixel_end = element.end if element is not None else fp.tell()
    fp.seek(pixel_end)
    tail = read_dataset(fp, implicit_src, little_src)
    if _TRAILING_PADDING in tail:
        del tail[_TRAILING_PADDING]
    implicit_dst = target_syntax == ImplicitVRLittleEndian
    charset = header.get("SpecificCharacterSet")
    tail_bytes = _encode_dataset(tail, implicit_dst, charset)

    native_copy = little_src and is_native(source_syntax) and target_syntax in NATIVE_TARGETS
    if element is not None and _PIXEL_TAGS[element.tag] != "PixelData" and not native_copy:
        raise NotAcceptable("float pixel data can only be sent uncompressed and little endian")
    if element is None or native_copy or (source_syntax, target_syntax) in _RELABEL:
        head = _header_bytes(_prepare_header(header, source_syntax, target_syntax, None))
        pieces: list[Iterator[bytes]] = [iter([head])]
        if element is not None and element.encapsulated:
            pieces.append(iter([_element_header(element.tag, "OB", _UNDEFINED, False)]))
            pieces.append(_copy(fp, element.value_start, element.end - element.value_start))
        elif element is not None:
            vr = element.vr or _native_vr(header, element.tag)
            pieces.append(iter([_element_header(element.tag, vr, element.length, implicit_dst)]))
            pieces.append(_copy(fp, element.value_start, element.length))
        pieces.append(iter([tail_bytes]))
        return _as_generator(*pieces)

    frames = _source_frames(fp, header, element, source_syntax)
    first = next(frames, None)
    if first is None:
        raise ValueError("stored instance has no frames")
    arr, props = decode_frame_with_properties(header, first, source_syntax)
    first_out = _convert(arr, header, props, target_syntax)
    del arr
    count = number_of_frames(header)
    if target_syntax in NATIVE_TARGETS:
        total = len(first_out) * count
        if total + total % 2 > 0xFFFFFFFE:
            raise NotAcceptable("the uncompressed pixel data would exceed 4 GB")
        vr = "OW" if int(header.BitsAllocated) > 8 else "OB"
        pixel_head = _element_header(0x7FE00010, vr, total + total % 2, implicit_dst)
    else:
        pixel_head = _element_header(0x7FE00010, "OB", _UNDEFINED, False) + _item(b"")
    head = _header_bytes(_prepare_header(header, source_syntax, target_syntax, props))
    return _frames_generator(
        head, pixel_head, first_out, frames, header, source_syntax, target_syntax, tail_bytes
    )


def _native_vr(header: Dataset, tag: int) -> str:
    """Return the VR of a native pixel element read with implicit VR (PS3.5 A.1)."""
    kind = _PIXEL_TAGS[tag]
    if kind != "PixelData":
        return kind
    return "OW" if int(header.get("BitsAllocated", 8) or 8) > 8 else "OB"


def _header_bytes(header: Dataset) -> bytes:
    """Encode preamble, file meta and the header elements in the header's new syntax."""
    out = io.BytesIO()
    pydicom.dcmwrite(out, header, enforce_file_format=True)
    return out.getvalue()


def _as_generator(*pieces: Iterator[bytes]) -> Generator[bytes, None, None]:
    """Chain iterators of chunks into one generator, skipping empty chunks."""
    for piece in pieces:
        for chunk in piece:
            if chunk:
                yield chunk


def _frames_generator(
    head: bytes,
    pixel_head: bytes,
    first_out: bytes,
    frames: Iterator[bytes],
    header: Dataset,
    source_syntax: str,
    target_syntax: str,
    tail_bytes: bytes,
) -> Generator[bytes, None, None]:
    """Yield header, pixel data (decoding and re-encoding one frame at a time) and tail."""
    native = target_syntax in NATIVE_TARGETS
    yield head
    yield pixel_head
    yield first_out if native else _item(first_out)
    written = len(first_out)
    produced = 1
    for frame in frames:
        arr, props = decode_frame_with_properties(header, frame, source_syntax)
        out = _convert(arr, header, props, target_syntax)
        del arr
        if native and len(out) != len(first_out):
            raise ValueError("decoded frames differ in size")
        written += len(out)
        produced += 1
        yield out if native else _item(out)
    if produced != number_of_frames(header):
        raise ValueError("stored instance holds fewer frames than Number of Frames")
    if native:
        if written % 2:
            yield b"\x00"
    else:
        yield struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    if tail_bytes:
        yield tail_bytes
