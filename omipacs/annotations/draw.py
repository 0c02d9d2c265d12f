"""Draw mark boxes on a rendered picture (WADO-RS ``/rendered`` and ``/thumbnail``).

Marks are in image pixel coordinates; a rendered picture shows a source region of the
image (PS3.18 8.3.5.1.3 ``viewport``: ``sx, sy, sw, sh``, a negative width or height
flipping it) scaled to the output size. :func:`annotate_rendered` maps each box through
the same region and scale that :func:`omipacs.retrieve.render.render_frame` used, so a
box lands on the pixels it marks, then draws it as an outline. :func:`render_marked`
does the whole of it for the WADO-RS views: it renders losslessly (PNG), draws, and
encodes once to the requested media type (re-encoding a JPEG would lose quality twice).
The marks are asked for with ``annotation=marks`` (:func:`marks_requested`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset
from sqlalchemy.orm import Session

from omipacs.annotations.search import marks_for_image
from omipacs.errors import NotAcceptable
from omipacs.retrieve.render import (
    DEFAULT_QUALITY,
    MEDIA_TYPES,
    Viewport,
    Window,
    render_frame,
)

Box = tuple[float, float, float, float]
"""(col_min, row_min, col_max, row_max) in image pixels."""
MARK_COLOUR: Final = (255, 48, 48)
_FORMATS: Final = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF"}


def _open(image: bytes | Image.Image) -> tuple[Image.Image, str]:
    if isinstance(image, Image.Image):
        return image.convert("RGB"), "PNG"
    opened = Image.open(io.BytesIO(image))
    fmt = opened.format or "PNG"
    return opened.convert("RGB"), fmt


def draw_marks(
    image: bytes | Image.Image,
    boxes: Sequence[Box],
    scale: float | tuple[float, float] = 1.0,
    *,
    origin: tuple[float, float] = (0.0, 0.0),
    flip: tuple[bool, bool] = (False, False),
    media_type: str | None = None,
    quality: int | None = None,
    colour: tuple[int, int, int] = MARK_COLOUR,
    width: int | None = None,
) -> bytes:
    """Outline ``boxes`` on ``image`` and encode the result.

    Parameters
    ----------
    image
        Encoded JPEG/PNG bytes or a Pillow image.
    boxes
        Boxes in image pixel coordinates.
    scale
        Output pixels per image pixel (one value, or per axis).
    origin
        The image pixel shown at the output's top-left corner (the source region's
        ``sx, sy``).
    flip
        Whether the region is shown mirrored horizontally and vertically.
    media_type
        ``image/jpeg``, ``image/png`` or ``image/gif``; by default the input's format (PNG for a
        Pillow image).
    quality
        JPEG quality (default :data:`~omipacs.retrieve.render.DEFAULT_QUALITY`).
    colour, width
        Outline colour and width in output pixels (by default about 1/150 of the
        picture's shorter side, at least 2).
    """
    picture, fmt = _open(image)
    if media_type is not None:
        if media_type not in _FORMATS:
            raise ValueError(f"cannot encode marks as {media_type}")
        fmt = _FORMATS[media_type]
    sx, sy = (scale, scale) if isinstance(scale, int | float) else scale
    out_w, out_h = picture.size
    line = width or max(2, round(min(out_w, out_h) / 150))
    draw = ImageDraw.Draw(picture)
    for c0, r0, c1, r1 in boxes:
        xs = sorted(_map(v, origin[0], sx, out_w, flip[0]) for v in (c0, c1))
        ys = sorted(_map(v, origin[1], sy, out_h, flip[1]) for v in (r0, r1))
        if xs[1] < 0 or ys[1] < 0 or xs[0] > out_w - 1 or ys[0] > out_h - 1:
            continue  # outside the region shown
        draw.rectangle((xs[0], ys[0], xs[1], ys[1]), outline=colour, width=line)
    buffer = io.BytesIO()
    if fmt == "JPEG":
        # 4:4:4 sampling: chroma subsampling would wash out a thin coloured outline.
        picture.save(buffer, format="JPEG", quality=quality or DEFAULT_QUALITY, subsampling=0)
    elif fmt == "GIF":
        # An adaptive palette keeps the grey levels and the outline's colour.
        picture.convert("RGB").quantize(colors=256).save(buffer, format="GIF")
    else:
        picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _map(value: float, start: float, scale: float, size: int, flipped: bool) -> int:
    position = (value - start) * scale
    if flipped:
        position = size - position
    return round(position)


def source_region(
    rows: int, columns: int, viewport: Viewport | None
) -> tuple[float, float, float, float, bool, bool]:
    """``(x0, y0, width, height, flip_x, flip_y)`` of the rendered region, as rendered."""
    if viewport is None:
        return 0.0, 0.0, float(columns), float(rows), False, False
    x0, y0 = math.floor(viewport.sx), math.floor(viewport.sy)
    x1 = columns if viewport.sw is None else math.ceil(viewport.sx + abs(viewport.sw))
    y1 = rows if viewport.sh is None else math.ceil(viewport.sy + abs(viewport.sh))
    x1, y1 = min(x1, columns), min(y1, rows)
    flip_x = viewport.sw is not None and viewport.sw < 0
    flip_y = viewport.sh is not None and viewport.sh < 0
    return float(x0), float(y0), float(max(1, x1 - x0)), float(max(1, y1 - y0)), flip_x, flip_y


def annotate_rendered(
    session: Session,
    rendered: bytes,
    *,
    sop_uid: str,
    frame: int | None,
    rows: int,
    columns: int,
    viewport: Viewport | None,
    media_type: str,
    quality: int | None = None,
    all_frames: bool = False,
) -> bytes:
    """The rendered picture of an image with its current marks drawn on it.

    Parameters
    ----------
    session
        A read session of the index.
    rendered
        The output of ``render_frame`` for this image (PNG preferably).
    sop_uid, frame
        The image and the frame shown; the marks of that frame are drawn (of every
        frame with ``all_frames``).
    rows, columns
        The frame's size in pixels.
    viewport
        The ``viewport`` the picture was rendered with, if any.
    media_type, quality
        The encoding wanted by the client.
    """
    boxes = marks_for_image(session, sop_uid, frame, all_frames=all_frames)
    x0, y0, width, height, flip_x, flip_y = source_region(rows, columns, viewport)
    out_w, out_h = Image.open(io.BytesIO(rendered)).size
    return draw_marks(
        rendered,
        boxes,
        (out_w / width, out_h / height),
        origin=(x0, y0),
        flip=(flip_x, flip_y),
        media_type=media_type,
        quality=quality,
    )


def marks_requested(params: Mapping[str, str]) -> bool:
    """Whether a rendering request asks for the marks to be drawn.

    ``annotation=marks`` (PS3.18 8.3.5.1.1's ``annotation`` parameter, with this
    archive's ``marks`` value among its comma-separated items) or ``marks=true``.
    """
    items = [p.strip().lower() for p in str(params.get("annotation", "")).split(",")]
    return "marks" in items or str(params.get("marks", "")).lower() in ("true", "1", "yes")


def render_marked(
    session: Session,
    header: Dataset,
    pixels: np.ndarray,
    *,
    sop_uid: str,
    frame: int,
    media_type: str,
    window: Window | tuple[float, float, str] | None = None,
    viewport: Viewport | tuple[int | None, int | None] | None = None,
    quality: int | None = None,
    thumbnail: bool = False,
    all_frames: bool = False,
) -> bytes:
    """:func:`~omipacs.retrieve.render.render_frame` with the image's marks drawn.

    Takes the arguments of ``render_frame`` (``frame`` is 1-based) plus the image's
    SOP Instance UID; renders losslessly, draws, then encodes once as ``media_type``.
    """
    if media_type not in MEDIA_TYPES:
        raise NotAcceptable(
            f"cannot render to {media_type}; use image/jpeg, image/png or image/gif"
        )
    png = render_frame(
        header, pixels, media_type="image/png", window=window, viewport=viewport,
        thumbnail=thumbnail, frame_index=frame - 1,
    )
    view = Viewport(*viewport) if viewport is not None else None
    return annotate_rendered(
        session, png, sop_uid=sop_uid, frame=frame, rows=int(pixels.shape[0]),
        columns=int(pixels.shape[1]), viewport=view, media_type=media_type, quality=quality,
        all_frames=all_frames,
    )
