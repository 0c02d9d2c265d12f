"""Read a DICOM file's header and locate its pixel data without loading the pixels.

The ingest pipeline must never hold a 1.5 GB tomosynthesis object in memory, so the
header is parsed with ``stop_before_pixels`` and the Pixel Data element is located and
walked by hand: for native data one value range, for encapsulated data (PS3.5 §A.4) the
Basic Offset Table and one value range per fragment, reading only the 8-byte item
headers. Elements after Pixel Data (digital signatures, padding) are parsed too, so the
de-identification stage sees the whole data set.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset, read_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

from omipacs.dicom.uids import is_valid_uid
from omipacs.errors import InvalidInstance, TransferSyntaxNotSupported

#: Values larger than this are read lazily from the file (large private blobs).
DEFER_SIZE = 256 * 1024
#: Tags that end the header: (7FE0,0008) Float, (7FE0,0009) Double Float, (7FE0,0010) Pixel Data.
PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)
_ITEM = 0xFFFEE000
_SEQ_DELIM = 0xFFFEE0DD
#: An encapsulated Basic Offset Table larger than this is not plausible (16M frames).
_MAX_BOT_BYTES = 64 * 1024 * 1024
#: Transfer syntaxes whose data set must be inflated to be read: a few hundred kilobytes
#: can inflate to gigabytes (docs/architecture.md, "Hostile input"), so they are refused
#: from the File Meta Information alone, before pydicom would inflate anything.
INFLATING_SYNTAXES = frozenset({DeflatedExplicitVRLittleEndian, "1.2.840.10008.1.2.1.99"})
_LONG_LENGTH_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}


@dataclass(frozen=True)
class ValueRange:
    """A byte range of the file: ``length`` bytes from ``offset``."""

    offset: int
    length: int


@dataclass(frozen=True)
class PixelInfo:
    """Where the pixel data element and its value are in the file."""

    tag: int
    vr: str
    element_offset: int
    """File offset of the element's tag."""
    element_end: int
    """File offset just past the element (past the sequence delimiter if encapsulated)."""
    encapsulated: bool
    value: ValueRange | None = None
    """Native data: the whole value."""
    basic_offsets: tuple[int, ...] = ()
    """Encapsulated data: the Basic Offset Table (may be empty)."""
    fragments: tuple[ValueRange, ...] = field(default_factory=tuple)
    """Encapsulated data: each fragment's value range, item headers excluded."""
    first_fragment_item_offset: int = 0
    """Encapsulated data: offset of the first fragment's item tag (BOT offsets count from here)."""


@dataclass(frozen=True)
class ParsedFile:
    """A DICOM file's meta information, header and pixel data location."""

    path: Path
    file_meta: FileMetaDataset
    dataset: Dataset
    transfer_syntax: str
    is_implicit_vr: bool
    dataset_offset: int
    """File offset of the first data set element (just past the File Meta Information)."""
    pixel: PixelInfo | None
    file_size: int


def _read_exact(fp: BinaryIO, n: int, what: str) -> bytes:
    data = fp.read(n)
    if len(data) != n:
        raise InvalidInstance(f"file is truncated inside {what}")
    return data


def _walk_encapsulated(
    fp: BinaryIO, start: int, size: int
) -> tuple[tuple[int, ...], tuple[ValueRange, ...], int, int]:
    """Walk the items of encapsulated pixel data from ``start`` (PS3.5 §A.4).

    Returns the Basic Offset Table, the fragment value ranges, the offset of the first
    fragment's item tag and the offset just past the sequence delimiter.
    """
    fp.seek(start)
    group, elem, length = struct.unpack("<HHL", _read_exact(fp, 8, "pixel data"))
    if (group << 16 | elem) != _ITEM:
        raise InvalidInstance(
            "encapsulated pixel data does not start with a Basic Offset Table item"
        )
    if length > _MAX_BOT_BYTES or length % 4 or start + 8 + length > size:
        raise InvalidInstance("encapsulated pixel data has an invalid Basic Offset Table")
    table = _read_exact(fp, length, "the Basic Offset Table")
    offsets = struct.unpack(f"<{length // 4}L", table) if length else ()
    pos = start + 8 + length
    first_item = pos
    fragments: list[ValueRange] = []
    while True:
        if pos + 8 > size:
            raise InvalidInstance("encapsulated pixel data has no sequence delimiter (truncated)")
        fp.seek(pos)
        group, elem, length = struct.unpack("<HHL", _read_exact(fp, 8, "pixel data"))
        tag = group << 16 | elem
        if tag == _SEQ_DELIM:
            return tuple(offsets), tuple(fragments), first_item, pos + 8
        if tag != _ITEM or length == 0xFFFFFFFF:
            raise InvalidInstance(
                f"unexpected tag ({group:04X},{elem:04X}) in encapsulated pixel data"
            )
        if pos + 8 + length > size:
            raise InvalidInstance("a pixel data fragment runs past the end of the file (truncated)")
        fragments.append(ValueRange(pos + 8, length))
        pos += 8 + length


