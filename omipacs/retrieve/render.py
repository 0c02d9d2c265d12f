"""Render one decoded frame to JPEG or PNG for WADO-RS ``/rendered`` and ``/thumbnail``.

The grayscale pipeline is the one of PS3.4 N.2 (Pixel Transformation Sequence), which
PS3.18 8.3.5.1 requires the rendering parameters to follow "as if the parameters were a
Presentation State":

1. Modality LUT: Rescale Slope/Intercept or a Modality LUT Sequence (PS3.3 C.11.1).
2. VOI LUT: the request's ``window`` first, else the instance's first Window Center/Width
   with its VOI LUT Function (LINEAR, LINEAR_EXACT, SIGMOID; PS3.3 C.11.2.1.2 and
   C.11.2.1.3), else its VOI LUT Sequence, else the frame's own minimum and maximum.
3. Presentation: MONOCHROME1 is inverted after the VOI stage (PS3.3 C.7.6.3.1.2), so a low
   stored value shows bright. Output is 8 bits per channel (PS3.18 8.7.4).
4. Source region, then viewport scaling (PS3.18 8.3.5.1.3).

Nothing is flipped or rotated to suit a hanging protocol: a right MLO stays as acquired,
because readers and annotation coordinates depend on the stored orientation. The only
flips are those a client asks for with a negative source width or height.

For integer pixels the stages above are evaluated once per possible stored value, into a
lookup table indexed by the pixel values (as display software does), so a 16-bit
mammogram costs one table lookup per pixel. Large frames are reduced by an integer factor
before the table is applied, which is what keeps a 3328x4096 thumbnail fast.

Colour frames (RGB after decoding, or PALETTE COLOR) get no windowing: PS3.3 C.11.2 VOI
applies to grayscale only.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi

from omipacs.dicom.pixels import decode_cost, decode_slot
from omipacs.dicom.reduced import decode_frame_reduced, reduction
from omipacs.errors import BadRequest, NotAcceptable

MEDIA_TYPES: Final[frozenset[str]] = frozenset({"image/jpeg", "image/png", "image/gif"})
"""Rendered media types produced here (PS3.18 Table 8.7.4-1: JPEG default; PNG and GIF,
single-frame, as well). A GIF of a grey-scale frame is its 8-bit rendering in a grey
palette, so nothing is lost against PNG at 8 bits; colour frames are quantised."""

DEFAULT_QUALITY: Final = 90
"""JPEG quality when the request has no ``quality`` parameter."""

THUMBNAIL_SIZE: Final = 256
"""A thumbnail fits in this many pixels on each side unless a viewport says otherwise."""

MAX_VIEWPORT_SIDE: Final = 8192
"""Largest viewport side accepted, so one request cannot ask for a huge allocation."""

WINDOW_FUNCTIONS: Final[frozenset[str]] = frozenset({"LINEAR", "LINEAR_EXACT", "SIGMOID"})
"""VOI LUT Function defined terms (PS3.3 C.11.2.1.3)."""

_LUT_MAX_ENTRIES: Final = 1 << 20
"""Above this range of stored values the transform is applied per pixel instead."""


class Window(NamedTuple):
    """A VOI window: centre, width and VOI LUT Function (PS3.3 C.11.2.1.2)."""

    center: float
    """Window Center, in Modality LUT output units."""
    width: float
    """Window Width, in the same units."""
    function: str = "LINEAR"
    """One of LINEAR, LINEAR_EXACT, SIGMOID."""


class Viewport(NamedTuple):
    """The ``viewport`` parameter: vw, vh and an optional source region (PS3.18 8.3.5.1.3).

    A plain ``(vw, vh)`` tuple converts with ``Viewport(*t)``. A negative ``sw`` or ``sh``
    asks for a horizontal or vertical flip of the region.
    """

    width: int | None
    """vw: the viewport width in pixels, or None to fit by height alone."""
    height: int | None
    """vh: the viewport height in pixels, or None to fit by width alone."""
    sx: float = 0.0
    """Left edge of the source region, in image pixels."""
    sy: float = 0.0
    """Top edge of the source region, in image pixels."""
    sw: float | None = None
    """Width of the source region; None means to the right edge; negative flips."""
    sh: float | None = None
    """Height of the source region; None means to the bottom edge; negative flips."""


# --------------------------------------------------------------------------- parameters


def _parse_float(token: str, what: str) -> float:
    """Parse a finite decimal or raise BadRequest naming the parameter."""
    try:
        value = float(token)
    except ValueError:
        raise BadRequest(f"{what} must be a number, got {token!r}") from None
    if not math.isfinite(value):
        raise BadRequest(f"{what} must be a finite number, got {token!r}")
    return value


def normalize_window_function(name: str) -> str:
    """Return the DICOM defined term for a ``window`` function name.

    PS3.18 spells the functions ``linear``, ``linear-exact`` and ``sigmoid``; the VOI LUT
    Function attribute spells them LINEAR, LINEAR_EXACT and SIGMOID. Both are accepted.

    Raises
    ------
    BadRequest
        If the name is none of these.
    """
    term = name.strip().upper().replace("-", "_")
    if term not in WINDOW_FUNCTIONS:
        raise BadRequest(
            f"window function must be linear, linear-exact or sigmoid, got {name.strip()!r}"
        )
    return term


def _check_window(window: Window) -> Window:
    """Validate a window's width for its function (PS3.3 C.11.2.1.2, C.11.2.1.3)."""
    function = normalize_window_function(window.function)
    center, width = float(window.center), float(window.width)
    if not (math.isfinite(center) and math.isfinite(width)):
        raise BadRequest("window center and width must be finite numbers")
    if function == "LINEAR" and width < 1:
        raise BadRequest("window width must be at least 1 for the linear function")
    if width <= 0:
        raise BadRequest("window width must be greater than 0")
    return Window(center, width, function)


