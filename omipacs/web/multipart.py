"""Bounded, streaming ``multipart/related`` for STOW-RS bodies in and WADO-RS answers out.

PS3.18 §8.6 carries instances as the parts of a ``multipart/related`` body (RFC 2387),
framed as RFC 2046 §5.1.1 says: each part follows a delimiter line ``CRLF "--" boundary``
plus optional transport padding and CRLF, then part headers, an empty line and the
bytes; the last part is followed by ``CRLF "--" boundary "--"``. Text before the first
delimiter (preamble) and after the last (epilogue) is ignored.

A digital breast tomosynthesis object can be 1.5 GB, and an unbounded multipart parser
is a known way to exhaust a server (Werkzeug CVE-2023-25577), so the reader here:

- reads the body in chunks of ``chunk_size`` and finds delimiters with ``bytes.find``
  over a window that keeps the last ``len(delimiter) - 1`` bytes, so a delimiter split
  across reads is still found and memory stays at about one chunk;
- writes each part to its own temporary file in a caller-chosen spool directory (on the
  archive's filesystem, so accepting a part is a rename, not a copy);
- counts parts, header bytes, part bytes and total bytes, and stops at the first limit
  passed with :class:`~omipacs.errors.BadRequest` or
  :class:`~omipacs.errors.PayloadTooLarge`.

The writer streams the other way: generators of ``bytes`` that the web layer hands to
its response, so a study is never assembled in memory.

Nothing here imports a web framework; both sides work on plain byte streams.
"""

from __future__ import annotations

import os
import string
import tempfile
import uuid
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from omipacs.errors import BadRequest, PayloadTooLarge
from omipacs.web.media import MediaType, format_media_type, parse_content_type

__all__ = [
    "MAX_BOUNDARY_LENGTH",
    "MultipartWriter",
    "Part",
    "boundary_from_content_type",
    "iter_parts",
    "spool_parts",
    "validate_boundary",
]

MAX_BOUNDARY_LENGTH = 70
"""RFC 2046 §5.1.1: a boundary is 1 to 70 characters."""

_BCHARS = frozenset(string.ascii_letters + string.digits + "'()+_,-./:=? ")
"""RFC 2046 §5.1.1 ``bchars``: the characters a boundary may contain."""

_HEADER_NAME_CHARS = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
_CONTROL = frozenset(chr(c) for c in range(32) if c != 9) | {"\x7f"}
_CRLF = b"\r\n"


def _boundary_problem(boundary: str) -> str | None:
    """Why ``boundary`` breaks RFC 2046 §5.1.1, or None when it is valid."""
    if not boundary:
        return "the multipart boundary is empty"
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        return (
            f"the multipart boundary is {len(boundary)} characters long; "
            f"RFC 2046 allows at most {MAX_BOUNDARY_LENGTH}"
        )
    if any(c not in _BCHARS for c in boundary):
        return "the multipart boundary contains a character RFC 2046 does not allow"
    if boundary.endswith(" "):
        return "the multipart boundary ends with a space"
    return None


def validate_boundary(boundary: str) -> None:
    """Check a boundary taken from a request against RFC 2046 §5.1.1.

    Raises
    ------
    BadRequest
        When the boundary is empty, longer than 70 characters, or holds characters
        outside ``bchars``.
    """
    problem = _boundary_problem(boundary)
    if problem is not None:
        raise BadRequest(problem)


def boundary_from_content_type(media_type: MediaType) -> str:
    """The validated ``boundary`` parameter of a multipart Content-Type.

    Checking that the type is ``multipart/related`` (and answering 415 otherwise) is
    left to the endpoint, which knows what it accepts.

    Raises
    ------
    BadRequest
        When the parameter is missing or invalid.
    """
    boundary = media_type.param("boundary")
    if boundary is None:
        raise BadRequest(f"the {media_type.essence} Content-Type has no boundary parameter")
    validate_boundary(boundary)
    return boundary


@dataclass(frozen=True)
class Part:
    """One part of a multipart body, its bytes spooled to a file the caller now owns.

    Attributes
    ----------
    headers
        Part headers with lower-case names. Content-Transfer-Encoding is not applied:
        the file holds the bytes as sent.
    content_type
        The parsed ``Content-Type``; None when the header is absent or cannot be parsed
        (``"content-type" in headers`` tells the two apart). A bad part type fails that
        part, not the request: STOW-RS reports it per instance (PS3.18 §10.5.3).
    path
        Temporary file in the spool directory; move it into place or :meth:`discard` it.
    size
        Number of body bytes in ``path``.
    """

    headers: dict[str, str]
    content_type: MediaType | None
    path: Path
    size: int

    def discard(self) -> None:
        """Delete the spooled file (nothing happens if it was already moved or deleted)."""
        self.path.unlink(missing_ok=True)


