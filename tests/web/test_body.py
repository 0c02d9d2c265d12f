"""Segmented response bodies: lengths known up front, file ranges read lazily."""

from __future__ import annotations

from pathlib import Path

import pytest

from omipacs.web.body import FileRange, SegmentedBody, ShortFile, assemble


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 9000)  # 2.3 MB: more than one read chunk
    return path


def test_segments_concatenate_with_a_known_length(blob: Path) -> None:
    data = blob.read_bytes()
    body = SegmentedBody([b"head", FileRange(blob, 10, 2_000_000), b"", b"tail"])
    assert body.length == 4 + 2_000_000 + 4
    assert b"".join(body) == b"head" + data[10:2_000_010] + b"tail"
    assert b"".join(body) == b"".join(body)  # iterable again: each pass reopens the file


def test_a_stream_piece_makes_a_stream(blob: Path) -> None:
    out = assemble([b"a", (c for c in (b"b", b"c")), FileRange(blob, 0, 3)])
    assert not isinstance(out, SegmentedBody)
    assert b"".join(out) == b"abc" + blob.read_bytes()[:3]
    assert isinstance(assemble([b"a", FileRange(blob, 0, 3)]), SegmentedBody)


def test_a_file_shorter_than_its_range_is_an_error(blob: Path) -> None:
    body = SegmentedBody([FileRange(blob, 2_000_000, 1_000_000)])
    with pytest.raises(ShortFile):
        b"".join(body)


def test_negative_ranges_are_refused(blob: Path) -> None:
    with pytest.raises(ValueError):
        FileRange(blob, -1, 3)