def parse_window_param(value: str) -> Window:
    """Parse the ``window`` query parameter: ``center,width[,function]`` (PS3.18 8.3.5.1.4).

    The function defaults to linear when omitted.

    Raises
    ------
    BadRequest
        On a wrong number of values, non-numeric or non-finite numbers, an unknown function,
        or a width the function does not allow.
    """
    tokens = [t.strip() for t in value.split(",")]
    if len(tokens) not in (2, 3):
        raise BadRequest("window must be center,width,function")
    center = _parse_float(tokens[0], "window center")
    width = _parse_float(tokens[1], "window width")
    function = tokens[2] if len(tokens) == 3 else "LINEAR"
    return _check_window(Window(center, width, function))


def _parse_side(token: str, what: str) -> int | None:
    """Parse vw or vh: empty, or a positive integer no larger than MAX_VIEWPORT_SIDE."""
    if token == "":
        return None
    try:
        side = int(token)
    except ValueError:
        raise BadRequest(f"viewport {what} must be a positive integer, got {token!r}") from None
    if side < 1 or side > MAX_VIEWPORT_SIDE:
        raise BadRequest(f"viewport {what} must be between 1 and {MAX_VIEWPORT_SIDE}")
    return side


def parse_viewport_param(value: str) -> Viewport:
    """Parse the ``viewport`` query parameter: ``vw,vh[,sx,sy,sw,sh]`` (PS3.18 8.3.5.1.3).

    vw and vh are integers; one of them may be empty to fit by the other. The source
    region values are decimals and each may be empty (sx, sy default to 0; sw, sh to the
    image edge); a negative sw or sh flips the region.

    Raises
    ------
    BadRequest
        On a wrong number of values, both sides empty, a side outside
        1..MAX_VIEWPORT_SIDE, a negative sx or sy, or a zero sw or sh.
    """
    tokens = [t.strip() for t in value.split(",")]
    if len(tokens) not in (2, 6):
        raise BadRequest("viewport must be vw,vh or vw,vh,sx,sy,sw,sh")
    width = _parse_side(tokens[0], "width")
    height = _parse_side(tokens[1], "height")
    if width is None and height is None:
        raise BadRequest("viewport needs a width or a height")
    if len(tokens) == 2:
        return Viewport(width, height)
    sx = _parse_float(tokens[2], "viewport sx") if tokens[2] else 0.0
    sy = _parse_float(tokens[3], "viewport sy") if tokens[3] else 0.0
    if sx < 0 or sy < 0:
        raise BadRequest("viewport sx and sy must not be negative")
    sw = _parse_float(tokens[4], "viewport sw") if tokens[4] else None
    sh = _parse_float(tokens[5], "viewport sh") if tokens[5] else None
    if sw == 0 or sh == 0:
        raise BadRequest("viewport sw and sh must not be zero")
    return Viewport(width, height, sx, sy, sw, sh)


