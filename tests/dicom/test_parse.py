"""Header parsing and pixel location without loading pixels; frame tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, RLELossless

from omipacs.demo import factory
from omipacs.dicom.frames import frame_table
from omipacs.dicom.parse import parse_file
from omipacs.errors import InvalidInstance


def _write(ds: pydicom.Dataset, path: Path) -> Path:
    factory.save(ds, path)
    return path


def _read_frames(path: Path, table: list[list[tuple[int, int]]]) -> list[bytes]:
    data = path.read_bytes()
    return [b"".join(data[o : o + n] for o, n in frame) for frame in table]


def test_native_multiframe_offsets_match_pixel_bytes(tmp_path: Path) -> None:
    ds = factory.make_dbt(frames=6, rows=32, columns=24)
    path = _write(ds, tmp_path / "dbt.dcm")
    parsed = parse_file(path)
    assert parsed.pixel is not None and not parsed.pixel.encapsulated
    assert "PixelData" not in parsed.dataset
    table = frame_table(parsed.dataset, parsed.pixel)
    assert table is not None and len(table) == 6
    frames = _read_frames(path, table)
    expected = pydicom.dcmread(path).pixel_array
    for k in range(6):
        got = np.frombuffer(frames[k], dtype=expected.dtype).reshape(32, 24)
        assert np.array_equal(got, expected[k])


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_encapsulated_one_fragment_per_frame(tmp_path: Path, syntax: str) -> None:
    ds = factory.compress(factory.make_dbt(frames=3, rows=64, columns=64), syntax)
    path = _write(ds, tmp_path / "c.dcm")
    parsed = parse_file(path)
    assert parsed.pixel is not None and parsed.pixel.encapsulated
    table = frame_table(parsed.dataset, parsed.pixel)
    assert table is not None and len(table) == 3
    original = pydicom.dcmread(path)
    fragments = list(pydicom.encaps.generate_frames(original.PixelData, number_of_frames=3))
    assert _read_frames(path, table) == fragments


def test_basic_offset_table_groups_fragments(tmp_path: Path) -> None:
    ds = factory.make_dbt(frames=2, rows=16, columns=16)
    frames = [b"\x01" * 10 + b"\x02" * 10, b"\x03" * 6 + b"\x04" * 8]
    # Two fragments per frame, Basic Offset Table present (PS3.5 A.4).
    ds.PixelData = encapsulate(frames, fragments_per_frame=2, has_bot=True)
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds["PixelData"].VR = "OB"
    path = _write(ds, tmp_path / "bot.dcm")
    parsed = parse_file(path)
    assert parsed.pixel is not None and len(parsed.pixel.fragments) == 4
    table = frame_table(parsed.dataset, parsed.pixel)
    assert table is not None
    assert _read_frames(path, table) == frames


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated-half"),
        pytest.param(lambda b: b[:200], id="header-only"),
        pytest.param(lambda b: b"\x89PNG\r\n\x1a\n" + b"\x00" * 300, id="png"),
        pytest.param(lambda b: b'{"RemoteAccessAllowed": true}', id="json"),
        pytest.param(lambda b: b"", id="empty"),
    ],
)
def test_unreadable_files_raise_invalid_instance(tmp_path: Path, mangle: object) -> None:
    raw = factory.to_bytes(factory.make_mammo())
    path = tmp_path / "bad.dcm"
    path.write_bytes(mangle(raw))  # type: ignore[operator]
    with pytest.raises(InvalidInstance):
        parse_file(path)


def test_elements_after_pixel_data_are_kept(tmp_path: Path) -> None:
    ds = factory.make_mammo(rows=16, columns=16)
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * 8)  # Data Set Trailing Padding
    path = _write(ds, tmp_path / "trail.dcm")
    parsed = parse_file(path)
    assert 0xFFFCFFFC in parsed.dataset
    assert parsed.pixel is not None and parsed.pixel.element_end < parsed.file_size