def _locate_pixels(fp: BinaryIO, pos: int, size: int, implicit: bool) -> PixelInfo | None:
    if pos >= size:
        return None
    fp.seek(pos)
    head = _read_exact(fp, 8, "the pixel data element header")
    group, elem = struct.unpack("<HH", head[:4])
    tag = group << 16 | elem
    if tag not in PIXEL_TAGS:
        raise InvalidInstance(
            f"unexpected element ({group:04X},{elem:04X}) where pixel data should be"
        )
    if implicit:
        (length,) = struct.unpack("<L", head[4:8])
        vr, value_offset = ("OW" if tag == 0x7FE00010 else "OF"), pos + 8
    else:
        vr_bytes = head[4:6]
        if vr_bytes in _LONG_LENGTH_VRS:
            (length,) = struct.unpack("<L", _read_exact(fp, 4, "the pixel data element header"))
            value_offset = pos + 12
        else:
            (length,) = struct.unpack("<H", head[6:8])
            value_offset = pos + 8
        vr = vr_bytes.decode("ascii", "replace")
    if length == 0xFFFFFFFF:
        if tag != 0x7FE00010:
            raise InvalidInstance("only Pixel Data (7FE0,0010) may be encapsulated")
        bot, frags, first_item, end = _walk_encapsulated(fp, value_offset, size)
        return PixelInfo(tag, vr, pos, end, True, None, bot, frags, first_item)
    if value_offset + length > size:
        raise InvalidInstance(
            f"pixel data declares {length} bytes but the file ends after "
            f"{size - value_offset} (truncated)"
        )
    return PixelInfo(tag, vr, pos, value_offset + length, False, ValueRange(value_offset, length))


