"""multipart/related in and out (PS3.18 §8.6, RFC 2046 §5.1.1, RFC 2387; robustness T5, F10).

Bodies are checked against two independent implementations: dicomweb-client's encoder
and decoder, and the standard library's ``email`` parser.
"""

from __future__ import annotations

import email
import email.policy
import io
import os
import random
from collections.abc import Iterable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests
from dicomweb_client.web import DICOMwebClient

from omipacs.errors import BadRequest, OmipacsError, PayloadTooLarge
from omipacs.web.body import FileRange, SegmentedBody
from omipacs.web.media import parse_content_type
from omipacs.web.multipart import (
    PART_END,
    MultipartWriter,
    Part,
    boundary_from_content_type,
    iter_parts,
    spool_parts,
    validate_boundary,
)

B = "0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1"
CHUNK_SIZES = [1, 2, 7, 64, 1 << 20]
LIMITS: dict[str, Any] = {
    "max_parts": 100,
    "max_part_bytes": 1 << 24,
    "max_total_bytes": 1 << 26,
}

# Bodies whose bytes come close to a delimiter without being one, so a parser that
# splits at the wrong place, or loses bytes held back between reads, is caught.
TRICKY = [
    b"",
    b"\r\n",
    b"\r",
    b"-",
    b"plain text",
    b"ends with CRLF\r\n",
    b"ends with CR\r",
    b"\r\n--" + B[:-1].encode(),
    b"--" + B.encode() + b" not after CRLF",
    b"x\r\n-" + B.encode(),
    b"\r\n\r\n--\r\n--\r\n",
    bytes(range(256)) * 3,
]


def build(
    parts: Iterable[tuple[dict[str, str], bytes]],
    boundary: str = B,
    *,
    preamble: bytes = b"",
    epilogue: bytes = b"",
    padding: bytes = b"",
    close: bool = True,
) -> bytes:
    """A multipart body written by hand, following RFC 2046 §5.1.1 literally."""
    dash = b"--" + boundary.encode()
    out = bytearray(preamble + b"\r\n" if preamble else b"")
    for headers, body in parts:
        out += dash + padding + b"\r\n"
        for name, value in headers.items():
            out += f"{name}: {value}\r\n".encode("latin-1")
        out += b"\r\n" + body + b"\r\n"
    if close:
        out += dash + b"--" + padding + epilogue
    return bytes(out)


def dicom_part(body: bytes) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/dicom"}, body


def chunked(data: bytes, sizes: Iterable[int]) -> Iterator[bytes]:
    """Yield ``data`` in pieces of the given sizes (cycled), with empty chunks between."""
    sizes = list(sizes)
    pos = 0
    k = 0
    while pos < len(data):
        n = sizes[k % len(sizes)]
        k += 1
        yield data[pos : pos + n]
        yield b""
        pos += n


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


def parse(
    body: bytes | Iterable[bytes],
    spool: Path,
    boundary: str = B,
    **kwargs: Any,
) -> list[tuple[dict[str, str], bytes]]:
    """Parse, read and delete every part; return (headers, bytes) pairs."""
    options = {**LIMITS, **kwargs}
    stream = io.BytesIO(body) if isinstance(body, bytes) else body
    out = []
    for part in iter_parts(stream, boundary, spool_dir=spool, **options):
        assert part.path.parent == spool
        data = part.path.read_bytes()
        assert len(data) == part.size
        part.discard()
        out.append((part.headers, data))
    return out


def bodies(parsed: list[tuple[dict[str, str], bytes]]) -> list[bytes]:
    return [data for _, data in parsed]


