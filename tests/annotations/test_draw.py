"""Mark boxes drawn on rendered pictures land on the pixels they mark."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from sqlalchemy import select

from omipacs.annotations.draw import (
    MARK_COLOUR,
    draw_marks,
    marks_requested,
    render_marked,
    source_region,
)
from omipacs.annotations.importer import import_marks
from omipacs.errors import NotAcceptable
from omipacs.index.models import Instance
from omipacs.retrieve.render import Viewport
from omipacs.services import Services
from tests.annotations.builders import record, store_image


def blank(width: int = 100, height: int = 80, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format=fmt)
    return buffer.getvalue()


def red(picture: bytes) -> np.ndarray:
    """Where the picture is mark-coloured (tolerant of JPEG ringing)."""
    rgb = np.asarray(Image.open(io.BytesIO(picture)).convert("RGB")).astype(int)
    return (rgb[..., 0] > 180) & (rgb[..., 1] < 120) & (rgb[..., 2] < 120)


def test_the_box_outline_is_drawn_and_nothing_else() -> None:
    out = draw_marks(blank(), [(10, 20, 50, 60)], width=1)
    assert Image.open(io.BytesIO(out)).format == "PNG"
    mask = red(out)
    assert mask[20, 10:51].all() and mask[60, 10:51].all()  # top and bottom edges
    assert mask[20:61, 10].all() and mask[20:61, 50].all()  # left and right edges
    assert mask.sum() == 2 * 41 + 2 * 39
    rgb = np.asarray(Image.open(io.BytesIO(out)).convert("RGB"))
    assert tuple(rgb[20, 10]) == MARK_COLOUR


@pytest.mark.parametrize(
    ("scale", "origin", "flip", "corner"),
    [(2.0, (0, 0), (False, False), (20, 40)),
     ((0.5, 0.25), (0, 0), (False, False), (5, 5)),
     (1.0, (5, 10), (False, False), (5, 10)),
     (1.0, (0, 0), (True, False), (100 - 50, 20))],
)
def test_boxes_follow_scale_origin_and_flip(
    scale: float | tuple[float, float], origin: tuple[float, float],
    flip: tuple[bool, bool], corner: tuple[int, int],
) -> None:
    out = draw_marks(blank(), [(10, 20, 50, 60)], scale, origin=origin, flip=flip, width=1)
    mask = red(out)
    x, y = corner
    assert mask[y, x], (scale, origin, flip)
    ys, xs = np.nonzero(mask)
    assert (xs.min(), ys.min()) == corner


def test_encoding_follows_the_input_or_the_request() -> None:
    assert Image.open(io.BytesIO(draw_marks(blank(fmt="JPEG"), []))).format == "JPEG"
    jpeg = draw_marks(blank(), [(10, 20, 50, 60)], media_type="image/jpeg", quality=95)
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG" and red(jpeg)[20, 30]
    gif = draw_marks(blank(), [(10, 20, 50, 60)], media_type="image/gif")
    assert Image.open(io.BytesIO(gif)).format == "GIF" and red(gif)[20, 30]
    with pytest.raises(ValueError):
        draw_marks(blank(), [], media_type="image/webp")
    picture = Image.new("RGB", (10, 10))
    assert Image.open(io.BytesIO(draw_marks(picture, [(1, 1, 5, 5)]))).format == "PNG"


@pytest.mark.parametrize(
    ("params", "wanted"),
    [({"annotation": "marks"}, True), ({"annotation": "patient, Marks"}, True),
     ({"marks": "true"}, True), ({"marks": "1"}, True), ({"annotation": "patient"}, False),
     ({"marks": "no"}, False), ({}, False)],
)
def test_marks_are_asked_for_by_parameter(params: dict[str, str], wanted: bool) -> None:
    assert marks_requested(params) is wanted


def test_source_region_matches_rendering() -> None:
    assert source_region(64, 48, None) == (0, 0, 48, 64, False, False)
    assert source_region(64, 48, Viewport(10, 10, 4.5, 8, -20, 30)) == (4, 8, 21, 30, True, False)
    assert source_region(64, 48, Viewport(10, None, 40, 0, None, None)) == (
        40, 0, 8, 64, False, False)


def _frame(services: Services, sop_uid: str, frame: int) -> tuple[pydicom.Dataset, np.ndarray]:
    with services.sessions() as s:
        key = s.scalar(select(Instance.blob_key).where(Instance.sop_instance_uid == sop_uid))
    assert key is not None
    with services.blobs.open(key) as f:
        ds = pydicom.dcmread(f)
    pixels = ds.pixel_array
    frame_pixels = pixels[frame - 1] if pixels.ndim == 3 else pixels
    return ds, np.ascontiguousarray(frame_pixels)


def test_rendered_pictures_show_the_images_marks(archive: Services) -> None:
    image = store_image(archive, seed=81)
    assert import_marks(archive, [record(image, X1=4, Y1=8, X2=24, Y2=40)]).ok
    header, pixels = _frame(archive, image.sop_uid, 1)
    with archive.sessions() as s:
        plain = render_marked(s, header, pixels, sop_uid="2.25.1", frame=1,
                              media_type="image/png")
        full = render_marked(s, header, pixels, sop_uid=image.sop_uid, frame=1,
                             media_type="image/png")
        zoomed = render_marked(s, header, pixels, sop_uid=image.sop_uid, frame=1,
                               media_type="image/png", viewport=(96, 128))
        cropped = render_marked(s, header, pixels, sop_uid=image.sop_uid, frame=1,
                                media_type="image/jpeg", viewport=Viewport(40, 64, 0, 0, 20, 32))
        gif = render_marked(s, header, pixels, sop_uid=image.sop_uid, frame=1,
                            media_type="image/gif")
        with pytest.raises(NotAcceptable):
            render_marked(s, header, pixels, sop_uid=image.sop_uid, frame=1,
                          media_type="image/bmp")
    assert gif.startswith(b"GIF8")
    ys, xs = np.nonzero(red(gif))
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (4, 8, 24, 40)
    assert not red(plain).any()  # no marks on that image: the picture is untouched
    ys, xs = np.nonzero(red(full))
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (4, 8, 24, 40)
    ys, xs = np.nonzero(red(zoomed))  # twice the size
    assert abs(xs.min() - 8) <= 1 and abs(ys.min() - 16) <= 1
    assert abs(xs.max() - 48) <= 2 and abs(ys.max() - 80) <= 2
    assert Image.open(io.BytesIO(cropped)).format == "JPEG"
    ys, xs = np.nonzero(red(cropped))  # region 20 x 32 shown at 40 x 64: scale 2
    assert abs(xs.min() - 8) <= 2 and abs(ys.min() - 16) <= 2


def test_a_slice_shows_its_own_marks(archive: Services) -> None:
    image = store_image(archive, seed=82, dbt=True, frames=5)
    assert import_marks(archive, [record(image, FrameNumber=3)]).ok
    with archive.sessions() as s:
        shown = {}
        for frame in (2, 3):
            header, pixels = _frame(archive, image.sop_uid, frame)
            shown[frame] = red(render_marked(s, header, pixels, sop_uid=image.sop_uid,
                                             frame=frame, media_type="image/png")).any()
        header, pixels = _frame(archive, image.sop_uid, 2)
        every = red(render_marked(s, header, pixels, sop_uid=image.sop_uid, frame=2,
                                  media_type="image/png", all_frames=True)).any()
    assert shown == {2: False, 3: True} and every
