"""Rewriting a header while streaming the original pixel bytes."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from omipacs.demo import factory
from omipacs.dicom.parse import parse_file
from omipacs.ingest.rewrite import rewrite


@pytest.mark.parametrize("compressed", [False, True])
def test_rewrite_changes_header_keeps_pixels_and_trailer(tmp_path: Path, compressed: bool) -> None:
    ds = factory.make_dbt(frames=4, rows=64, columns=64)
    if compressed:
        factory.compress(ds, pydicom.uid.RLELossless)
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * 16)  # trailing padding after Pixel Data
    src = tmp_path / "src.dcm"
    factory.save(ds, src)
    parsed = parse_file(src)
    header = parsed.dataset
    header.PatientName = "CHANGED^NAME^WITH^A^MUCH^LONGER^VALUE"
    dest = tmp_path / "dest.dcm"
    rewrite(parsed, parsed.file_meta, header, dest)
    out = pydicom.dcmread(dest)
    assert out.PatientName == "CHANGED^NAME^WITH^A^MUCH^LONGER^VALUE"
    assert out.PixelData == ds.PixelData
    assert 0xFFFCFFFC in out
    again = parse_file(dest)
    assert again.pixel is not None and again.pixel.element_end < again.file_size
