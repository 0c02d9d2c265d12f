"""Synthetic breast-like pixel data, vectorised so full detector sizes take well under a second.

The picture is a half-ellipse of tissue against background, chest wall at the image
edge, with a smooth thickness fall-off towards the skin line, low-frequency
"fibroglandular" texture and fine noise. For MLO views a brighter pectoral muscle wedge
sits in the upper chest-wall corner. Nothing here is anatomically faithful; it only has
to look like a mammogram in a viewer and exercise codecs with realistic statistics.

Orientation follows the usual hanging convention recorded in Patient Orientation
(PS3.3 C.8.11.7.1.1): a left breast has its chest wall on the left column (``A\\R`` for
CC), a right breast on the right column (``P\\L``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U16 = npt.NDArray[np.uint16]


def _interp_matrix(n: int, cells: int) -> F32:
    """Return an (n, cells + 1) matrix that linearly interpolates a coarse grid to n points."""
    pos = np.linspace(0.0, cells, n, dtype=np.float32)
    lo = np.minimum(pos.astype(np.int64), cells - 1)
    w = pos - lo
    m = np.zeros((n, cells + 1), dtype=np.float32)
    idx = np.arange(n)
    m[idx, lo] = 1.0 - w
    m[idx, lo + 1] = w
    return m


def smooth_noise(rng: np.random.Generator, rows: int, columns: int, cells: int) -> F32:
    """Band-limited noise with about ``cells`` features across the shorter side.

    A coarse Gaussian grid is interpolated bilinearly as two matrix products, which
    costs O(rows x columns x cells) and needs no SciPy.
    """
    ry = _interp_matrix(rows, max(1, round(cells * rows / min(rows, columns))))
    rx = _interp_matrix(columns, max(1, round(cells * columns / min(rows, columns))))
    coarse = rng.standard_normal((ry.shape[1], rx.shape[1]), dtype=np.float32)
    return ((ry @ coarse) @ rx.T).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Anatomy:
    """The view-independent parts of one synthetic breast image.

    Attributes
    ----------
    thickness : numpy.ndarray
        0 outside the breast, rising to 1 at full compressed thickness.
    density : numpy.ndarray
        Fibroglandular texture in about [0, 1], already masked to the breast.
    """

    thickness: F32
    density: F32


def breast_anatomy(
    rng: np.random.Generator, rows: int, columns: int, *, laterality: str, view: str
) -> Anatomy:
    """Build the tissue maps for one view; right breasts are mirrored.

    Mirroring is done by reversing the column coordinate, not by copying the array.
    """
    extent = float(rng.uniform(0.62, 0.88))  # breast depth as a fraction of the width
    # Vertical semi-axis and centre as fractions of the height; MLO reaches up into the axilla.
    if view == "CC":
        half_height, centre = float(rng.uniform(0.34, 0.44)), float(rng.uniform(0.46, 0.54))
    else:
        half_height, centre = float(rng.uniform(0.44, 0.5)), float(rng.uniform(0.52, 0.56))
    col = np.arange(columns, dtype=np.float32)
    if laterality == "R":
        col = col[::-1]
    x = (col / np.float32(columns * extent))[np.newaxis, :]
    y = (
        (np.arange(rows, dtype=np.float32) / np.float32(rows) - np.float32(centre))
        / np.float32(half_height)
    )[:, np.newaxis]
    r2 = x * x + y * y
    thickness = np.sqrt(np.clip(np.float32(1.0) - r2, 0.0, 1.0))
    # The skin line is soft: compressed tissue thins towards the edge.
    np.sqrt(thickness, out=thickness)
    if view == "MLO":
        # Pectoral muscle: a wedge from the upper chest-wall corner.
        depth = float(rng.uniform(0.25, 0.4))
        height = float(rng.uniform(0.45, 0.65))
        yy = (np.arange(rows, dtype=np.float32) / np.float32(rows))[:, np.newaxis]
        wedge = np.clip(1.0 - x * (extent / depth) - yy / np.float32(height), 0.0, 1.0)
        thickness = np.maximum(thickness, np.minimum(np.float32(1.0), wedge * 8))
    density = smooth_noise(rng, rows, columns, 5) + 0.5 * smooth_noise(rng, rows, columns, 23)
    density *= np.float32(0.18)
    density += np.float32(0.5) - np.float32(0.35) * np.sqrt(r2)
    np.clip(density, 0.0, 1.0, out=density)
    density *= thickness > 0
    return Anatomy(thickness=thickness.astype(np.float32, copy=False), density=density)


def render(
    anatomy: Anatomy,
    rng: np.random.Generator,
    *,
    processed: bool,
    bits_stored: int,
    inverted: bool = False,
    texture: F32 | None = None,
    out: U16 | None = None,
) -> U16:
    """Turn tissue maps into stored pixel values.

    Parameters
    ----------
    anatomy : Anatomy
        From :func:`breast_anatomy`.
    rng : numpy.random.Generator
        Source of the fine quantum-like noise.
    processed : bool
        True for FOR PRESENTATION (tissue bright, background 0); False for FOR
        PROCESSING, a log-exposure image where background is bright and tissue
        attenuates (PS3.3 C.8.11.7, Pixel Intensity Relationship LOG).
    bits_stored : int
        Values are kept below ``2**bits_stored`` so lossless encoders accept them.
    inverted : bool
        Store ``max - value`` (MONOCHROME1), keeping the same look in a viewer.
    texture : numpy.ndarray, optional
        Extra density added before rendering (DBT slices use it to differ).
    out : numpy.ndarray, optional
        uint16 array to write into, so callers can fill a preallocated frame buffer.
    """
    top = float(2**bits_stored - 1)
    density = anatomy.density if texture is None else anatomy.density + texture
    if processed:
        value = anatomy.thickness * np.float32(0.35) + density * np.float32(0.45)
        value += (anatomy.thickness > 0) * np.float32(0.12)
    else:
        value = np.float32(0.86) - anatomy.thickness * np.float32(0.3) - density * np.float32(0.2)
    value += rng.random(value.shape, dtype=np.float32) * np.float32(0.02)
    value *= np.float32(top)
    np.clip(value, 0.0, top, out=value)
    if inverted:
        np.subtract(np.float32(top), value, out=value)
    if out is None:
        return value.astype(np.uint16)
    out[...] = value
    return out
