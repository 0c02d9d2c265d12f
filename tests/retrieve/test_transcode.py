"""Transcoding whole instances and single frames between transfer syntaxes."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from omipacs.dicom.pixels import decode_frame
from omipacs.errors import NotAcceptable
from omipacs.retrieve.transcode import supported_targets, transcode_frame, transcode_instance
from tests.retrieve.builders import (
    dcmtk_compress,
    encode_frames,
    header_of,
    make_image,
    native_file,
    native_frame,
    with_pixels,
    write,
)

COMPRESSED = [RLELossless, JPEG2000Lossless, JPEGLSLossless]


def stored(tmp_path: Path, syntax: str, **image: Any) -> tuple[Path, np.ndarray, str]:
    """Write a synthetic multi-frame instance in `syntax`; return path, pixels, UID."""
    ds, arr = make_image(frames=3, **image)
    ds.add_new(0x00291010, "LO", "ACME")
    ds.add_new(0x00291011, "LO", "private value")
    path = tmp_path / f"stored-{syntax}.dcm"
    if syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian):
        native_file(ds, arr, syntax, path)
    else:
        write(with_pixels(ds, encode_frames(ds, arr, syntax), syntax), path)
    return path, arr, str(ds.SOPInstanceUID)


def run(path: Path | io.BufferedReader, target: str) -> pydicom.FileDataset:
    with transcode_instance(path, target) as stream:
        assert stream.transfer_syntax == target
        data = b"".join(stream)
    return pydicom.dcmread(io.BytesIO(data))


IMAGES: dict[str, dict[str, Any]] = {
    "mono1-12bit": {"bits_stored": 12, "photometric": "MONOCHROME1"},
    "mono2-signed-14bit": {"bits_stored": 14, "signed": True},
    "rgb-8bit": {"bits_allocated": 8, "bits_stored": 8, "samples": 3, "photometric": "RGB"},
}


@pytest.mark.parametrize("image", sorted(IMAGES))
@pytest.mark.parametrize("source", COMPRESSED, ids=lambda s: s.name)
@pytest.mark.parametrize("target", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_compressed_to_native_keeps_every_pixel(
    tmp_path: Path, source: str, target: str, image: str
) -> None:
    path, arr, uid = stored(tmp_path, source, **IMAGES[image])
    out = run(path, target)
    assert out.file_meta.TransferSyntaxUID == target
    assert out.SOPInstanceUID == uid
    assert out[0x00291011].value in ("private value", b"private value ")
    np.testing.assert_array_equal(out.pixel_array, arr)
    assert len(out.PixelData) == arr.nbytes


@pytest.mark.parametrize("source", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless])
@pytest.mark.parametrize("target", [RLELossless, JPEG2000Lossless, JPEG2000, JPEGLSNearLossless])
def test_recompression_is_lossless(tmp_path: Path, source: str, target: str) -> None:
    path, arr, _ = stored(tmp_path, source, bits_stored=12)
    out = run(path, target)
    assert out.file_meta.TransferSyntaxUID == target
    assert out["PixelData"].is_undefined_length
    np.testing.assert_array_equal(out.pixel_array, arr)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (ImplicitVRLittleEndian, ExplicitVRLittleEndian),
        (ExplicitVRLittleEndian, ImplicitVRLittleEndian),
        (ExplicitVRBigEndian, ExplicitVRLittleEndian),
    ],
)
def test_native_to_native(tmp_path: Path, source: str, target: str) -> None:
    path, arr, _ = stored(tmp_path, source, bits_stored=14)
    out = run(path, target)
    np.testing.assert_array_equal(out.pixel_array, arr)
    if target == ExplicitVRLittleEndian:
        assert out["PixelData"].VR == "OW"


def test_same_syntax_returns_the_stored_bytes(tmp_path: Path) -> None:
    path, _, _ = stored(tmp_path, RLELossless)
    with transcode_instance(path, RLELossless) as stream:
        assert b"".join(stream) == path.read_bytes()


def test_open_file_objects_are_accepted_and_left_open(tmp_path: Path) -> None:
    path, arr, _ = stored(tmp_path, RLELossless)
    with path.open("rb") as fp:
        out = run(fp, ExplicitVRLittleEndian)
        assert not fp.closed
    np.testing.assert_array_equal(out.pixel_array, arr)


def test_elements_after_the_pixel_data_are_kept(tmp_path: Path) -> None:
    ds, arr = make_image(frames=2)
    ds.add_new(0x7FE10010, "LO", "ACME TAIL")
    ds.add_new(0x7FE11001, "LO", "after pixels")
    ds.DataSetTrailingPadding = b"\x00" * 16
    path = write(
        with_pixels(ds, encode_frames(ds, arr, RLELossless), RLELossless), tmp_path / "tail.dcm"
    )
    out = run(path, ImplicitVRLittleEndian)
    np.testing.assert_array_equal(out.pixel_array, arr)
    assert out[0x7FE11001].value in ("after pixels", b"after pixels")
    assert "DataSetTrailingPadding" not in out


def test_lossy_jpeg_becomes_rgb_and_stays_marked_lossy(tmp_path: Path) -> None:
    ds, _ = make_image(
        rows=32, columns=32, bits_allocated=8, bits_stored=8, samples=3, photometric="RGB"
    )
    gradient = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    gradient[0, :, :, 0] = np.arange(32)[:, None] * 8
    gradient[0, :, :, 1] = np.arange(32)[None, :] * 8
    gradient[0, :, :, 2] = 128
    source = native_file(ds, gradient, ExplicitVRLittleEndian, tmp_path / "rgb.dcm")
    syntax, _ = dcmtk_compress(source, tmp_path / "jpeg.dcm", "+eb")
    assert syntax == JPEGBaseline8Bit
    assert header_of(tmp_path / "jpeg.dcm").PhotometricInterpretation == "YBR_FULL_422"
    out = run(tmp_path / "jpeg.dcm", ExplicitVRLittleEndian)
    assert out.PhotometricInterpretation == "RGB"
    assert out.PlanarConfiguration == 0
    assert out.LossyImageCompression == "01"
    assert np.abs(out.pixel_array.astype(int) - gradient[0]).mean() < 4


def test_pixel_less_instances_are_re_encoded(tmp_path: Path) -> None:
    ds, _ = make_image()
    del ds.PixelData
    path = write(ds, tmp_path / "nopixels.dcm")
    out = run(path, ImplicitVRLittleEndian)
    assert "PixelData" not in out and out.SOPInstanceUID == ds.SOPInstanceUID


def _peak_transcoding(tmp_path: Path, frames: int) -> tuple[int, int]:
    ds, arr = make_image(rows=128, columns=128, frames=frames, bits_stored=12)
    path = write(
        with_pixels(ds, encode_frames(ds, arr, RLELossless), RLELossless),
        tmp_path / f"frames-{frames}.dcm",
    )
    total = 0
    tracemalloc.start()
    try:
        with transcode_instance(path, ExplicitVRLittleEndian) as stream:
            for chunk in stream:
                total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return total, peak


def test_memory_does_not_grow_with_the_number_of_frames(tmp_path: Path) -> None:
    _peak_transcoding(tmp_path, 2)  # first use imports codec modules
    _, few = _peak_transcoding(tmp_path, 4)
    total, many = _peak_transcoding(tmp_path, 64)
    assert total > 64 * 128 * 128 * 2
    assert many < few * 1.25  # one frame at a time, whatever the object's size
    assert many < total / 4


def test_refusals_happen_before_any_byte_is_produced(tmp_path: Path) -> None:
    path, _, _ = stored(tmp_path, RLELossless)
    with pytest.raises(NotAcceptable, match="cannot convert"):
        transcode_instance(path, JPEGBaseline8Bit)  # never made lossy
    with pytest.raises(NotAcceptable, match="cannot convert"):
        transcode_instance(path, DeflatedExplicitVRLittleEndian)


def test_image_that_does_not_fit_the_codec_is_refused_early(tmp_path: Path) -> None:
    path, _, _ = stored(tmp_path, ExplicitVRLittleEndian, rows=8, columns=8)
    with pytest.raises(NotAcceptable, match="JPEG 2000"):
        transcode_instance(path, JPEG2000Lossless)  # too small for the encoder's levels


def test_supported_targets() -> None:
    native = supported_targets(ExplicitVRLittleEndian)
    assert {
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        RLELossless,
        JPEG2000Lossless,
        JPEG2000,
    } <= native
    assert JPEGBaseline8Bit not in native
    assert ExplicitVRLittleEndian in supported_targets(JPEGBaseline8Bit)
    assert supported_targets(DeflatedExplicitVRLittleEndian) == {DeflatedExplicitVRLittleEndian}
    assert supported_targets("1.2.3.4") == {"1.2.3.4"}
    assert JPEGLSNearLossless in supported_targets(RLELossless)


# ------------------------------------------------------------------------ frames


@pytest.mark.parametrize("source", COMPRESSED, ids=lambda s: s.name)
def test_frame_to_native_is_the_raw_little_endian_frame(source: str) -> None:
    ds, arr = make_image(frames=2, bits_stored=12)
    frames = encode_frames(ds, arr, source)
    for index in range(2):
        got = transcode_frame(ds, frames[index], source, ExplicitVRLittleEndian)
        assert got == native_frame(arr[index])


@pytest.mark.parametrize("target", COMPRESSED + [JPEG2000], ids=lambda s: s.name)
def test_native_frame_to_compressed_round_trips(target: str) -> None:
    ds, arr = make_image(bits_stored=14, signed=True)
    codestream = transcode_frame(ds, native_frame(arr[0]), ExplicitVRLittleEndian, target)
    np.testing.assert_array_equal(decode_frame(ds, codestream, target), arr[0])


def test_frame_between_native_syntaxes_and_identity() -> None:
    ds, arr = make_image()
    raw = native_frame(arr[0])
    assert transcode_frame(ds, raw, ImplicitVRLittleEndian, ExplicitVRLittleEndian) == raw
    assert transcode_frame(ds, raw, ExplicitVRLittleEndian, ExplicitVRLittleEndian) == raw
    big = native_frame(arr[0], big_endian=True)
    assert transcode_frame(ds, big, ExplicitVRBigEndian, ExplicitVRLittleEndian) == raw


def test_frame_to_an_unsupported_syntax_is_not_acceptable() -> None:
    ds, arr = make_image()
    with pytest.raises(NotAcceptable):
        transcode_frame(ds, native_frame(arr[0]), ExplicitVRLittleEndian, JPEGBaseline8Bit)


def test_conforming_codestreams_are_relabelled_not_recoded(tmp_path: Path) -> None:
    path, arr, _ = stored(tmp_path, JPEG2000Lossless, bits_stored=12)
    out = run(path, JPEG2000)
    assert out.file_meta.TransferSyntaxUID == JPEG2000
    source = pydicom.dcmread(path)
    assert out.PixelData == source.PixelData  # same fragments, new syntax UID
    np.testing.assert_array_equal(out.pixel_array, arr)


def test_selection_value_1_frames_are_process_14_frames(tmp_path: Path) -> None:
    ds, _ = make_image(rows=32, columns=40, bits_stored=12)
    ramp = (np.add.outer(np.arange(32), np.arange(40)) * 50).astype(np.uint16)[None]
    source = native_file(ds, ramp, ExplicitVRLittleEndian, tmp_path / "in.dcm")
    syntax, frames = dcmtk_compress(source, tmp_path / "sv1.dcm", "+e1")
    assert syntax == JPEGLosslessSV1
    assert JPEGLossless in supported_targets(JPEGLosslessSV1)
    relabelled = transcode_frame(ds, frames[0], JPEGLosslessSV1, JPEGLossless)
    assert relabelled == frames[0]
    np.testing.assert_array_equal(decode_frame(ds, relabelled, JPEGLossless), ramp[0])