def parse_quality_param(value: str) -> int:
    """Parse the ``quality`` query parameter: an integer 1..100 (PS3.18 8.3.5.1.2).

    Raises
    ------
    BadRequest
        If the value is not an integer in 1..100.
    """
    try:
        quality = int(value.strip())
    except ValueError:
        raise BadRequest(f"quality must be an integer from 1 to 100, got {value!r}") from None
    if not 1 <= quality <= 100:
        raise BadRequest("quality must be an integer from 1 to 100")
    return quality


# ------------------------------------------------------------------------ VOI functions


def apply_window(
    values: np.ndarray,
    center: float,
    width: float,
    function: str = "LINEAR",
    *,
    y_min: float = 0.0,
    y_max: float = 255.0,
) -> np.ndarray:
    """Map Modality LUT output values through a VOI window (PS3.3 C.11.2.1.2, C.11.2.1.3).

    LINEAR::

        x <= c - 0.5 - (w-1)/2  ->  y_min
        x >  c - 0.5 + (w-1)/2  ->  y_max
        otherwise               ->  ((x - (c - 0.5)) / (w-1) + 0.5) * (y_max - y_min) + y_min

    LINEAR_EXACT::

        x <= c - w/2  ->  y_min
        x >  c + w/2  ->  y_max
        otherwise     ->  ((x - c) / w + 0.5) * (y_max - y_min) + y_min

    SIGMOID::

        y = (y_max - y_min) / (1 + exp(-4 (x - c) / w)) + y_min

    Parameters
    ----------
    values : numpy.ndarray
        Modality LUT output values.
    center, width : float
        Window Center and Window Width.
    function : str
        LINEAR, LINEAR_EXACT or SIGMOID (PS3.18 spellings are accepted too).
    y_min, y_max : float
        The output range; 0..255 for 8-bit rendering.

    Returns
    -------
    numpy.ndarray
        float64 values in ``[y_min, y_max]``, not rounded.
    """
    c, w, fn = _check_window(Window(center, width, function))
    x = np.asarray(values, dtype=np.float64)
    span = y_max - y_min
    if fn == "SIGMOID":
        with np.errstate(over="ignore"):
            return span / (1.0 + np.exp(-4.0 * (x - c) / w)) + y_min
    if fn == "LINEAR":
        low, high = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    else:
        low, high = c - w / 2, c + w / 2
    out = np.full(x.shape, y_min, dtype=np.float64)
    out[x > high] = y_max
    inside = (x > low) & (x <= high)
    if inside.any():
        xi = x[inside]
        if fn == "LINEAR":
            out[inside] = ((xi - (c - 0.5)) / (w - 1) + 0.5) * span + y_min
        else:
            out[inside] = ((xi - c) / w + 0.5) * span + y_min
    return out


# ------------------------------------------------------------------ presentation values


def _group_item(header: Dataset, frame_index: int, keyword: str) -> Dataset | None:
    """Return a functional group macro item for a frame (PS3.3 C.7.6.16).

    Enhanced objects (Breast Tomosynthesis, Breast Projection X-Ray) keep rescale and
    window values in functional groups rather than at the top level: the per-frame item
    wins, then the shared one.
    """
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    if per_frame and 0 <= frame_index < len(per_frame):
        seq = per_frame[frame_index].get(keyword)
        if seq:
            return seq[0]  # type: ignore[no-any-return]
    shared = header.get("SharedFunctionalGroupsSequence")
    if shared:
        seq = shared[0].get(keyword)
        if seq:
            return seq[0]  # type: ignore[no-any-return]
    return None


def _first(value: Any) -> float | None:
    """Return the first value of a possibly multi-valued DS element as float."""
    if value is None or value == "":
        return None
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


class _Presentation(NamedTuple):
    """The Modality and VOI LUT values that apply to one frame."""

    slope: float
    intercept: float
    modality_lut: Dataset | None
    window: Window | None
    voi_lut: Dataset | None
    inverted: bool


def _lut_dataset(header: Dataset, keyword: str, sequence: Any) -> Dataset:
    """Wrap a LUT sequence in a small dataset that pydicom's LUT functions accept.

    pydicom needs the original byte order to read OW LUT Data, so it is carried over.
    """
    ds = Dataset()
    setattr(ds, keyword, sequence)
    if hasattr(header, "file_meta"):
        ds.file_meta = header.file_meta
    implicit, little = header.original_encoding
    if little is not None:
        ds.set_original_encoding(bool(implicit), little, header.original_character_set)
    return ds