# -- reading ---------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_delimiters_found_across_any_chunking(spool: Path, chunk_size: int) -> None:
    body = build(dicom_part(b) for b in TRICKY)
    assert bodies(parse(body, spool, chunk_size=chunk_size)) == TRICKY
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize("sizes", [[1], [3, 1, 8], [70, 1, 2, 71], [4096]])
def test_iterable_of_chunks(spool: Path, sizes: list[int]) -> None:
    body = build(dicom_part(b) for b in TRICKY)
    assert bodies(parse(chunked(body, sizes), spool)) == TRICKY


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("chunk_size", [5, 100, 1 << 20])
def test_random_binary_parts(spool: Path, seed: int, chunk_size: int) -> None:
    rng = random.Random(seed)
    # Random bytes over a small alphabet hit CR, LF and '-' often.
    data = [
        bytes(rng.choice(b"\r\n-0f3c") for _ in range(rng.randrange(0, 3000)))
        for _ in range(rng.randrange(1, 6))
    ]
    body = build(dicom_part(d) for d in data)
    assert bodies(parse(body, spool, chunk_size=chunk_size)) == data


@pytest.mark.parametrize("chunk_size", [1, 7, 1 << 20])
@pytest.mark.parametrize(
    ("preamble", "padding", "epilogue"),
    [
        (b"", b"", b""),
        (b"This is a preamble; it is ignored.", b"", b""),
        (b"--not-the-boundary\r\n\r\n", b"", b"\r\n"),
        (b"", b" \t ", b"\r\nEpilogue, also ignored\r\n--" + B.encode() + b"\r\n"),
        (b"pre", b"  ", b"\r\n" + b"x" * 5000),
    ],
)
def test_preamble_padding_epilogue(
    spool: Path, chunk_size: int, preamble: bytes, padding: bytes, epilogue: bytes
) -> None:
    data = [b"first", b"", b"third\r\n"]
    body = build(
        (dicom_part(d) for d in data), preamble=preamble, padding=padding, epilogue=epilogue
    )
    assert bodies(parse(body, spool, chunk_size=chunk_size)) == data


def test_leading_crlf_before_first_delimiter(spool: Path) -> None:
    body = b"\r\n" + build([dicom_part(b"a")])
    assert bodies(parse(body, spool)) == [b"a"]


@pytest.mark.parametrize("close", [b"--" + B.encode() + b"--", b"--" + B.encode() + b"--\r\n"])
def test_empty_multipart_has_no_parts(spool: Path, close: bytes) -> None:
    assert parse(close, spool) == []


def test_part_headers(spool: Path) -> None:
    body = build(
        [
            (
                {
                    "Content-Type": 'application/dicom; transfer-syntax="1.2.840.10008.1.2.1"',
                    "content-LOCATION": "/studies/1.2.3",
                    "Content-Description": "folded",
                },
                b"one",
            ),
            ({}, b"no headers"),
            ({"Content-Type": "not a media type"}, b"bad type"),
            ({"X-Empty": ""}, b"empty value"),
        ]
    ).replace(b"Description: folded", b"Description: folded\r\n  over\r\n\ttwo lines")
    parts = list(iter_parts(io.BytesIO(body), B, spool_dir=spool, **LIMITS))
    first, bare, bad, empty = parts
    assert first.headers == {
        "content-type": 'application/dicom; transfer-syntax="1.2.840.10008.1.2.1"',
        "content-location": "/studies/1.2.3",
        "content-description": "folded over two lines",
    }
    assert first.content_type is not None
    assert first.content_type.essence == "application/dicom"
    assert first.content_type.param("transfer-syntax") == "1.2.840.10008.1.2.1"
    assert (bare.headers, bare.content_type) == ({}, None)
    assert bad.headers == {"content-type": "not a media type"}
    assert bad.content_type is None
    assert empty.headers == {"x-empty": ""}
    assert [p.path.read_bytes() for p in parts] == [
        b"one",
        b"no headers",
        b"bad type",
        b"empty value",
    ]
    for part in parts:
        part.discard()
        part.discard()  # a second discard is harmless
    assert list(spool.iterdir()) == []


def test_parts_are_yielded_before_the_rest_is_read(spool: Path) -> None:
    data = [os.urandom(200_000) for _ in range(3)]
    stream = io.BytesIO(build(dicom_part(d) for d in data))
    parts = iter_parts(stream, B, spool_dir=spool, chunk_size=4096, **LIMITS)
    first = next(parts)
    assert first.path.read_bytes() == data[0]
    assert stream.tell() < 250_000  # the second part is still unread
    first.discard()
    rest = list(parts)
    assert [p.path.read_bytes() for p in rest] == data[1:]