@runtime_checkable
class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Chunks:
    """An iterable of byte chunks seen as a stream; empty chunks do not end it."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)

    def read(self, size: int = -1, /) -> bytes:
        for chunk in self._chunks:
            if chunk:
                return chunk
        return b""


class _Source:
    """A byte stream read in chunks into a window buffer, with the total counted."""

    def __init__(self, stream: _Readable, chunk_size: int, max_total_bytes: int) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self._max_total_bytes = max_total_bytes
        self.buf = bytearray()
        self.total = 0
        self.eof = False

    def fill(self) -> bool:
        """Append the next chunk to the buffer; False at the end of the stream."""
        if self.eof:
            return False
        chunk = self._stream.read(self._chunk_size)
        if not chunk:
            self.eof = True
            return False
        self.total += len(chunk)
        if self.total > self._max_total_bytes:
            raise PayloadTooLarge(f"the request body is larger than {self._max_total_bytes} bytes")
        self.buf += chunk
        return True


def iter_parts(
    stream: BinaryIO | Iterable[bytes],
    boundary: str,
    *,
    spool_dir: Path,
    max_parts: int,
    max_header_bytes: int = 8192,
    max_part_bytes: int,
    max_total_bytes: int,
    chunk_size: int = 1 << 20,
) -> Generator[Part, None, None]:
    """Parse a ``multipart/related`` body part by part, spooling each part to disk.

    Arguments are checked when this is called; the body is read as the returned
    iterator is advanced, so each part can be stored before the next is read. A part
    is yielded only once the delimiter line after it has been read, so its bytes are
    complete; an error found later (a truncated next part, say) is raised from a later
    ``next()``, after earlier parts were handed over. Callers that want all-or-nothing
    framing use :func:`spool_parts`. Reading stops at the close delimiter; the
    epilogue is not read.

    Parameters
    ----------
    stream
        The request body: a binary file object (read with ``read(chunk_size)``) or an
        iterable of byte chunks of any size.
    boundary
        The ``boundary`` parameter of the request's Content-Type.
    spool_dir
        Existing directory for the part files; put it on the archive's filesystem so a
        part can be renamed into storage.
    max_parts
        Most parts accepted; one more raises BadRequest.
    max_header_bytes
        Most bytes in one part's header block (excluding the blank line that ends it).
    max_part_bytes
        Most body bytes in one part.
    max_total_bytes
        Most bytes read from ``stream`` in total.
    chunk_size
        Bytes per read.

    Yields
    ------
    Part
        Each part in order. The caller owns ``part.path`` from then on. If an error is
        raised, the file of the part being read is deleted; files already yielded are
        not touched.

    Raises
    ------
    BadRequest
        Invalid boundary; boundary not found in the body; no close delimiter (a truncated
        body); bad characters after a delimiter; more than ``max_parts`` parts; a header
        block over ``max_header_bytes``; a malformed or repeated header line.
    PayloadTooLarge
        A part over ``max_part_bytes`` or a body over ``max_total_bytes``.
    ValueError
        A limit or ``chunk_size`` below 1 (a programming error, not a bad request).
    """
    validate_boundary(boundary)
    for name, value in (
        ("max_parts", max_parts),
        ("max_header_bytes", max_header_bytes),
        ("max_part_bytes", max_part_bytes),
        ("max_total_bytes", max_total_bytes),
        ("chunk_size", chunk_size),
    ):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, not {value}")
    source: _Readable = stream if isinstance(stream, _Readable) else _Chunks(stream)
    parser = _Parser(
        _Source(source, chunk_size, max_total_bytes),
        boundary.encode("ascii"),
        spool_dir=Path(spool_dir),
        max_parts=max_parts,
        max_header_bytes=max_header_bytes,
        max_part_bytes=max_part_bytes,
    )
    return parser.parts()


def spool_parts(
    stream: BinaryIO | Iterable[bytes],
    boundary: str,
    *,
    spool_dir: Path,
    max_parts: int,
    max_header_bytes: int = 8192,
    max_part_bytes: int,
    max_total_bytes: int,
    chunk_size: int = 1 << 20,
) -> list[Part]:
    """Spool every part of a body before any is processed; all or nothing.

    Same arguments and errors as :func:`iter_parts`. On an error every file spooled so
    far is deleted, so a request with broken framing leaves nothing behind and stores
    nothing. The cost is disk space for the whole body (bounded by ``max_total_bytes``).
    """
    parts: list[Part] = []
    try:
        parts.extend(
            iter_parts(
                stream,
                boundary,
                spool_dir=spool_dir,
                max_parts=max_parts,
                max_header_bytes=max_header_bytes,
                max_part_bytes=max_part_bytes,
                max_total_bytes=max_total_bytes,
                chunk_size=chunk_size,
            )
        )
    except BaseException:
        for part in parts:
            part.discard()
        raise
    return parts


class _Parser:
    """The RFC 2046 state machine behind :func:`iter_parts`."""

    def __init__(
        self,
        source: _Source,
        boundary: bytes,
        *,
        spool_dir: Path,
        max_parts: int,
        max_header_bytes: int,
        max_part_bytes: int,
    ) -> None:
        self.src = source
        self.delimiter = _CRLF + b"--" + boundary
        self.spool_dir = spool_dir
        self.max_parts = max_parts
        self.max_header_bytes = max_header_bytes
        self.max_part_bytes = max_part_bytes

    def parts(self) -> Generator[Part, None, None]:
        self._skip_preamble()
        closed = self._end_of_delimiter_line()
        count = 0
        while not closed:
            count += 1
            if count > self.max_parts:
                raise BadRequest(f"the multipart body has more than {self.max_parts} parts")
            headers = self._read_headers()
            path, size = self._spool_body()
            try:
                closed = self._end_of_delimiter_line()
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            yield Part(headers, _part_content_type(headers), path, size)

    def _truncated(self, where: str) -> BadRequest:
        return BadRequest(
            f"the multipart body ends {where} without the closing delimiter; "
            "it is truncated or its boundary does not match"
        )

    def _skip_preamble(self) -> None:
        """Discard everything up to and including the first delimiter."""
        buf = self.src.buf
        # RFC 2046: the CRLF before the first delimiter may be absent when there is no
        # preamble; a virtual CRLF lets one search find both forms.
        buf += _CRLF
        keep = len(self.delimiter) - 1
        while True:
            i = buf.find(self.delimiter)
            if i >= 0:
                del buf[: i + len(self.delimiter)]
                return
            if len(buf) > keep:
                del buf[: len(buf) - keep]
            if not self.src.fill():
                raise BadRequest(
                    "the multipart boundary given in the Content-Type does not occur in the body"
                )

    def _end_of_delimiter_line(self) -> bool:
        """Consume the rest of a delimiter line; True if it was the close delimiter."""
        buf = self.src.buf
        while len(buf) < 2:
            if not self.src.fill():
                raise self._truncated("after a delimiter")
        if buf[:2] == b"--":
            return True
        start = 0
        while True:
            i = buf.find(_CRLF, start)
            if i >= 0:
                break
            if len(buf) > self.max_header_bytes:
                raise BadRequest("a multipart delimiter line is too long")
            start = max(0, len(buf) - 1)
            if not self.src.fill():
                raise self._truncated("after a delimiter")
        if buf[:i].strip(b" \t"):
            raise BadRequest(
                "unexpected characters after a multipart delimiter (only transport "
                "padding may follow the boundary)"
            )
        del buf[: i + 2]
        return False

    def _read_headers(self) -> dict[str, str]:
        """Consume a part's header block and its blank line."""
        buf = self.src.buf
        limit = self.max_header_bytes
        start = 0
        while True:
            if buf[:2] == _CRLF:
                del buf[:2]
                return {}
            i = buf.find(b"\r\n\r\n", start, limit + 4)
            if i >= 0:
                raw = bytes(buf[:i])
                del buf[: i + 4]
                return _parse_headers(raw)
            if len(buf) >= limit + 4:
                raise BadRequest(f"multipart part headers are longer than {limit} bytes")
            start = max(0, len(buf) - 3)
            if not self.src.fill():
                raise self._truncated("inside part headers")

    def _spool_body(self) -> tuple[Path, int]:
        """Copy a part's bytes to a new spool file, up to and including the next delimiter."""
        fd, name = tempfile.mkstemp(prefix=".multipart-", suffix=".part", dir=self.spool_dir)
        path = Path(name)
        size = 0
        buf = self.src.buf
        delimiter = self.delimiter
        keep = len(delimiter) - 1
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    i = buf.find(delimiter)
                    n = i if i >= 0 else len(buf) - keep
                    if n > 0:
                        if size + n > self.max_part_bytes:
                            raise PayloadTooLarge(
                                f"a multipart part is larger than {self.max_part_bytes} bytes"
                            )
                        with memoryview(buf) as view, view[:n] as head:
                            out.write(head)
                        size += n
                    if i >= 0:
                        del buf[: i + len(delimiter)]
                        return path, size
                    if n > 0:
                        del buf[:n]
                    if not self.src.fill():
                        raise self._truncated("inside a part")
        except BaseException:
            path.unlink(missing_ok=True)
            raise


