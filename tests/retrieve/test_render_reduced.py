"""Frames decoded at a lower resolution for a smaller picture render as a full decode does.

A viewport or a thumbnail needs fewer pixels than the frame has; JPEG 2000 and baseline
JPEG frames are then decoded at 1/2, 1/4, ... of their resolution. The pictures must be
those of a full decode scaled down: compared here pixel by pixel, within the difference
that averaging before or inside the codec makes.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import FileDataset
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
)

from omipacs.dicom.pixels import decode_frame
from omipacs.dicom.reduced import decode_frame_reduced
from omipacs.errors import NotAcceptable
from omipacs.retrieve.render import Viewport, Window, render_frame, render_stored_frame
from tests.retrieve.builders import encode_frames, make_image, native_frame


def mammogram(rows: int, columns: int, bits: int) -> tuple[FileDataset, np.ndarray]:
    """A smooth breast-like frame (a bright disc on dark background, some texture)."""
    ds, _ = make_image(
        rows=rows, columns=columns, bits_allocated=16 if bits > 8 else 8, bits_stored=bits
    )
    yy, xx = np.mgrid[0:rows, 0:columns]
    top = (1 << bits) - 1
    disc = np.clip(1.2 - np.hypot((yy - rows / 2) / rows, xx / columns) * 1.6, 0, 1)
    texture = 0.08 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    arr = np.clip((disc + texture) * top * 0.8, 0, top).astype(ds.pixel_array.dtype)
    return ds, arr


def jpeg_baseline(arr: np.ndarray) -> bytes:
    """A baseline (8-bit, lossy) JPEG stream of a grey frame, as a modality would send."""
    out = io.BytesIO()
    Image.fromarray(arr).save(out, format="JPEG", quality=95)
    return out.getvalue()


def pixels_of(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data))).astype(np.int16)


def assert_close(reduced: bytes, full: bytes, *, mean: float, worst: int) -> None:
    a, b = pixels_of(reduced), pixels_of(full)
    assert a.shape == b.shape
    diff = np.abs(a - b)
    assert diff.mean() <= mean and diff.max() <= worst, (diff.mean(), diff.max())


CASES = [
    pytest.param(JPEG2000Lossless, 12, id="j2k-lossless-12bit"),
    pytest.param(JPEG2000, 16, id="j2k-lossy-16bit"),
    pytest.param(JPEGBaseline8Bit, 8, id="jpeg-baseline-8bit"),
]


def stored(
    syntax: str, bits: int, rows: int = 1024, columns: int = 832
) -> tuple[FileDataset, bytes]:
    ds, arr = mammogram(rows, columns, bits)
    if syntax == JPEGBaseline8Bit:
        return ds, jpeg_baseline(arr)
    return ds, encode_frames(ds, arr[None], syntax)[0]


@pytest.mark.parametrize(("syntax", "bits"), CASES)
@pytest.mark.parametrize("most", [2, 4, 8])
def test_reduced_decode_is_the_full_decode_scaled_down(syntax: str, bits: int, most: int) -> None:
    ds, frame = stored(syntax, bits)
    full = decode_frame(ds, frame, syntax)
    reduced, scale = decode_frame_reduced(ds, frame, syntax, most)
    assert scale == most
    assert reduced.dtype == full.dtype
    assert reduced.shape == (-(-ds.Rows // scale), -(-ds.Columns // scale))
    # The codec's low-pass image against a box average of the full decode.
    h, w = ds.Rows // scale, ds.Columns // scale
    boxed = full[: h * scale, : w * scale].reshape(h, scale, w, scale).mean(axis=(1, 3))
    top = (1 << bits) - 1
    error = np.abs(reduced[:h, :w].astype(np.float64) - boxed) / top
    assert error.mean() < 0.02 and error.max() < 0.1


@pytest.mark.parametrize(("syntax", "bits"), CASES)
@pytest.mark.parametrize(
    "request_args",
    [
        {"thumbnail": True},
        {"viewport": Viewport(300, 300)},
        {"viewport": Viewport(200, None, 100.0, 250.0, 600.0, -500.0)},  # region, flipped
        {"viewport": Viewport(256, 256), "window": (0.4, 0.5)},
    ],
    ids=["thumbnail", "viewport", "region-flipped", "windowed"],
)
def test_reduced_render_matches_full_render(
    syntax: str, bits: int, request_args: dict[str, Any]
) -> None:
    ds, frame = stored(syntax, bits)
    if "window" in request_args:  # centre and width as fractions of the stored range
        center, width = request_args["window"]
        top = (1 << bits) - 1
        request_args = {**request_args, "window": Window(center * top, width * top)}
    full = render_frame(ds, decode_frame(ds, frame, syntax), media_type="image/png", **request_args)
    reduced = render_stored_frame(ds, frame, syntax, media_type="image/png", **request_args)
    assert_close(reduced, full, mean=1.5, worst=48)


def test_full_size_render_is_not_reduced() -> None:
    ds, frame = stored(JPEG2000Lossless, 12, rows=96, columns=80)
    full = render_frame(ds, decode_frame(ds, frame, JPEG2000Lossless), media_type="image/png")
    assert render_stored_frame(ds, frame, JPEG2000Lossless, media_type="image/png") == full


def test_codecs_without_reduction_decode_in_full() -> None:
    ds, arr = mammogram(256, 208, 12)
    for syntax, frame in [
        (JPEGLSLossless, encode_frames(ds, arr[None], JPEGLSLossless)[0]),
        (ExplicitVRLittleEndian, native_frame(arr)),
    ]:
        pixels, scale = decode_frame_reduced(ds, frame, syntax, 8)
        assert scale == 1
        np.testing.assert_array_equal(pixels, arr)


def test_more_reduction_than_the_codestream_has_levels_stops_at_its_levels() -> None:
    ds, frame = stored(JPEG2000Lossless, 12, rows=2048, columns=1664)
    levels = frame[frame.find(b"\xff\x52") + 9]
    pixels, scale = decode_frame_reduced(ds, frame, JPEG2000Lossless, 1 << (levels + 2))
    assert scale == 1 << levels
    assert pixels.shape == (-(-2048 // scale), -(-1664 // scale))


def test_a_stream_that_contradicts_the_header_is_decoded_in_full_and_refused() -> None:
    ds, frame = stored(JPEG2000Lossless, 12)
    ds.Rows = ds.Rows * 2  # the stream is half as tall as the header says
    with pytest.raises(NotAcceptable):
        decode_frame_reduced(ds, frame, JPEG2000Lossless, 4)
    with pytest.raises(NotAcceptable):
        decode_frame_reduced(ds, b"\xff\x4f\xff\x51" + b"\x00" * 64, JPEG2000Lossless, 4)