def test_reads_are_bounded_by_chunk_size(spool: Path) -> None:
    class Recorder(io.BytesIO):
        sizes: list[int] = []

        def read(self, size: int | None = -1, /) -> bytes:
            self.sizes.append(-1 if size is None else size)
            return super().read(size)

    stream = Recorder(build([dicom_part(os.urandom(100_000))]))
    list(iter_parts(stream, B, spool_dir=spool, chunk_size=1000, **LIMITS))
    assert set(stream.sizes) == {1000}


def test_parser_stops_at_close_delimiter(spool: Path) -> None:
    body = build([dicom_part(b"a")])
    stream = io.BytesIO(body + b"\r\n" + b"e" * 100_000)
    assert len(list(iter_parts(stream, B, spool_dir=spool, chunk_size=64, **LIMITS))) == 1
    assert stream.tell() < len(body) + 64


def test_limits_are_inclusive(spool: Path) -> None:
    headers = {"Content-Type": "application/dicom", "X-Pad": ""}
    head = b"Content-Type: application/dicom\r\nX-Pad: "
    headers["X-Pad"] = "p" * (8192 - len(head))  # header block of exactly 8192 bytes
    body = build([(headers, b"12345"), dicom_part(b"")])
    parsed = parse(
        body,
        spool,
        max_parts=2,
        max_header_bytes=8192,
        max_part_bytes=5,
        max_total_bytes=len(body),
        chunk_size=3,
    )
    assert bodies(parsed) == [b"12345", b""]


def test_spool_files_are_private_and_in_spool_dir(spool: Path) -> None:
    (part,) = list(iter_parts(io.BytesIO(build([dicom_part(b"x")])), B, spool_dir=spool, **LIMITS))
    assert part.path.parent == spool
    assert part.path.stat().st_mode & 0o077 == 0
    part.discard()


# -- malformed bodies (robustness T5) ----------------------------------------------------

GOOD = build([dicom_part(b"one"), dicom_part(b"two")])
MALFORMED: list[tuple[str, bytes, str, dict[str, Any], type[OmipacsError], str]] = [
    (
        "more parts than allowed",
        build(dicom_part(b"%d" % i) for i in range(4)),
        B,
        {"max_parts": 3},
        BadRequest,
        "more than 3 parts",
    ),
    ("boundary longer than 70", GOOD, "b" * 71, {}, BadRequest, "at most 70"),
    ("empty boundary", GOOD, "", {}, BadRequest, "boundary is empty"),
    ("boundary with CRLF", GOOD, "a\r\nb", {}, BadRequest, "does not allow"),
    ("boundary with non-ASCII", GOOD, "bé", {}, BadRequest, "does not allow"),
    ("boundary ending in space", GOOD, "abc ", {}, BadRequest, "ends with a space"),
    ("boundary absent from body", GOOD, "other", {}, BadRequest, "does not occur"),
    ("boundary longer than body's", GOOD, B + "x", {}, BadRequest, "does not occur"),
    ("boundary a prefix of body's", GOOD, B[:-1], {}, BadRequest, "unexpected characters"),
    ("empty body", b"", B, {}, BadRequest, "does not occur"),
    ("no close delimiter", build([dicom_part(b"a")], close=False), B, {}, BadRequest, "truncated"),
    ("truncated in a part", GOOD[: GOOD.index(b"two") + 1], B, {}, BadRequest, "truncated"),
    ("truncated in headers", GOOD[: GOOD.index(b"two") - 5], B, {}, BadRequest, "truncated"),
    ("truncated after delimiter", GOOD[: GOOD.rindex(b"--")], B, {}, BadRequest, "truncated"),
    (
        "truncated after dash",
        GOOD[: GOOD.rindex(b"--") + 1],
        B,
        {},
        BadRequest,
        "truncated",
    ),
    (
        "truncated in padding",
        b"--" + B.encode() + b"   ",
        B,
        {},
        BadRequest,
        "truncated",
    ),
    (
        "text after boundary",
        GOOD.replace(B.encode() + b"\r\n", B.encode() + b" junk\r\n", 1),
        B,
        {},
        BadRequest,
        "unexpected characters",
    ),
    (
        "endless transport padding",
        b"--" + B.encode() + b" " * 10_000,
        B,
        {},
        BadRequest,
        "delimiter line is too long",
    ),
    (
        "part headers over 8 KiB",
        build([({"Content-Type": "application/dicom", "X-Big": "x" * 8200}, b"a")]),
        B,
        {},
        BadRequest,
        "longer than 8192 bytes",
    ),
    (
        "headers never end",
        b"--" + B.encode() + b"\r\n" + b"X-Endless: y\r\n" * 1000,
        B,
        {},
        BadRequest,
        "longer than 8192 bytes",
    ),
    (
        "header line without colon",
        build([({}, b"a")]).replace(b"\r\n\r\na", b"\r\nNoColonHere\r\n\r\na"),
        B,
        {},
        BadRequest,
        "malformed multipart part header",
    ),
    (
        "header name with space",
        build([({"Bad Name": "x"}, b"a")]),
        B,
        {},
        BadRequest,
        "malformed multipart part header",
    ),
    (
        "continuation first",
        build([({}, b"a")]).replace(b"\r\n\r\na", b"\r\n folded\r\n\r\na"),
        B,
        {},
        BadRequest,
        "continuation",
    ),
    (
        "header with NUL",
        build([({"Content-Type": "application/dicom\x00"}, b"a")]),
        B,
        {},
        BadRequest,
        "control character",
    ),
    (
        "header with bare LF",
        build([({"Content-Type": "application/dicom\nX: y"}, b"a")]),
        B,
        {},
        BadRequest,
        "control character",
    ),
    (
        "duplicate Content-Type",
        build([({"Content-Type": "application/dicom", "content-type": "text/plain"}, b"a")]),
        B,
        {},
        BadRequest,
        "given twice",
    ),
    (
        "part too large",
        build([dicom_part(b"small"), dicom_part(b"x" * 1001)]),
        B,
        {"max_part_bytes": 1000},
        PayloadTooLarge,
        "larger than 1000 bytes",
    ),
    ("total too large", GOOD, B, {"max_total_bytes": len(GOOD) - 1}, PayloadTooLarge, "body"),
]