def _presentation(header: Dataset, frame_index: int) -> _Presentation:
    """Collect the values of PS3.4 N.2 stages 1-3 for one frame of `header`."""
    rescale_src = _group_item(header, frame_index, "PixelValueTransformationSequence") or header
    slope = _first(rescale_src.get("RescaleSlope"))
    intercept = _first(rescale_src.get("RescaleIntercept"))
    modality_lut = None
    if header.get("ModalityLUTSequence"):
        modality_lut = _lut_dataset(header, "ModalityLUTSequence", header.ModalityLUTSequence)

    voi_src = _group_item(header, frame_index, "FrameVOILUTSequence") or header
    window = None
    center = _first(voi_src.get("WindowCenter"))
    width = _first(voi_src.get("WindowWidth"))
    if center is not None and width is not None:
        function = str(voi_src.get("VOILUTFunction", "") or "LINEAR")
        try:
            window = _check_window(Window(center, width, function))
        except BadRequest:
            window = None  # an unusable stored window falls through to the next option
    voi_lut = None
    voi_seq = voi_src.get("VOILUTSequence") or header.get("VOILUTSequence")
    if voi_seq:
        voi_lut = _lut_dataset(header, "VOILUTSequence", voi_seq)
    return _Presentation(
        slope=1.0 if slope is None else slope,
        intercept=0.0 if intercept is None else intercept,
        modality_lut=modality_lut,
        window=window,
        voi_lut=voi_lut,
        inverted=str(header.get("PhotometricInterpretation", "")) == "MONOCHROME1",
    )


def _modality(values: np.ndarray, pres: _Presentation) -> np.ndarray:
    """Apply the Modality LUT stage (PS3.3 C.11.1)."""
    if pres.modality_lut is not None:
        return apply_modality_lut(values.astype(np.int64), pres.modality_lut)
    if pres.slope == 1.0 and pres.intercept == 0.0:
        return values
    return values.astype(np.float64) * pres.slope + pres.intercept


def _voi_lut(values: np.ndarray, pres: _Presentation) -> np.ndarray:
    """Apply the first VOI LUT Sequence item and scale its output to 0..255.

    The LUT's output range is 0..2^n-1 with n the third LUT Descriptor value (PS3.3
    C.11.2.1.1); when the table never needs that many bits (a 12-bit table declared
    16-bit, a common vendor habit) the bits actually used are taken instead.
    """
    assert pres.voi_lut is not None
    mapped = apply_voi(np.rint(values).astype(np.int64), pres.voi_lut)
    descriptor = pres.voi_lut.VOILUTSequence[0].LUTDescriptor
    bits = int(descriptor[2])
    used = int(mapped.max()).bit_length() if mapped.size else bits
    bits = max(1, min(bits, used))
    return mapped.astype(np.float64) * (255.0 / ((1 << bits) - 1))


def _gray_display(
    raw: np.ndarray, pres: _Presentation, window: Window | None, value_range: tuple[float, float]
) -> np.ndarray:
    """Map stored values to 8-bit display values (PS3.4 N.2 stages 1-3).

    `value_range` is the frame's minimum and maximum after the Modality LUT, used only
    when neither a window nor a VOI LUT is available.
    """
    values = _modality(raw, pres)
    chosen = window or pres.window
    out: np.ndarray
    if chosen is not None:
        out = apply_window(values, *chosen)
    elif pres.voi_lut is not None:
        out = _voi_lut(values, pres)
    else:
        low, high = value_range
        if high > low:
            out = (values.astype(np.float64) - low) * (255.0 / (high - low))
        else:
            out = np.zeros(values.shape, dtype=np.float64)
    if pres.inverted:
        out = 255.0 - out
    rounded: np.ndarray = np.rint(out)
    result: np.ndarray = np.clip(rounded, 0, 255).astype(np.uint8)
    return result


# ------------------------------------------------------------------------- geometry


class _Region(NamedTuple):
    """A source region in image pixels, with flips."""

    x0: int
    y0: int
    x1: int
    y1: int
    flip_x: bool
    flip_y: bool


