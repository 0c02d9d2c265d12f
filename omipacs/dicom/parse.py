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
from pydicom.filereader import read_dataset

from omipacs.errors import InvalidInstance

#: Values larger than this are read lazily from the file (large private blobs).
DEFER_SIZE = 256 * 1024
#: Tags that end the header: (7FE0,0008) Float, (7FE0,0009) Double Float, (7FE0,0010) Pixel Data.
PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)
_ITEM = 0xFFFEE000
_SEQ_DELIM = 0xFFFEE0DD
#: An encapsulated Basic Offset Table larger than this is not plausible (16M frames).
_MAX_BOT_BYTES = 64 * 1024 * 1024
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

    Raises
    ------
    InvalidInstance
        If the file is not readable DICOM (no ``DICM`` marker, truncated, malformed,
        nested too deeply); the reason never quotes the file's values.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as fp:
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
        meta = ds.file_meta
        ts = str(meta.get("TransferSyntaxUID", "") or "")
        if not ts:
            raise InvalidInstance("File Meta Information has no TransferSyntaxUID")
        implicit = ts == "1.2.840.10008.1.2"
        dataset_offset = _dataset_offset(fp)
        pixel = _locate_pixels(fp, header_end, size, implicit)
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
            for elem in trailer.values():
                ds[elem.tag] = elem
    return ParsedFile(Path(path), meta, ds, ts, implicit, dataset_offset, pixel, size)


def _dataset_offset(fp: BinaryIO) -> int:
    """Offset of the data set after the preamble and File Meta Information."""
    fp.seek(128 + 4)
    head = _read_exact(fp, 12, "the File Meta Information")
    group, elem = struct.unpack("<HH", head[:4])
    if (group, elem) != (0x0002, 0x0000):
        # No group length: walk the meta elements (explicit VR little endian, PS3.10 §7.1).
        pos = 132
        while True:
            fp.seek(pos)
            h = fp.read(8)
            if len(h) < 8 or struct.unpack("<H", h[:2])[0] != 0x0002:
                return pos
            if h[4:6] in _LONG_LENGTH_VRS:
                (length,) = struct.unpack("<L", _read_exact(fp, 4, "the File Meta Information"))
                pos += 12 + length
            else:
                pos += 8 + struct.unpack("<H", h[6:8])[0]

    group_length: int = struct.unpack("<L", head[8:12])[0]
    return 132 + 12 + group_length