@pytest.mark.parametrize("chunk_size", [1, 7, 1 << 20])
@pytest.mark.parametrize(
    ("body", "boundary", "limits", "error", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in MALFORMED],
)
def test_malformed_bodies(
    spool: Path,
    chunk_size: int,
    body: bytes,
    boundary: str,
    limits: dict[str, Any],
    error: type[OmipacsError],
    reason: str,
) -> None:
    with pytest.raises(error, match=reason) as caught:
        parse(body, spool, boundary, chunk_size=chunk_size, **limits)
    assert type(caught.value) is error
    assert list(spool.iterdir()) == []  # the unfinished part's file is gone


@pytest.mark.parametrize("case", [pytest.param(case, id=case[0]) for case in MALFORMED])
def test_spool_parts_leaves_nothing_on_error(spool: Path, case: tuple[Any, ...]) -> None:
    _, body, boundary, limits, error, _ = case
    options = {**LIMITS, **limits}
    with pytest.raises(error):
        spool_parts(io.BytesIO(body), boundary, spool_dir=spool, **options)
    assert list(spool.iterdir()) == []


def test_spool_parts_returns_every_part(spool: Path) -> None:
    parts = spool_parts(io.BytesIO(GOOD), B, spool_dir=spool, chunk_size=5, **LIMITS)
    assert [p.path.read_bytes() for p in parts] == [b"one", b"two"]
    assert sorted(spool.iterdir()) == sorted(p.path for p in parts)


def test_invalid_boundary_is_refused_before_reading(spool: Path) -> None:
    stream = io.BytesIO(GOOD)
    with pytest.raises(BadRequest):
        iter_parts(stream, "x" * 71, spool_dir=spool, **LIMITS)
    assert stream.tell() == 0


