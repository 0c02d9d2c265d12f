"""Rendering frames to JPEG/PNG: VOI math, inversion, geometry and parameter parsing."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from omipacs.errors import BadRequest, NotAcceptable
from omipacs.retrieve.render import (
    Viewport,
    Window,
    apply_window,
    parse_quality_param,
    parse_viewport_param,
    parse_window_param,
    render_frame,
)
from tests.retrieve.builders import make_image


def header(**attrs: Any) -> Dataset:
    """A grayscale 16-bit header; keyword overrides go on top."""
    ds = Dataset()
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.PixelRepresentation = 0
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def png_pixels(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return np.asarray(image)


def render_png(ds: Dataset, pixels: np.ndarray, **kwargs: Any) -> np.ndarray:
    return png_pixels(render_frame(ds, pixels, media_type="image/png", **kwargs))


# ------------------------------------------------------------------ VOI functions


@pytest.mark.parametrize(
    ("function", "center", "width", "x", "expected"),
    [
        # LINEAR, PS3.3 C.11.2.1.2.1: c=100, w=21 -> edges at 89.5 and 109.5
        ("LINEAR", 100, 21, 89, 0.0),
        ("LINEAR", 100, 21, 89.5, 0.0),
        ("LINEAR", 100, 21, 90, ((90 - 99.5) / 20 + 0.5) * 255),  # 6.375
        ("LINEAR", 100, 21, 100, ((100 - 99.5) / 20 + 0.5) * 255),  # 133.875
        ("LINEAR", 100, 21, 109, ((109 - 99.5) / 20 + 0.5) * 255),  # 248.625
        ("LINEAR", 100, 21, 109.5, 255.0),
        ("LINEAR", 100, 21, 110, 255.0),
        ("LINEAR", 2048, 4096, 0, 0.0),
        ("LINEAR", 2048, 4096, 4095, 255.0),
        ("LINEAR", 100, 1, 99, 0.0),  # width 1: a hard threshold at c - 0.5
        ("LINEAR", 100, 1, 100, 255.0),
        # LINEAR_EXACT, PS3.3 C.11.2.1.3.2: edges at 90 and 110
        ("LINEAR_EXACT", 100, 20, 90, 0.0),
        ("LINEAR_EXACT", 100, 20, 95, 63.75),
        ("LINEAR_EXACT", 100, 20, 100, 127.5),
        ("LINEAR_EXACT", 100, 20, 110, 255.0),
        ("LINEAR_EXACT", 100, 20, 111, 255.0),
        # SIGMOID, PS3.3 C.11.2.1.3.1: 255 / (1 + exp(-4 (x - c) / w))
        ("SIGMOID", 100, 20, 100, 127.5),
        ("SIGMOID", 100, 20, 110, 255 / (1 + np.exp(-2.0))),  # 224.60
        ("SIGMOID", 100, 20, 90, 255 / (1 + np.exp(2.0))),  # 30.40
        ("sigmoid", 100, 20, -1e6, 0.0),
    ],
)
def test_window_functions_follow_ps3_3(
    function: str, center: float, width: float, x: float, expected: float
) -> None:
    got = apply_window(np.array([x]), center, width, function)[0]
    assert got == pytest.approx(expected, abs=1e-9)


def test_rendered_pixels_apply_rescale_then_window() -> None:
    # stored v -> 2v - 100 (Modality LUT), then LINEAR c=1000 w=1001 -> edges 499.5/1499.5
    ds = header(RescaleSlope=2, RescaleIntercept=-100, WindowCenter=1000, WindowWidth=1001)
    stored = np.array([[299, 300, 550, 800, 801]], dtype=np.uint16)
    expected = [0, round(((500 - 999.5) / 1000 + 0.5) * 255), 127, 255, 255]
    # 550 -> 1000 -> ((0.5)/1000 + 0.5) * 255 = 127.6 -> 128
    expected[2] = round(((1000 - 999.5) / 1000 + 0.5) * 255)
    assert render_png(ds, stored).tolist() == [expected]


def test_file_sigmoid_window_and_explicit_window_override() -> None:
    ds = header(BitsStored=14, WindowCenter=[8000, 3000], WindowWidth=[2000, 500])
    ds.VOILUTFunction = "SIGMOID"
    stored = np.array([[7000, 8000, 9000]], dtype=np.uint16)
    sigmoid = [round(255 / (1 + np.exp(-4 * (x - 8000) / 2000))) for x in (7000, 8000, 9000)]
    assert render_png(ds, stored).tolist() == [sigmoid]  # first of the multi-valued window
    linear = render_png(ds, stored, window=(8000, 2001, "linear"))
    assert linear.tolist() == [
        [round(((x - 7999.5) / 2000 + 0.5) * 255) for x in (7000, 8000, 9000)]
    ]


def test_monochrome1_is_inverted_after_windowing() -> None:
    stored = np.array([[0, 2048, 4095]], dtype=np.uint16)
    window = {"WindowCenter": 2048, "WindowWidth": 4096}
    mono2 = render_png(header(**window), stored)[0]
    mono1 = render_png(header(PhotometricInterpretation="MONOCHROME1", **window), stored)[0]
    assert mono1[0] == 255 and mono1[2] == 0  # a low stored value shows bright
    assert (mono1.astype(int) + mono2.astype(int) == 255).all()


def test_without_window_the_frame_range_is_stretched() -> None:
    stored = np.array([[1000, 1500, 2000], [1250, 1750, 1000]], dtype=np.uint16)
    out = render_png(header(), stored)
    assert out.min() == 0 and out.max() == 255
    assert out[0, 1] == round(500 / 1000 * 255)


def test_voi_lut_sequence_is_used_when_there_is_no_window() -> None:
    item = Dataset()
    item.LUTDescriptor = [4, 100, 12]  # 4 entries, first mapped value 100, 12-bit output
    item.LUTData = [0, 1000, 3000, 4095]
    ds = header(VOILUTSequence=Sequence([item]))
    stored = np.array([[50, 100, 101, 102, 103, 500]], dtype=np.uint16)
    expected = [0, 0, round(1000 * 255 / 4095), round(3000 * 255 / 4095), 255, 255]
    assert render_png(ds, stored).tolist() == [expected]


def test_signed_pixels_with_intercept_render() -> None:
    ds = header(BitsStored=16, PixelRepresentation=1, RescaleIntercept=-1024, RescaleSlope=1)
    ds.WindowCenter, ds.WindowWidth = -1024, 2
    ds.VOILUTFunction = "LINEAR_EXACT"
    stored = np.array([[-32768, -1, 0, 1, 32767]], dtype=np.int16)
    # modality: v - 1024; LINEAR_EXACT c=-1024 w=2 -> edges -1025/-1023
    assert render_png(ds, stored).tolist() == [[0, 0, 128, 255, 255]]


def test_enhanced_functional_groups_drive_per_frame_windows() -> None:
    shared_voi = Dataset()
    shared_voi.WindowCenter, shared_voi.WindowWidth = 100, 20
    shared_voi.VOILUTFunction = "LINEAR_EXACT"
    shared = Dataset()
    shared.FrameVOILUTSequence = Sequence([shared_voi])
    second_voi = Dataset()
    second_voi.WindowCenter, second_voi.WindowWidth = 200, 20
    second_voi.VOILUTFunction = "LINEAR_EXACT"
    per_frame = [Dataset(), Dataset()]
    per_frame[1].FrameVOILUTSequence = Sequence([second_voi])
    ds = header(
        SharedFunctionalGroupsSequence=Sequence([shared]),
        PerFrameFunctionalGroupsSequence=Sequence(per_frame),
    )
    stored = np.array([[100, 200]], dtype=np.uint16)
    assert render_png(ds, stored, frame_index=0).tolist() == [[128, 255]]
    assert render_png(ds, stored, frame_index=1).tolist() == [[0, 128]]


@pytest.mark.parametrize("media_type", ["image/png", "image/jpeg"])
def test_rgb_frames_render_in_colour(media_type: str) -> None:
    ds, arr = make_image(bits_allocated=8, bits_stored=8, samples=3, photometric="RGB")
    data = render_frame(ds, arr[0], media_type=media_type, window=(0, 10, "linear"))
    image = Image.open(io.BytesIO(data))
    assert image.mode == "RGB" and image.size == (36, 40)
    if media_type == "image/png":
        np.testing.assert_array_equal(np.asarray(image), arr[0])  # no windowing on colour


def test_palette_colour_frames_are_looked_up() -> None:
    ds = header(PhotometricInterpretation="PALETTE COLOR", BitsAllocated=8, BitsStored=8)
    ramp = np.arange(256, dtype=np.uint16) * 257
    for colour, lut in (("Red", ramp), ("Green", ramp[::-1].copy()), ("Blue", ramp * 0)):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", lut.astype("<u2").tobytes())
    out = render_png(ds, np.array([[0, 255]], dtype=np.uint8))
    assert out.tolist() == [[[0, 255, 0], [255, 0, 0]]]


# ------------------------------------------------------------------------ geometry


@pytest.mark.parametrize(
    ("rows", "columns", "viewport", "expected"),
    [
        (4096, 3328, (512, 512), (416, 512)),
        (4096, 3328, (1024, 256), (208, 256)),
        (4096, 3328, (100, None), (100, 123)),
        (300, 400, (200, 200), (200, 150)),
        (300, 400, (None, 600), (800, 600)),  # the region is fitted to the viewport
        (60, 40, (60, 60), (40, 60)),
    ],
)
def test_viewport_fits_keep_the_aspect_ratio(
    rows: int, columns: int, viewport: tuple[int | None, int | None], expected: tuple[int, int]
) -> None:
    pixels = np.zeros((rows, columns), dtype=np.uint16)
    pixels[0, 0] = 1
    data = render_frame(header(), pixels, media_type="image/png", viewport=viewport)
    assert Image.open(io.BytesIO(data)).size == expected


def test_source_region_is_cropped_and_negative_width_flips() -> None:
    stored = np.arange(16, dtype=np.uint16).reshape(4, 4) * 10
    ds = header(WindowCenter=75, WindowWidth=150)
    ds.VOILUTFunction = "LINEAR_EXACT"
    whole = render_png(ds, stored)
    region = render_png(ds, stored, viewport=Viewport(2, 2, 1, 1, 2, 2))
    np.testing.assert_array_equal(region, whole[1:3, 1:3])
    flipped = render_png(ds, stored, viewport=Viewport(2, 2, 1, 1, -2, 2))
    np.testing.assert_array_equal(flipped, whole[1:3, 1:3][:, ::-1])


def test_no_flip_or_rotation_without_a_request() -> None:
    stored = np.zeros((6, 4), dtype=np.uint16)
    stored[0, 0] = 4095  # bright top-left marker, as on a right breast image
    out = render_png(header(WindowCenter=2048, WindowWidth=4096), stored)
    assert out.shape == (6, 4) and out[0, 0] == 255 and out[5, 3] == 0


def test_thumbnail_of_a_full_mammogram_is_small_and_quick() -> None:
    ds = header(BitsStored=14, WindowCenter=8192, WindowWidth=16384)
    pixels = np.random.default_rng(1).integers(0, 1 << 14, (4096, 3328), dtype=np.uint16)
    started = time.perf_counter()
    data = render_frame(ds, pixels, media_type="image/jpeg", thumbnail=True)
    elapsed = time.perf_counter() - started
    assert Image.open(io.BytesIO(data)).size == (208, 256)
    assert elapsed < 1.0


def test_thumbnail_never_enlarges_a_small_image() -> None:
    data = render_frame(
        header(), np.ones((20, 10), np.uint16), media_type="image/png", thumbnail=True
    )
    assert Image.open(io.BytesIO(data)).size == (10, 20)


def test_large_reduction_averages_before_windowing() -> None:
    stripes = np.tile(np.array([0, 4000], dtype=np.uint16), (64, 32))  # 64 x 64 alternating
    out = render_png(header(WindowCenter=2000, WindowWidth=4000), stripes, viewport=(8, 8))
    assert out.shape == (8, 8)
    assert np.abs(out.astype(int) - 128).max() <= 2  # stripes averaged to mid grey


# ------------------------------------------------------------------------ output


def test_png_output_is_8_bit_grayscale_of_the_frame_size() -> None:
    data = render_frame(
        header(), np.arange(12, dtype=np.uint16).reshape(3, 4), media_type="image/png"
    )
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.mode, image.size) == ("PNG", "L", (4, 3))


def test_jpeg_quality_changes_the_output_size() -> None:
    pixels = np.random.default_rng(2).integers(0, 4096, (128, 128), dtype=np.uint16)
    low = render_frame(header(), pixels, media_type="image/jpeg", quality=10)
    high = render_frame(header(), pixels, media_type="image/jpeg", quality=95)
    assert Image.open(io.BytesIO(low)).format == "JPEG"
    assert len(low) < len(high)
    default = render_frame(header(), pixels, media_type="image/jpeg")
    assert len(low) < len(default) < len(high)


def test_unknown_media_type_is_not_acceptable() -> None:
    with pytest.raises(NotAcceptable, match="image/webp"):
        render_frame(header(), np.zeros((2, 2), np.uint16), media_type="image/webp")


def test_gif_is_the_8_bit_grey_rendering() -> None:
    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8) * 64
    gif = Image.open(io.BytesIO(render_frame(header(), pixels, media_type="image/gif")))
    png = Image.open(io.BytesIO(render_frame(header(), pixels, media_type="image/png")))
    assert gif.format == "GIF"
    assert np.array_equal(np.asarray(gif.convert("L")), np.asarray(png.convert("L")))


def test_region_outside_the_image_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="outside"):
        render_frame(
            header(),
            np.zeros((4, 4), np.uint16),
            media_type="image/png",
            viewport=Viewport(2, 2, 10, 0, None, None),
        )


def test_invalid_window_tuple_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="width"):
        render_frame(
            header(),
            np.zeros((2, 2), np.uint16),
            media_type="image/png",
            window=(10, 0.5, "LINEAR"),
        )


# ------------------------------------------------------------------- parameter parsing


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2048,4096,linear", Window(2048, 4096, "LINEAR")),
        ("-600.5, 1500, LINEAR-EXACT", Window(-600.5, 1500, "LINEAR_EXACT")),
        ("40,400,sigmoid", Window(40, 400, "SIGMOID")),
        ("40,400,linear_exact", Window(40, 400, "LINEAR_EXACT")),
        ("40,400", Window(40, 400, "LINEAR")),
        ("1e3,2e3,linear", Window(1000, 2000, "LINEAR")),
    ],
)
def test_parse_window_param(value: str, expected: Window) -> None:
    assert parse_window_param(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "center,width"),
        ("40", "center,width"),
        ("40,400,linear,4", "center,width"),
        ("abc,400,linear", "center must be a number"),
        ("40,,linear", "width must be a number"),
        ("nan,400,linear", "finite"),
        ("40,inf,linear", "finite"),
        ("40,400,gamma", "function"),
        ("40,0.5,linear", "at least 1"),
        ("40,0,sigmoid", "greater than 0"),
        ("40,-3,linear-exact", "greater than 0"),
    ],
)
def test_bad_window_param_is_a_bad_request(value: str, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        parse_window_param(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("512,512", Viewport(512, 512)),
        ("256,", Viewport(256, None)),
        (",300", Viewport(None, 300)),
        ("512,512,10,20,100.5,200", Viewport(512, 512, 10, 20, 100.5, 200)),
        ("512,512,,,-100,", Viewport(512, 512, 0, 0, -100, None)),
    ],
)
def test_parse_viewport_param(value: str, expected: Viewport) -> None:
    assert parse_viewport_param(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("512", "vw,vh"),
        ("512,512,0", "vw,vh"),
        (",", "width or a height"),
        ("0,512", "between 1 and"),
        ("-5,512", "between 1 and"),
        ("100000,512", "between 1 and"),
        ("12.5,512", "positive integer"),
        ("a,b", "positive integer"),
        ("512,512,-1,0,10,10", "not be negative"),
        ("512,512,0,0,0,10", "not be zero"),
        ("512,512,x,0,10,10", "sx must be a number"),
    ],
)
def test_bad_viewport_param_is_a_bad_request(value: str, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        parse_viewport_param(value)


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("75", 75), (" 100 ", 100)])
def test_parse_quality_param(value: str, expected: int) -> None:
    assert parse_quality_param(value) == expected


@pytest.mark.parametrize("value", ["0", "101", "high", "7.5", ""])
def test_bad_quality_param_is_a_bad_request(value: str) -> None:
    with pytest.raises(BadRequest, match="quality"):
        parse_quality_param(value)