def _parse_headers(raw: bytes) -> dict[str, str]:
    """RFC 5322-style header lines, names lowered; folded lines are joined."""
    headers: dict[str, str] = {}
    last: str | None = None
    for line in raw.decode("latin-1").split("\r\n"):
        if any(c in _CONTROL for c in line):
            raise BadRequest("a multipart part header contains a control character")
        if line[:1] in (" ", "\t"):
            if last is None:
                raise BadRequest("a multipart part header block starts with a continuation")
            headers[last] = f"{headers[last]} {line.strip()}".strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or any(c not in _HEADER_NAME_CHARS for c in name):
            raise BadRequest("malformed multipart part header line (expected 'Name: value')")
        last = name.lower()
        if last in headers:
            raise BadRequest(f"multipart part header {last!r} is given twice")
        headers[last] = value.strip(" \t")
    return headers


def _part_content_type(headers: Mapping[str, str]) -> MediaType | None:
    value = headers.get("content-type")
    if value is None:
        return None
    try:
        return parse_content_type(value)
    except BadRequest:
        return None


PART_END = _CRLF
"""What follows a part's bytes (the first half of the next delimiter)."""

class MultipartWriter:
    """Stream a ``multipart/related`` body for WADO-RS (PS3.18 §8.6, RFC 2387).

    A part is :meth:`part_head`, its bytes and :data:`PART_END` (or one
    :meth:`iter_bytes_part` for bytes in memory); after the last, :meth:`close`. A part
    is written as ``--boundary CRLF headers CRLF body CRLF``, so
    the CRLF after each body is the first half of the next delimiter and the body has
    no preamble (decoders that ignore preambles, as dicomweb-client's does, read it).

    Parameters
    ----------
    boundary
        The boundary; by default a random UUID4 in hex, whose 122 random bits make it
        vanishingly unlikely to occur in pixel data.
    """

    def __init__(self, boundary: str | None = None) -> None:
        self._boundary = uuid.uuid4().hex if boundary is None else boundary
        problem = _boundary_problem(self._boundary)
        if problem is not None:
            raise ValueError(problem)
        self._dash_boundary = b"--" + self._boundary.encode("ascii")
        self._closed = False

    @property
    def boundary(self) -> str:
        """The boundary, to put in the response's Content-Type."""
        return self._boundary

    def content_type(self, type_: str, extra_params: Mapping[str, str] | None = None) -> str:
        """The response Content-Type, e.g. ``multipart/related; type="application/dicom";
        boundary=...``.

        Parameters
        ----------
        type_
            The media type of the parts (RFC 2387 ``type``).
        extra_params
            More parameters, e.g. ``{"transfer-syntax": "1.2.840.10008.1.2.1"}``.
        """
        params = {"type": type_, **(extra_params or {}), "boundary": self._boundary}
        return format_media_type("multipart/related", params)

    def iter_bytes_part(
        self,
        data: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[bytes]:
        """One part whose body is already in memory (metadata, a rendered frame)."""
        self._check_open()
        head = self._part_head(content_type, headers)
        return iter((head, data, _CRLF))

    def part_head(self, content_type: str, headers: Mapping[str, str] | None = None) -> bytes:
        """The delimiter and header block that open a part, for bodies assembled from
        pieces (``omipacs.web.body``); the part's bytes must be followed by
        :data:`PART_END`."""
        self._check_open()
        return self._part_head(content_type, headers)

    def close(self) -> bytes:
        """The close delimiter ``--boundary--`` CRLF; no part may follow."""
        self._check_open()
        self._closed = True
        return self._dash_boundary + b"--" + _CRLF

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the multipart body is already closed")

    def _part_head(self, content_type: str, headers: Mapping[str, str] | None) -> bytes:
        lines = [self._dash_boundary.decode("ascii"), f"Content-Type: {content_type}"]
        for name, value in (headers or {}).items():
            if not name or any(c not in _HEADER_NAME_CHARS for c in name):
                raise ValueError(f"invalid header name {name!r}")
            if name.lower() == "content-type":
                raise ValueError("pass the part's Content-Type as content_type")
            lines.append(f"{name}: {value}")
        for line in lines:
            if any(c in _CONTROL for c in line):
                raise ValueError("multipart header values cannot contain control characters")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
