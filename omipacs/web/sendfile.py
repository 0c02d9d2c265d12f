"""Send file ranges of a :class:`~omipacs.web.body.SegmentedBody` with ``os.sendfile``.

waitress copies every response byte through Python: the app's chunks are appended to an
output buffer by a worker thread and sent by the main loop, which caps a WADO-RS
retrieval at a fraction of what the disk and socket can do. waitress already has a fast
path for ``wsgi.file_wrapper`` bodies (the main loop pulls from the file as the socket
drains, no worker thread involved); we feed it a body made of segments and teach the
channel to send the file segments from the kernel's page cache straight to the socket.

This relies on two waitress details, both covered by the retrieval tests (a change in
either fails them loudly rather than corrupting output): a ``ReadOnlyFileBasedBuffer``
app iterable is handed to the channel as an output buffer, and the channel sends what
the buffer's ``get`` returns with ``send`` and then ``skip``s what was sent.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from waitress.buffers import ReadOnlyFileBasedBuffer
from waitress.channel import HTTPChannel
from waitress.wasyncore import _DISCONNECTED

from omipacs.web.body import FileRange, SegmentedBody, segment_length

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FileSlice:
    """What the buffer hands the channel for a file segment: a range of an open file."""

    __slots__ = ("fd", "length", "offset")

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self.fd = fd
        self.offset = offset
        self.length = length

    def __len__(self) -> int:
        return self.length


class SegmentBuffer(ReadOnlyFileBasedBuffer):  # type: ignore[misc]
    """A waitress output buffer over a body's segments, read as the socket drains."""

    def __init__(self, body: SegmentedBody) -> None:
        # Not calling the base __init__: there is no single file behind this buffer.
        self.file = None
        self.block_size = 1 << 20
        self.remain = body.length
        self._segments = body.segments
        self._index = 0
        self._pos = 0
        self._fd: int | None = None

    def prepare(self, size: int | None = None) -> int:
        return int(self.remain)

    def _current(self) -> FileRange | bytes | None:
        while self._index < len(self._segments):
            segment = self._segments[self._index]
            if self._pos < segment_length(segment):
                return segment
            self._advance()
        return None

    def _advance(self) -> None:
        self._close_fd()
        self._index += 1
        self._pos = 0

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def get(self, numbytes: int = -1, skip: bool = False) -> bytes | FileSlice:
        segment = self._current()
        if segment is None:
            return b""
        want = segment_length(segment) - self._pos
        if numbytes >= 0:
            want = min(want, numbytes)
        if isinstance(segment, bytes):
            out: bytes | FileSlice = segment[self._pos : self._pos + want]
        else:
            if self._fd is None:
                self._fd = os.open(segment.path, os.O_RDONLY)
            out = FileSlice(self._fd, segment.offset + self._pos, want)
        if skip:
            self.skip(want)
        return out

    def skip(self, numbytes: int, allow_prune: int = 0) -> None:
        if numbytes > self.remain:
            raise ValueError(f"cannot skip {numbytes} bytes of {self.remain}")
        self.remain -= numbytes
        while numbytes:
            segment = self._current()
            assert segment is not None
            take = min(numbytes, segment_length(segment) - self._pos)
            self._pos += take
            numbytes -= take
            if self._pos == segment_length(segment):
                self._advance()

    def close(self) -> None:
        self._close_fd()
        self._segments = []
        self.remain = 0


class SendfileChannel(HTTPChannel):  # type: ignore[misc]
    """A waitress channel that sends :class:`FileSlice` chunks with ``os.sendfile``."""

    def send(self, data: Any, do_close: bool = True) -> int:
        if not isinstance(data, FileSlice):
            return int(super().send(data, do_close))
        try:
            sent = os.sendfile(self.socket.fileno(), data.fd, data.offset, data.length)
        except OSError as why:
            if why.errno == errno.EWOULDBLOCK:
                return 0
            if why.errno in _DISCONNECTED:
                if do_close:
                    self.handle_close()
                return 0
            raise
        if sent == 0 and data.length:
            # The file is shorter than the index says: the response cannot be completed.
            log.error("a stored object ended before the range being sent; closing the response")
            self.handle_close()
        return sent


def middleware(app: WsgiApp) -> WsgiApp:
    """Hand segmented bodies to waitress as file buffers; everything else passes through."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = app(environ, start_response)
        # waitress iterates (rather than drains) a file buffer of length 0: leave those be.
        if isinstance(body, SegmentedBody) and body.length:
            return SegmentBuffer(body)
        return body

    return wrapped
