"""Response bodies made of in-memory bytes and byte ranges of local files.

A WADO-RS retrieval "as stored" is almost entirely file bytes: each part is a short
header, one stored blob, and a CRLF. Describing the body as segments instead of a
generator lets the length be known up front (a ``Content-Length``, so clients can show
progress and detect truncation) and lets a server that can send file ranges from the
kernel (``omipacs.web.sendfile``) do so without the bytes passing through Python.
Iterating the body works under any WSGI server.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from omipacs.errors import OmipacsError

CHUNK = 1 << 20


@dataclass(frozen=True)
class FileRange:
    """``length`` bytes of the local file ``path`` starting at ``offset``."""

    path: Path
    offset: int
    length: int

    def __post_init__(self) -> None:
        if self.offset < 0 or self.length < 0:
            raise ValueError("offset and length must be >= 0")


Segment = bytes | FileRange


def segment_length(segment: Segment) -> int:
    """Bytes a segment contributes to the body."""
    return len(segment) if isinstance(segment, bytes) else segment.length


Piece = bytes | FileRange | Iterable[bytes]
"""Part of a response: bytes, a file range, or a stream (a transcoding, a remote blob)."""


def assemble(pieces: Sequence[Piece]) -> SegmentedBody | Iterator[bytes]:
    """A :class:`SegmentedBody` when every piece is bytes or a file range, else a stream."""
    if all(isinstance(p, (bytes, FileRange)) for p in pieces):
        return SegmentedBody([p for p in pieces if isinstance(p, (bytes, FileRange))])
    return itertools.chain.from_iterable(_as_chunks(p) for p in pieces)


def _as_chunks(piece: Piece) -> Iterable[bytes]:
    if isinstance(piece, bytes):
        return (piece,)
    if isinstance(piece, FileRange):
        return _read_range(piece)
    return piece


class ShortFile(OmipacsError):
    """A stored file ended before the range the index promised (it changed on disk)."""


class SegmentedBody:
    """An iterable of bytes over ``segments``; files are opened one at a time, lazily."""

    def __init__(self, segments: Sequence[Segment]) -> None:
        self.segments = list(segments)
        self.length = sum(segment_length(s) for s in self.segments)

    def __iter__(self) -> Iterator[bytes]:
        for segment in self.segments:
            if isinstance(segment, bytes):
                if segment:
                    yield segment
                continue
            yield from _read_range(segment)


def _read_range(part: FileRange) -> Iterator[bytes]:
    fd = os.open(part.path, os.O_RDONLY)
    try:
        offset, left = part.offset, part.length
        while left > 0:
            chunk = os.pread(fd, min(CHUNK, left), offset)
            if not chunk:
                raise ShortFile(f"a stored object ended {left} bytes before the range being sent")
            offset += len(chunk)
            left -= len(chunk)
            yield chunk
    finally:
        os.close(fd)
