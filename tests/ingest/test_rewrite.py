"""Rewriting a header while streaming the original pixel bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest

from omipacs.deid.pixels import overlay_plan
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
    written = rewrite(parsed, parsed.file_meta, header, dest)
    # The hash the index records is made on the way, of exactly the bytes on disk.
    assert written.sha256 == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert written.size == dest.stat().st_size
    out = pydicom.dcmread(dest)
    assert out.PatientName == "CHANGED^NAME^WITH^A^MUCH^LONGER^VALUE"
    assert out.PixelData == ds.PixelData
    assert 0xFFFCFFFC in out
    again = parse_file(dest)
    assert again.pixel is not None and again.pixel.element_end < again.file_size


def test_pixel_words_are_cleaned_on_the_way(tmp_path: Path) -> None:
    """Bits outside Bits Stored are cleared in the copy (the source is not touched), and
    the hash is of the cleaned bytes."""
    ds = factory.make_mammo(rows=64, columns=48, rng=3)
    assert ds.BitsStored < ds.BitsAllocated
    words = np.frombuffer(ds.PixelData, "<u2").copy()
    words[::7] |= 0x8000  # overlay bits hidden above the stored range
    ds.PixelData = words.tobytes()
    src = tmp_path / "src.dcm"
    factory.save(ds, src)
    before = src.read_bytes()
    parsed = parse_file(src)
    mask, _ = overlay_plan(parsed.dataset, parsed.transfer_syntax)
    assert mask is not None
    dest = tmp_path / "dest.dcm"
    written = rewrite(parsed, parsed.file_meta, parsed.dataset, dest, mask)
    assert src.read_bytes() == before
    assert written.sha256 == hashlib.sha256(dest.read_bytes()).hexdigest()
    cleaned = np.frombuffer(pydicom.dcmread(dest).PixelData, "<u2")
    keep = (1 << ds.BitsStored) - 1
    assert cleaned.tolist() == (words & keep).tolist()