@pytest.mark.parametrize(
    "limit", ["max_parts", "max_header_bytes", "max_part_bytes", "max_total_bytes", "chunk_size"]
)
def test_limits_below_one_are_programming_errors(spool: Path, limit: str) -> None:
    options: dict[str, Any] = {**LIMITS, limit: 0}
    with pytest.raises(ValueError, match=limit):
        iter_parts(io.BytesIO(GOOD), B, spool_dir=spool, **options)


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ('multipart/related; type="application/dicom"; boundary=abc', "abc"),
        ('multipart/related; type="application/dicom"; boundary="a b:c"', "a b:c"),
        ("multipart/related; BOUNDARY=CaseKept", "CaseKept"),
    ],
)
def test_boundary_from_content_type(content_type: str, boundary: str) -> None:
    assert boundary_from_content_type(parse_content_type(content_type)) == boundary


@pytest.mark.parametrize(
    ("content_type", "reason"),
    [
        ('multipart/related; type="application/dicom"', "no boundary"),
        ('multipart/related; boundary=""', "empty"),
        ("multipart/related; boundary=" + "a" * 71, "at most 70"),
        ('multipart/related; boundary="a;b"', "does not allow"),
    ],
)
def test_boundary_from_content_type_rejects(content_type: str, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        boundary_from_content_type(parse_content_type(content_type))


@pytest.mark.parametrize("boundary", ["a", "b" * 70, "'()+_,-./:=? x", B])
def test_valid_boundaries(boundary: str) -> None:
    validate_boundary(boundary)


# -- writing ---------------------------------------------------------------------------


def write_body(writer: MultipartWriter, parts: Iterable[Iterable[bytes]]) -> bytes:
    out = bytearray()
    for part in parts:
        for chunk in part:
            out += chunk
    out += writer.close()
    return bytes(out)


def test_writer_boundary_is_random_and_valid() -> None:
    first, second = MultipartWriter(), MultipartWriter()
    assert first.boundary != second.boundary
    assert len(first.boundary) == 32
    validate_boundary(first.boundary)


@pytest.mark.parametrize("boundary", ["", "x" * 71, "a\r\nb", "trailing "])
def test_writer_refuses_bad_boundary(boundary: str) -> None:
    with pytest.raises(ValueError):
        MultipartWriter(boundary)


def test_writer_content_type() -> None:
    writer = MultipartWriter("abc")
    assert writer.boundary == "abc"
    assert (
        writer.content_type("application/dicom")
        == 'multipart/related; type="application/dicom"; boundary=abc'
    )
    text = writer.content_type(
        "application/octet-stream", {"transfer-syntax": "1.2.840.10008.1.2.1"}
    )
    media = parse_content_type(text)
    assert media.essence == "multipart/related"
    assert media.params == {
        "type": "application/octet-stream",
        "transfer-syntax": "1.2.840.10008.1.2.1",
        "boundary": "abc",
    }
    assert boundary_from_content_type(media) == "abc"


def test_writer_framing_is_exact() -> None:
    writer = MultipartWriter("b")
    body = write_body(
        writer,
        [
            writer.iter_bytes_part(b"one", "application/dicom", {"Content-Location": "/x"}),
            writer.iter_bytes_part(b"", "application/json"),
        ],
    )
    assert body == (
        b"--b\r\nContent-Type: application/dicom\r\nContent-Location: /x\r\n\r\none\r\n"
        b"--b\r\nContent-Type: application/json\r\n\r\n\r\n"
        b"--b--\r\n"
    )


@pytest.mark.parametrize("chunk_size", [1, 7, 1 << 20])
def test_writer_round_trips_through_parser(spool: Path, tmp_path: Path, chunk_size: int) -> None:
    stored = tmp_path / "stored.bin"
    stored.write_bytes(bytes(range(256)) * 40)
    writer = MultipartWriter()
    body = write_body(
        writer,
        [
            *(writer.iter_bytes_part(b, "application/dicom") for b in TRICKY),
            SegmentedBody([
                writer.part_head("application/octet-stream"),
                FileRange(stored, 0, stored.stat().st_size),
                PART_END,
            ]),
            SegmentedBody([
                writer.part_head("application/octet-stream", {"Content-Location": "/frames/2"}),
                FileRange(stored, 1000, 3000),
                PART_END,
            ]),
        ],
    )
    media = parse_content_type(writer.content_type("application/dicom"))
    parsed = parse(body, spool, boundary_from_content_type(media), chunk_size=chunk_size)
    assert bodies(parsed) == [*TRICKY, stored.read_bytes(), stored.read_bytes()[1000:4000]]
    assert parsed[-1][0] == {
        "content-type": "application/octet-stream",
        "content-location": "/frames/2",
    }


def test_writer_empty_body_parses(spool: Path) -> None:
    writer = MultipartWriter()
    assert parse(writer.close(), spool, writer.boundary) == []


def test_file_part_missing_file(tmp_path: Path) -> None:
    writer = MultipartWriter()
    head = writer.part_head("application/dicom")
    part = SegmentedBody([head, FileRange(tmp_path / "absent", 0, 1)])
    with pytest.raises(FileNotFoundError):
        list(part)


@pytest.mark.parametrize(
    ("content_type", "headers"),
    [
        ("application/dicom\r\nX-Injected: 1", None),
        ("application/dicom", {"Content-Location": "/a\r\n\r\nbody"}),
        ("application/dicom", {"Bad Name": "x"}),
        ("application/dicom", {"": "x"}),
        ("application/dicom", {"content-type": "text/plain"}),
    ],
)
def test_writer_refuses_bad_headers(content_type: str, headers: dict[str, str] | None) -> None:
    writer = MultipartWriter()
    with pytest.raises(ValueError):
        writer.iter_bytes_part(b"", content_type, headers)
    with pytest.raises(ValueError):
        writer.part_head(content_type, headers)


def test_writer_refuses_bad_ranges(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FileRange(tmp_path / "f", -1, 1)
    with pytest.raises(ValueError):
        FileRange(tmp_path / "f", 0, -1)


def test_writer_refuses_parts_after_close() -> None:
    writer = MultipartWriter()
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.iter_bytes_part(b"", "application/dicom")
    with pytest.raises(ValueError, match="closed"):
        writer.close()


# -- interoperability: dicomweb-client -------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1 << 20])
def test_parses_dicomweb_client_stow_body(spool: Path, chunk_size: int) -> None:
    # The Content-Type dicomweb-client sends with store_instances().
    content_type = f'multipart/related; type="application/dicom"; boundary="{B}"'
    data = [b for b in TRICKY if b != b"--" + B.encode() + b" not after CRLF"]
    data += [os.urandom(5000) for _ in range(3)]
    body = DICOMwebClient._encode_multipart_message(data, content_type)
    boundary = boundary_from_content_type(parse_content_type(content_type))
    parts = list(
        iter_parts(io.BytesIO(body), boundary, spool_dir=spool, chunk_size=chunk_size, **LIMITS)
    )
    assert [p.path.read_bytes() for p in parts] == data
    assert {p.content_type for p in parts} == {parse_content_type("application/dicom")}
    for part in parts:
        part.discard()


def fake_response(body: bytes, content_type: str, *, stream: bool) -> requests.Response:
    """A requests.Response as dicomweb-client would receive it, without a network."""
    response = requests.Response()
    response.status_code = 200
    response.headers["Content-Type"] = content_type
    if stream:
        response.raw = io.BytesIO(body)
    else:
        response._content = body
        response._content_consumed = True  # type: ignore[attr-defined]
    return response


@pytest.mark.parametrize(("stream", "chunk_size"), [(False, 0), (True, 1), (True, 7), (True, 4096)])
def test_dicomweb_client_decodes_writer_output(
    tmp_path: Path, stream: bool, chunk_size: int
) -> None:
    stored = tmp_path / "instance.dcm"
    stored.write_bytes(os.urandom(20_000))
    data = [b for b in TRICKY if b]  # dicomweb-client drops empty parts
    writer = MultipartWriter()
    body = write_body(
        writer,
        [
            *(writer.iter_bytes_part(b, "application/dicom") for b in data),
            SegmentedBody([
                writer.part_head("application/dicom"),
                FileRange(stored, 0, stored.stat().st_size),
                PART_END,
            ]),
        ],
    )
    client = DICOMwebClient("http://localhost")
    if chunk_size:
        client._chunk_size = chunk_size
    response = fake_response(body, writer.content_type("application/dicom"), stream=stream)
    decoded = list(client._decode_multipart_message(response, stream=stream))
    assert decoded == [*data, stored.read_bytes()]


# -- interoperability: the standard library's email parser ---------------------------------


def email_parts(body: bytes, content_type: str) -> list[tuple[str | None, bytes]]:
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    assert message.is_multipart()
    assert not message.defects
    out = []
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        out.append((part.get("Content-Location"), payload))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_email_parser_agrees_with_writer(seed: int) -> None:
    rng = random.Random(seed)
    data = [rng.randbytes(rng.randrange(1, 4000)) for _ in range(rng.randrange(1, 5))]
    writer = MultipartWriter()
    body = write_body(
        writer,
        (
            writer.iter_bytes_part(d, "application/dicom", {"Content-Location": f"/i/{k}"})
            for k, d in enumerate(data)
        ),
    )
    assert email_parts(body, writer.content_type("application/dicom")) == [
        (f"/i/{k}", d) for k, d in enumerate(data)
    ]


@pytest.mark.parametrize("seed", range(5))
def test_parser_agrees_with_email_parser(spool: Path, seed: int) -> None:
    rng = random.Random(seed)
    data = [rng.randbytes(rng.randrange(1, 4000)) for _ in range(rng.randrange(1, 5))]
    body = build(
        (({"Content-Location": f"/i/{k}"}, d) for k, d in enumerate(data)),
        preamble=b"preamble",
        padding=b" \t",
        epilogue=b"\r\nepilogue\r\n",
    )
    ours = [(h["content-location"], d) for h, d in parse(body, spool, chunk_size=7)]
    content_type = f'multipart/related; type="application/dicom"; boundary="{B}"'
    assert ours == email_parts(body, content_type) == [(f"/i/{k}", d) for k, d in enumerate(data)]


def test_parses_body_made_by_email_generator(spool: Path) -> None:
    message = EmailMessage(policy=email.policy.HTTP)
    message.preamble = "This is a multi-part message in MIME format."
    message.epilogue = "bye"
    message.set_type("multipart/related")
    message.set_param("type", "application/dicom")
    texts = ["first part\r\nline two", "second", ""]
    for k, text in enumerate(texts):
        sub = EmailMessage(policy=email.policy.HTTP)
        sub.set_content(text.encode(), "application", "dicom", cte="7bit")
        sub["Content-Location"] = f"/i/{k}"
        message.attach(sub)
    raw = message.as_bytes()
    content_type = parse_content_type(message["Content-Type"])
    body = raw.split(b"\r\n\r\n", 1)[1]
    boundary = boundary_from_content_type(content_type)
    parsed = parse(body, spool, boundary, chunk_size=3)
    assert [h["content-location"] for h, _ in parsed] == ["/i/0", "/i/1", "/i/2"]
    # set_content ends a 7bit payload with a line break; the parts are otherwise intact.
    assert [d.rstrip(b"\r\n") for _, d in parsed] == [t.encode() for t in texts]
    assert [h["content-type"] for h, _ in parsed] == ["application/dicom"] * 3


# -- a larger body, for efficiency (no timing assertion) ---------------------------------------


def test_large_parts_with_megabyte_chunks(spool: Path) -> None:
    block = os.urandom(1 << 20)
    sizes = [(8 << 20) + 13, 1, (4 << 20) - 1]
    writer = MultipartWriter()

    def big(n: int) -> Iterator[bytes]:
        full, rest = divmod(n, len(block))
        yield from [block] * full
        yield block[:rest]

    chunks: list[bytes] = []
    for n in sizes:
        head, _, tail = writer.iter_bytes_part(b"", "application/dicom")
        chunks += [head, *big(n), tail]
    chunks.append(writer.close())
    parts: list[Part] = list(iter_parts(chunks, writer.boundary, spool_dir=spool, **LIMITS))
    assert [p.size for p in parts] == sizes
    with parts[0].path.open("rb") as f:
        assert f.read(len(block)) == block
    for part in parts:
        part.discard()