def _source_region(rows: int, columns: int, viewport: Viewport | None) -> _Region:
    """Resolve the source region of a viewport against the image (PS3.18 8.3.5.1.3)."""
    if viewport is None:
        return _Region(0, 0, columns, rows, False, False)
    x0, y0 = math.floor(viewport.sx), math.floor(viewport.sy)
    x1 = columns if viewport.sw is None else math.ceil(viewport.sx + abs(viewport.sw))
    y1 = rows if viewport.sh is None else math.ceil(viewport.sy + abs(viewport.sh))
    x1, y1 = min(x1, columns), min(y1, rows)
    if x0 < 0 or y0 < 0 or x0 >= x1 or y0 >= y1:
        raise BadRequest("the viewport source region lies outside the image")
    flip_x = viewport.sw is not None and viewport.sw < 0
    flip_y = viewport.sh is not None and viewport.sh < 0
    return _Region(x0, y0, x1, y1, flip_x, flip_y)


def _output_size(
    width: int, height: int, viewport: Viewport | None, thumbnail: bool
) -> tuple[int, int]:
    """Return the rendered size for a region of `width` x `height` pixels.

    With a viewport the region is scaled to fit inside vw x vh keeping its aspect ratio
    (the result is not padded to the viewport). A thumbnail fits in THUMBNAIL_SIZE square
    by default and is never enlarged. Without either, the region keeps its size.
    """
    scale = 1.0
    if viewport is not None and (viewport.width or viewport.height):
        fits = [viewport.width / width] if viewport.width else []
        fits += [viewport.height / height] if viewport.height else []
        scale = min(fits)
        if thumbnail:
            scale = min(scale, 1.0)
    elif thumbnail:
        scale = min(1.0, THUMBNAIL_SIZE / width, THUMBNAIL_SIZE / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _reduce(arr: np.ndarray, factor: int, *, average: bool) -> np.ndarray:
    """Shrink the first two axes by an integer factor before the costly stages.

    Averaging sums `factor`**2 strided views into an accumulator of the reduced size, so
    it never allocates a full-size float copy; striding (for thumbnails and palette
    indices, which must not be averaged) costs nothing at all.
    """
    if factor <= 1:
        return arr
    if not average:
        return arr[::factor, ::factor]
    height = arr.shape[0] // factor * factor
    width = arr.shape[1] // factor * factor
    if height == 0 or width == 0:
        return arr[::factor, ::factor]
    shape = (height // factor, width // factor, *arr.shape[2:])
    count = factor * factor
    if arr.dtype.kind == "u" and arr.dtype.itemsize <= 2 and count <= 1 << 16:
        # Unsigned 8/16-bit sums fit in 32 bits; the rounded mean keeps the pixels' type,
        # so the lookup table indexes it without a widened copy.
        total = np.zeros(shape, dtype=np.uint32)
        for dy in range(factor):
            for dx in range(factor):
                total += arr[dy:height:factor, dx:width:factor]
        total += count // 2
        total //= count
        return total.astype(arr.dtype)
    kind = np.float64 if arr.dtype.kind == "f" else np.int64
    acc = np.zeros(shape, dtype=kind)
    for dy in range(factor):
        for dx in range(factor):
            acc += arr[dy:height:factor, dx:width:factor]
    mean = acc / count
    return mean if arr.dtype.kind == "f" else np.rint(mean).astype(np.int64)


# ------------------------------------------------------------------------- colour


def _color_display(header: Dataset, pixels: np.ndarray, palette: bool) -> np.ndarray:
    """Return RGB uint8 for an RGB or PALETTE COLOR frame (PS3.3 C.7.6.3.1.5)."""
    if palette:
        rgb = apply_color_lut(pixels, header)
        if rgb.dtype == np.uint8:
            return rgb
        return np.clip(np.rint(rgb / 257.0), 0, 255).astype(np.uint8)
    bits = int(header.get("BitsStored", 8) or 8)
    if pixels.dtype == np.uint8 and bits <= 8:
        return pixels
    top = float((1 << bits) - 1) if bits > 8 else 255.0
    return np.clip(np.rint(pixels * (255.0 / top)), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------- render


def _encode(image: Image.Image, media_type: str, quality: int) -> bytes:
    """Encode with Pillow: baseline JPEG (PS3.18 8.7.4), PNG or GIF."""
    buffer = io.BytesIO()
    if media_type == "image/jpeg":
        image.save(buffer, format="JPEG", quality=quality)
    elif media_type == "image/gif":
        image.save(buffer, format="GIF")
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def render_frame(
    header: Dataset,
    pixels: np.ndarray,
    *,
    media_type: str,
    window: Window | tuple[float, float, str] | None = None,
    viewport: Viewport | tuple[int | None, int | None] | None = None,
    quality: int | None = None,
    thumbnail: bool = False,
    frame_index: int = 0,
    decoded_scale: int = 1,
) -> bytes:
    """Render a decoded frame as an 8-bit JPEG or PNG.

    Parameters
    ----------
    header : pydicom.dataset.Dataset
        The instance's attributes (read with ``stop_before_pixels``): Image Pixel,
        Modality LUT, VOI LUT modules and, for enhanced objects, functional groups.
    pixels : numpy.ndarray
        One frame as returned by :func:`omipacs.dicom.pixels.decode_frame`: (rows,
        columns) stored values, or (rows, columns, 3) RGB.
    media_type : str
        ``image/jpeg`` or ``image/png``.
    window : Window or (center, width, function), optional
        The request's ``window``; overrides the instance's VOI for grayscale frames.
    viewport : Viewport or (vw, vh), optional
        The request's ``viewport``: source region, then fit inside vw x vh.
    quality : int, optional
        JPEG quality 1..100 (default DEFAULT_QUALITY); ignored for PNG.
    thumbnail : bool
        Fit in THUMBNAIL_SIZE square unless a viewport is given; never enlarge.
    frame_index : int
        0-based frame number, used to pick per-frame functional group values.
    decoded_scale : int
        The frame was decoded at 1/`decoded_scale` of its resolution
        (:func:`omipacs.dicom.reduced.decode_frame_reduced`): the viewport and the
        output size still refer to the full frame of the header's Rows and Columns.

    Returns
    -------
    bytes
        The encoded image.

    Raises
    ------
    NotAcceptable
        If `media_type` is not one produced here.
    BadRequest
        If the window, viewport region or quality is invalid.
    ValueError
        If `pixels` is not one frame matching Samples per Pixel (a caller error).
    """
    if media_type not in MEDIA_TYPES:
        raise NotAcceptable(
            f"cannot render to {media_type}; use image/jpeg, image/png or image/gif"
        )
    if quality is not None and not 1 <= int(quality) <= 100:
        raise BadRequest("quality must be an integer from 1 to 100")
    chosen = _check_window(Window(*window)) if window is not None else None
    view = Viewport(*viewport) if viewport is not None else None
    if view is not None:
        for side in (view.width, view.height):
            if side is not None and not 1 <= side <= MAX_VIEWPORT_SIDE:
                raise BadRequest(f"viewport sides must be between 1 and {MAX_VIEWPORT_SIDE}")

    samples = int(header.get("SamplesPerPixel", 1) or 1)
    color = pixels.ndim == 3
    if pixels.ndim not in (2, 3) or (color and pixels.shape[2] != 3) or (samples > 1) != color:
        raise ValueError(f"expected one frame of {samples} samples, got shape {pixels.shape}")
    palette = not color and str(header.get("PhotometricInterpretation")) == "PALETTE COLOR"

    if decoded_scale > 1:
        rows, columns = int(header.Rows), int(header.Columns)
    else:
        rows, columns = pixels.shape[:2]
    region = _source_region(rows, columns, view)
    out_w, out_h = _output_size(region.x1 - region.x0, region.y1 - region.y0, view, thumbnail)
    if decoded_scale > 1:
        s = decoded_scale
        y0, x0 = min(region.y0 // s, pixels.shape[0] - 1), min(region.x0 // s, pixels.shape[1] - 1)
        cropped = pixels[y0 : max(y0 + 1, -(-region.y1 // s)), x0 : max(x0 + 1, -(-region.x1 // s))]
    else:
        cropped = pixels[region.y0 : region.y1, region.x0 : region.x1]
    ratio = min(cropped.shape[1] / out_w, cropped.shape[0] / out_h)
    factor = int(ratio // 2) if ratio >= 4 else 1
    reduced = _reduce(cropped, factor, average=not (thumbnail or palette))

    if color or palette:
        display = _color_display(header, reduced, palette)
    else:
        display = _render_gray(header, pixels, reduced, chosen, frame_index)

    if region.flip_x:
        display = display[:, ::-1]
    if region.flip_y:
        display = display[::-1]
    image = Image.fromarray(np.ascontiguousarray(display))  # uint8: "L" or "RGB"
    if image.size != (out_w, out_h):
        enlarging = out_w > image.size[0]
        resample = Image.Resampling.BICUBIC if enlarging else Image.Resampling.LANCZOS
        image = image.resize((out_w, out_h), resample)
    return _encode(image, media_type, DEFAULT_QUALITY if quality is None else int(quality))


def render_stored_frame(
    header: Dataset,
    frame: bytes,
    transfer_syntax: str,
    *,
    media_type: str,
    window: Window | None = None,
    viewport: Viewport | None = None,
    quality: int | None = None,
    thumbnail: bool = False,
    frame_index: int = 0,
) -> bytes:
    """Decode a stored frame no finer than the picture needs, then :func:`render_frame` it.

    The picture's size is known before decoding (the viewport, or THUMBNAIL_SIZE for a
    thumbnail), so a frame whose codec can decode at a lower resolution (JPEG 2000,
    baseline JPEG; :mod:`omipacs.dicom.reduced`) is decoded at the largest power-of-two
    reduction that still leaves at least as many pixels as the picture has: a 256-pixel
    thumbnail of a 4096-row JPEG 2000 mammogram decodes 1/16 of the pixels. The arguments
    are those of :func:`render_frame`, with the frame's stored bytes in place of pixels.
    """
    rows, columns = int(header.get("Rows") or 0), int(header.get("Columns") or 0)
    most = 1
    if rows > 0 and columns > 0:
        view = Viewport(*viewport) if viewport is not None else None
        region = _source_region(rows, columns, view)
        width, height = region.x1 - region.x0, region.y1 - region.y0
        out_w, out_h = _output_size(width, height, view, thumbnail)
        ratio = min(width / out_w, height / out_h)
        while most * 2 <= ratio:
            most *= 2
    # The slot covers the decode and the render, reserving what both cost at this scale.
    with decode_slot(
        decode_cost(header, transfer_syntax, reduction(header, frame, transfer_syntax, most))
    ):
        pixels, scale = decode_frame_reduced(header, frame, transfer_syntax, most)
        del frame
        return render_frame(
            header,
            pixels,
            media_type=media_type,
            window=window,
            viewport=viewport,
            quality=quality,
            thumbnail=thumbnail,
            frame_index=frame_index,
            decoded_scale=scale,
        )


def _render_gray(
    header: Dataset,
    frame: np.ndarray,
    region: np.ndarray,
    window: Window | None,
    frame_index: int,
) -> np.ndarray:
    """Map a (reduced) grayscale region to uint8 using the whole frame's value range.

    Integer pixels go through a lookup table over the stored values. The table is laid out
    so the pixels can index it without a widened copy: from 0 for unsigned 8/16-bit data,
    and for signed 8/16-bit data from the most negative value, indexed by the pixels'
    bits with the sign bit flipped (two's complement v + 2**(b-1)).
    """
    pres = _presentation(header, frame_index)
    if frame.size == 0 or region.size == 0:
        return np.zeros(region.shape, dtype=np.uint8)
    frame_min, frame_max = frame.min(), frame.max()
    if frame.dtype.kind not in "iu" or int(frame_max) - int(frame_min) >= _LUT_MAX_ENTRIES:
        ends = _modality(np.array([frame_min, frame_max], dtype=np.float64), pres)
        value_range = (float(np.min(ends)), float(np.max(ends)))
        return _gray_display(region.astype(np.float64), pres, window, value_range)

    low, high = int(frame_min), int(frame_max)
    index: np.ndarray
    if region.dtype == frame.dtype and region.dtype.itemsize <= 2:
        if region.dtype.kind == "u":
            start, end, index = 0, high, region
        else:
            bits = region.dtype.itemsize * 8
            start, end = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            unsigned = np.dtype(f"u{region.dtype.itemsize}")
            index = region.view(unsigned) ^ unsigned.type(1 << (bits - 1))
    else:
        start, end = low, high
        index = np.clip(region.astype(np.int64) - low, 0, high - low)
    domain = np.arange(start, end + 1, dtype=np.int64)
    modality = _modality(domain, pres)
    present = modality[low - start : high - start + 1]
    value_range = (float(np.min(present)), float(np.max(present)))
    lut = _gray_display(domain, pres, window, value_range)
    return lut[index]  # type: ignore[no-any-return]
