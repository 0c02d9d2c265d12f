from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileDataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from omipacs.demo.encoding import compress, lossless_syntaxes, save, to_bytes
from omipacs.demo.factory import make_dbt, make_mammo, make_secondary_capture


def reread(ds: Dataset) -> FileDataset:
    return pydicom.dcmread(io.BytesIO(to_bytes(ds)))


def test_rle_and_jpeg2000_encoders_are_available() -> None:
    assert {RLELossless, JPEG2000Lossless} <= set(lossless_syntaxes())


MAKERS = {
    "raw": lambda **k: make_mammo(processed=False, **k),
    "monochrome1": lambda **k: make_mammo(vendor="GE", **k),
    "dbt": lambda **k: make_dbt(frames=3, **k),
    "sc": lambda **k: make_secondary_capture(**k),
}


@pytest.mark.parametrize("syntax", lossless_syntaxes())
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_compress_round_trips_losslessly(syntax: str, kind: str) -> None:
    native = MAKERS[kind](rng=6)
    expected = native.pixel_array.copy()
    sop_uid = native.SOPInstanceUID
    result = reread(compress(native, syntax))
    assert result.file_meta.TransferSyntaxUID == syntax
    assert result.SOPInstanceUID == sop_uid
    assert np.array_equal(result.pixel_array, expected)
    # The factory argument does the same.
    again = reread(MAKERS[kind](rng=6, transfer_syntax=syntax))
    assert np.array_equal(again.pixel_array, expected)


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian])
def test_native_transfer_syntaxes(syntax: str) -> None:
    ds = reread(make_dbt(frames=2, rng=1, transfer_syntax=syntax))
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert ds.pixel_array.shape == (2, 128, 104)


def test_unsupported_syntax_is_rejected() -> None:
    with pytest.raises(ValueError, match="cannot compress"):
        compress(make_mammo(rng=1), JPEGBaseline8Bit)


def test_save_streams_large_stacks_and_keeps_the_value(tmp_path: Path) -> None:
    ds = make_dbt(frames=10, rows=1024, columns=840, rng=2)
    before = ds.PixelData
    assert len(before) > 2**24
    save(ds, tmp_path / "stack.dcm")
    assert ds.PixelData is before
    assert pydicom.dcmread(tmp_path / "stack.dcm").PixelData == before