def parse_file(path: Path) -> ParsedFile:
    """Parse ``path``: meta, header (plus any trailing elements) and pixel data location.

    The File Meta Information is read and checked first, on its own: a deflated data
    set is refused before a byte of it is inflated, and a group length that disagrees
    with the meta elements (which would make readers disagree on where the data set
    starts) is refused before anything trusts it. Errors name the instance from the
    meta where it can (:meth:`OmipacsError.about`).

    Raises
    ------
    InvalidInstance
        If the file is not readable DICOM (no ``DICM`` marker, truncated, malformed,
        nested too deeply, an element running past the end of the file); the reason
        never quotes the file's values.
    TransferSyntaxNotSupported
        If the data set is deflated.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as fp:
        dataset_offset = _dataset_offset(fp, size)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                meta_only = read_file_meta_info(path)
        except Exception:
            raise InvalidInstance("cannot read the File Meta Information") from None
        identity = _meta_identity(meta_only)
        ts = str(meta_only.get("TransferSyntaxUID", "") or "")
        if not ts:
            raise InvalidInstance("File Meta Information has no TransferSyntaxUID").about(
                *identity
            )
        if ts in INFLATING_SYNTAXES:
            raise TransferSyntaxNotSupported(
                "deflated transfer syntaxes are not accepted (refused before inflation)"
            ).about(*identity)
        try:
            return _parse(fp, Path(path), size, ts, dataset_offset)
        except InvalidInstance as exc:
            raise exc.about(*identity) from None


def _meta_identity(meta: Dataset) -> tuple[str, str]:
    """(MediaStorageSOPClassUID, MediaStorageSOPInstanceUID) if both are valid UIDs."""
    cls = str(meta.get("MediaStorageSOPClassUID", "") or "")
    uid = str(meta.get("MediaStorageSOPInstanceUID", "") or "")
    return (cls, uid) if is_valid_uid(cls) and is_valid_uid(uid) else ("", "")


def _parse(fp: BinaryIO, path: Path, size: int, ts: str, dataset_offset: int) -> ParsedFile:
    fp.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(fp, stop_before_pixels=True, defer_size=DEFER_SIZE)
            header_end = fp.tell()
    except InvalidDicomError:
        raise InvalidInstance("not a DICOM file (no DICM prefix after the preamble)") from None
    except RecursionError:
        raise InvalidInstance("data set nested too deeply") from None
    except InvalidInstance:
        raise
    except Exception as exc:  # pydicom raises many types for malformed input
        raise InvalidInstance(f"cannot parse DICOM header: {type(exc).__name__}") from None
    if header_end > size:
        # A deferred value (an OB or UT of 0xFFFFFFF0 bytes, say) runs past the end.
        raise InvalidInstance("an element's length runs past the end of the file (truncated)")
    meta = ds.file_meta
    implicit = ts == "1.2.840.10008.1.2"
    pixel = _locate_pixels(fp, header_end, size, implicit)
    # pydicom reads a truncated value short without complaint; walk the lengths
    # ourselves, so an element or sequence cut off anywhere is refused.
    header_stop = _walk(fp, dataset_offset, size, implicit, 0)
    if header_stop != (pixel.element_offset if pixel is not None else size):
        raise InvalidInstance("the data set's element lengths do not add up (truncated?)")
    if pixel is not None and pixel.element_end < size:
        if _walk(fp, pixel.element_end, size, implicit, 0) != size:
            raise InvalidInstance("elements after pixel data do not add up (truncated?)")
    if pixel is not None and pixel.element_end < size:
        fp.seek(pixel.element_end)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trailer = read_dataset(
                    fp, implicit, True, size - pixel.element_end, defer_size=DEFER_SIZE
                )
        except RecursionError:
            raise InvalidInstance("data set nested too deeply") from None
        except Exception as exc:
            raise InvalidInstance(
                f"cannot parse elements after pixel data: {type(exc).__name__}"
            ) from None
        if fp.tell() > size:
            raise InvalidInstance("an element after pixel data runs past the end of the file")
        for elem in trailer.values():
            ds[elem.tag] = elem
    return ParsedFile(path, meta, ds, ts, implicit, dataset_offset, pixel, size)


_ITEM_DELIM = 0xFFFEE00D
_MAX_DEPTH = 64


def _walk(fp: BinaryIO, pos: int, end: int, implicit: bool, depth: int) -> int:
    """Walk elements by their lengths from ``pos``; return where the walk stopped.

    Stops at ``end``, at a top-level pixel data tag, or (inside an item of undefined
    length) just past the item delimiter. Values are skipped, never read, so this costs
    one small read per element whatever the sizes. Raises InvalidInstance if a length
    runs past ``end`` or a sequence or item has no delimiter before it.
    """
    if depth > _MAX_DEPTH:
        raise InvalidInstance("data set nested too deeply")
    while pos < end:
        if pos + 8 > end:
            raise InvalidInstance("the file ends inside an element header (truncated)")
        fp.seek(pos)
        head = fp.read(8)
        group, elem = struct.unpack("<HH", head[:4])
        tag = group << 16 | elem
        if tag == _ITEM_DELIM:
            if depth == 0:
                raise InvalidInstance("an item delimiter outside any sequence")
            return pos + 8
        if depth == 0 and tag in PIXEL_TAGS:
            return pos
        vr = b"" if implicit else head[4:6]
        if implicit:
            (length,) = struct.unpack("<L", head[4:8])
            value = pos + 8
        elif vr in _LONG_LENGTH_VRS:
            if pos + 12 > end:
                raise InvalidInstance("the file ends inside an element header (truncated)")
            (length,) = struct.unpack("<L", fp.read(4))
            value = pos + 12
        else:
            (length,) = struct.unpack("<H", head[6:8])
            value = pos + 8
        if length == 0xFFFFFFFF:
            # SQ, or UN holding an implicit VR sequence (PS3.5 6.2.2), or encapsulated data.
            pos = _walk_sequence(fp, value, end, implicit or vr == b"UN", depth + 1)
            continue
        pos = value + length
        if pos > end:
            raise InvalidInstance("an element's length runs past the end of the file")
    if depth:
        raise InvalidInstance("the file ends inside an item (truncated)")
    return pos


def _walk_sequence(fp: BinaryIO, pos: int, end: int, implicit: bool, depth: int) -> int:
    """Walk the items of an undefined-length sequence; return the offset past it."""
    while True:
        if pos + 8 > end:
            raise InvalidInstance("a sequence has no delimiter before the end of the file")
        fp.seek(pos)
        group, elem, length = struct.unpack("<HHL", fp.read(8))
        tag = group << 16 | elem
        if tag == _SEQ_DELIM:
            return pos + 8
        if tag != _ITEM:
            raise InvalidInstance("a sequence holds something other than items")
        if length == 0xFFFFFFFF:
            pos = _walk(fp, pos + 8, end, implicit, depth)
        else:
            pos += 8 + length
            if pos > end:
                raise InvalidInstance("an item's length runs past the end of the file")


def _dataset_offset(fp: BinaryIO, size: int) -> int:
    """Offset of the data set after the preamble and File Meta Information.

    The meta elements are walked (explicit VR little endian, PS3.10 §7.1); a File Meta
    Information Group Length that disagrees with them is refused, as is a meta group
    running past the end of the file.
    """
    fp.seek(128)
    if fp.read(4) != b"DICM":
        raise InvalidInstance("not a DICOM file (no DICM prefix after the preamble)")
    pos = 132
    group_length: int | None = None
    group_length_end = 0
    while True:
        fp.seek(pos)
        h = fp.read(8)
        if len(h) < 8 or struct.unpack("<H", h[:2])[0] != 0x0002:
            break
        if h[4:6] in _LONG_LENGTH_VRS:
            (length,) = struct.unpack("<L", _read_exact(fp, 4, "the File Meta Information"))
            end = pos + 12 + length
        else:
            length = struct.unpack("<H", h[6:8])[0]
            end = pos + 8 + length
        if end > size:
            raise InvalidInstance("the File Meta Information runs past the end of the file")
        if h[:4] == b"\x02\x00\x00\x00" and group_length is None and length == 4:
            fp.seek(end - 4)
            group_length = struct.unpack("<L", _read_exact(fp, 4, "the group length"))[0]
            group_length_end = end
        pos = end
    if pos == 132:
        raise InvalidInstance("the file has no File Meta Information")
    if group_length is not None and group_length_end + group_length != pos:
        raise InvalidInstance(
            "File Meta Information Group Length disagrees with the meta elements"
        )
    return pos
