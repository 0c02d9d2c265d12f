"""Per-frame byte ranges, computed once at ingest so ``/frames/N`` never parses a file.

Native pixel data (PS3.5 §8.1.1) stores frames back to back, so frame *k* is one range.
Encapsulated data (PS3.5 §A.4) stores each frame as one or more fragments; which
fragments belong to which frame comes from, in order of preference: one fragment per
frame, a single frame, the Extended Offset Table, or the Basic Offset Table. When none
of these can tell, the frame table is left empty and retrieval falls back to decoding.
"""

from __future__ import annotations

import struct

from pydicom.dataset import Dataset

from omipacs.dicom.parse import PixelInfo, ValueRange
from omipacs.errors import InvalidAttributes

FrameTable = list[list[tuple[int, int]]]
"""For each frame, the (offset, length) value ranges whose concatenation is the frame."""


def number_of_frames(ds: Dataset) -> int:
    """NumberOfFrames as an int (1 when absent or empty)."""
    value = ds.get("NumberOfFrames")
    try:
        n = int(value) if value not in (None, "") else 1
    except (TypeError, ValueError):
        raise InvalidAttributes("NumberOfFrames is not an integer") from None
    if n < 1:
        raise InvalidAttributes("NumberOfFrames must be at least 1")
    return n


def native_frame_length(ds: Dataset) -> int | None:
    """Bytes per native frame, or None when frames are not byte-aligned (1-bit data)."""
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    spp, bits = int(ds.get("SamplesPerPixel") or 1), int(ds.get("BitsAllocated") or 0)
    if bits % 8:
        return None
    return rows * cols * spp * (bits // 8)


def frame_table(ds: Dataset, pixel: PixelInfo) -> FrameTable | None:
    """The frame table of an instance, or None if it cannot be derived from offsets."""
    frames = number_of_frames(ds)
    if not pixel.encapsulated:
        assert pixel.value is not None
        per_frame = native_frame_length(ds)
        if per_frame is None:
            return None
        return [[(pixel.value.offset + k * per_frame, per_frame)] for k in range(frames)]
    frags = pixel.fragments
    if not frags:
        return None
    if frames == 1:
        return [[(f.offset, f.length) for f in frags]]
    if len(frags) == frames:
        return [[(f.offset, f.length)] for f in frags]
    offsets = _extended_offsets(ds) or list(pixel.basic_offsets)
    if len(offsets) != frames:
        return None
    return _group_by_offsets(frags, offsets, pixel.first_fragment_item_offset)


def _extended_offsets(ds: Dataset) -> list[int] | None:
    """Extended Offset Table (7FE0,0001): 64-bit offsets of each frame's first item."""
    raw = ds.get("ExtendedOffsetTable")
    if not raw:
        return None
    data = bytes(raw)
    return list(struct.unpack(f"<{len(data) // 8}Q", data[: len(data) // 8 * 8]))


def _group_by_offsets(
    frags: tuple[ValueRange, ...], offsets: list[int], first_item: int
) -> FrameTable | None:
    """Assign fragments to frames using item-tag offsets relative to the first fragment."""
    starts = [first_item + o for o in offsets]
    if starts != sorted(starts):
        return None
    table: FrameTable = [[] for _ in starts]
    k = -1
    for frag in frags:
        item_start = frag.offset - 8
        while k + 1 < len(starts) and item_start >= starts[k + 1]:
            k += 1
        if k < 0:
            return None
        table[k].append((frag.offset, frag.length))
    return table if all(table) else None
