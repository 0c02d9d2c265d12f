"""Frames, headers and bulk data read straight from byte ranges recorded at ingest.

Frame *k* of a tomosynthesis object is one seek and one read, whatever *k* is: the
offsets were computed once when the instance arrived. Headers are parsed from the first
``header_length`` bytes of the blob only, never the pixels.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence

from pydicom import dcmread
from pydicom.dataset import Dataset

from omipacs.blobs.base import BlobStore
from omipacs.errors import BadRequest, NotFound
from omipacs.retrieve.locate import InstanceLocation

CHUNK = 1 << 20


def parse_frame_list(text: str, number_of_frames: int) -> list[int]:
    """``"1,3,5"`` to frame numbers (1-based), checked against the instance (PS3.18 §8.3.4)."""
    numbers: list[int] = []
    for token in text.split(","):
        token = token.strip()
        if not token.isdigit() or len(token) > 9:
            raise BadRequest("frame list must be comma-separated positive integers")
        n = int(token)
        if n < 1:
            raise BadRequest("frame numbers start at 1")
        if n > number_of_frames:
            raise NotFound(f"frame {n} does not exist (the instance has {number_of_frames})")
        numbers.append(n)
    if not numbers or len(numbers) > 10_000:
        raise BadRequest("frame list is empty or too long")
    return numbers


def frame_ranges(loc: InstanceLocation, number: int) -> list[list[int]]:
    """The byte ranges of frame ``number`` (1-based) in the blob."""
    if loc.frames is None:
        raise NotFound("this instance's frames are not individually addressable")
    return loc.frames[number - 1]


def read_frame(blobs: BlobStore, loc: InstanceLocation, number: int) -> bytes:
    """The stored bytes of one frame (fragments joined for encapsulated data).

    A frame in one range (every native frame, most compressed ones) is a single read,
    never copied: a native 8192 x 8192 frame is 64 MiB, and the renderer reads its
    pixels in place (:func:`omipacs.dicom.pixels.decode_frame`).
    """
    ranges = frame_ranges(loc, number)
    with blobs.open(loc.blob_key) as f:
        if len(ranges) == 1:
            offset, length = ranges[0]
            f.seek(offset)
            data: bytes = f.read(length)
            return data
        out = bytearray()
        for offset, length in ranges:
            f.seek(offset)
            out += f.read(length)
    return bytes(out)


def iter_ranges(blobs: BlobStore, key: str, ranges: Sequence[tuple[int, int]]) -> Iterator[bytes]:
    """Stream byte ranges of a blob in bounded chunks."""
    with blobs.open(key) as f:
        for offset, length in ranges:
            f.seek(offset)
            while length > 0:
                chunk = f.read(min(CHUNK, length))
                if not chunk:
                    raise OSError("blob is shorter than its index says")
                length -= len(chunk)
                yield chunk


class HeaderCache:
    """A small LRU of parsed headers: rendering frame after frame of one DBT object
    should not re-parse its header each time."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: OrderedDict[str, Dataset] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, blobs: BlobStore, loc: InstanceLocation) -> Dataset:
        """The instance's header (no pixel data), parsed from the blob's first bytes."""
        with self._lock:
            found = self._items.get(loc.blob_key)
            if found is not None:
                self._items.move_to_end(loc.blob_key)
                return found
        with blobs.open(loc.blob_key) as f:
            prefix = f.read(loc.header_length)
        ds = dcmread(io.BytesIO(prefix), stop_before_pixels=True)
        with self._lock:
            self._items[loc.blob_key] = ds
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return ds


def read_bulk_element(
    blobs: BlobStore, loc: InstanceLocation, path: str, headers: HeaderCache
) -> bytes:
    """The value of a non-pixel bulk data element named by its ``tag/item/tag`` path."""
    ds: Dataset = headers.get(blobs, loc)
    parts = path.split("/")
    try:
        while len(parts) > 1:
            tag, index = int(parts[0], 16), int(parts[1])
            ds = ds[tag].value[index]
            parts = parts[2:]
        value = ds[int(parts[0], 16)].value
    except (KeyError, IndexError, ValueError, TypeError):
        raise NotFound("no such bulk data") from None
    if not isinstance(value, bytes | bytearray):
        raise NotFound("no such bulk data")
    return bytes(value)
