"""What the WSGI server sees of a request: deadlines and sendfile bodies.

One middleware between gunicorn and the Flask app does two things every request
needs and the app should not know about:

- **Deadlines.** The connection's socket gets ``[http] timeout``: a request body that
  stops arriving or a client that stops reading the response raises ``TimeoutError``
  after that many idle seconds, which frees the thread (gunicorn then closes the
  connection). gunicorn puts the socket in ``environ["gunicorn.socket"]``.
- **Zero-copy bodies.** A :class:`~omipacs.web.body.SegmentedBody` (WADO-RS as stored:
  a few short byte strings around byte ranges of stored files) goes out with
  ``sendfile``. A body that is one file range uses the standard ``wsgi.file_wrapper``,
  which gunicorn sends with ``socket.sendfile`` for ``Content-Length`` bytes from the
  file's current offset. A body of several segments has no standard interface, so the
  short byte strings are yielded to gunicorn as usual (it writes each one before asking
  for the next) and each file range is sent with ``socket.sendfile`` on the connection's
  socket in between. That path is taken only when it cannot break the framing: plain
  HTTP/1.x (not TLS, not HTTP/2), a GET with a 200/206 status and a ``Content-Length``
  equal to the body's length. Otherwise the body is iterated like any other.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from omipacs.config import HttpSettings
from omipacs.web.body import FileRange, SegmentedBody, ShortFile

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class RangeFile:
    """One byte range of a stored file as a file object gunicorn can ``sendfile``."""

    def __init__(self, part: FileRange) -> None:
        self._fd = os.open(part.path, os.O_RDONLY)
        self._left = part.length
        # gunicorn sends Content-Length bytes from the descriptor's current offset.
        os.lseek(self._fd, part.offset, os.SEEK_SET)

    def fileno(self) -> int:
        return self._fd

    def read(self, size: int = -1) -> bytes:
        """Used only where sendfile is not (TLS): the range, chunk by chunk."""
        want = self._left if size < 0 else min(size, self._left)
        data = os.read(self._fd, want) if want > 0 else b""
        if want > 0 and not data:
            raise ShortFile(f"a stored object ended {self._left} bytes before the range")
        self._left -= len(data)
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _whole(part: FileRange) -> bool:
    """The file still holds the range the index promised (else iterate: ShortFile)."""
    try:
        return os.stat(part.path).st_size >= part.offset + part.length
    except OSError:
        return False


def send_segments(body: SegmentedBody, sock: socket.socket) -> Iterator[bytes]:
    """Yield the byte segments; send the file ranges on ``sock`` in between."""
    # gunicorn writes the status line and headers with the first chunk: make it now, so
    # nothing reaches the socket before them.
    yield b""
    for segment in body.segments:
        if isinstance(segment, bytes):
            if segment:
                yield segment
            continue
        with open(segment.path, "rb") as f:
            sent = sock.sendfile(f, segment.offset, segment.length) if segment.length else 0
        if sent != segment.length:
            raise ShortFile(
                f"a stored object ended {segment.length - sent} bytes before the range"
            )


def _zero_copy(
    environ: dict[str, Any], body: SegmentedBody, started: dict[str, Any]
) -> Iterable[bytes] | None:
    """The sendfile form of ``body`` if this server and response allow one, else None."""
    status = str(started.get("status", ""))
    if environ.get("REQUEST_METHOD") != "GET" or status[:3] not in ("200", "206"):
        return None
    lengths = [v for k, v in started.get("headers", []) if k.lower() == "content-length"]
    if lengths != [str(body.length)]:
        return None
    files = [s for s in body.segments if isinstance(s, FileRange)]
    if not all(_whole(f) for f in files):
        return None
    wrapper = environ.get("wsgi.file_wrapper")
    if len(body.segments) == 1 and files and wrapper is not None:
        # gunicorn's FileWrapper closes the file object it wraps when the response ends.
        return wrapper(RangeFile(files[0]))  # type: ignore[no-any-return]
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket):
        return None
    if environ.get("SERVER_PROTOCOL") in ("HTTP/1.1", "HTTP/1.0"):
        return send_segments(body, sock)
    return None


def middleware(app: WsgiApp, http: HttpSettings) -> WsgiApp:
    """Wrap ``app`` with the socket deadlines and sendfile bodies."""
    timeout = http.timeout

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if isinstance(sock, socket.socket) and timeout > 0:
            sock.settimeout(timeout)
        started: dict[str, Any] = {}

        def recording(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            started["status"], started["headers"] = status, headers
            return start_response(status, headers, *exc)

        body = app(environ, recording)
        if isinstance(body, SegmentedBody) and body.length:
            fast = _zero_copy(environ, body, started)
            if fast is not None:
                return fast
        return body

    return wrapped
