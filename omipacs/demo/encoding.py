"""Transfer syntax handling for synthetic objects: lossless compression and writing.

Archives receive mammograms natively encoded or losslessly compressed (PS3.5 Annex
A.4); FOR PROCESSING images in particular must stay lossless. The encoders are the
ones pydicom can drive here, checked at run time rather than assumed.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import BinaryIO, TypeVar

from pydicom.dataset import Dataset
from pydicom.pixels.encoders.base import get_encoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

_D = TypeVar("_D", bound=Dataset)

NATIVE_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)
_ENCODING_PLUGINS: Mapping[str, str] = {
    RLELossless: "pydicom",
    JPEG2000Lossless: "pylibjpeg",
    JPEGLSLossless: "pyjpegls",
}


def lossless_syntaxes() -> tuple[UID, ...]:
    """Return the lossless compressed transfer syntaxes :func:`compress` can write here.

    RLE uses pydicom's own encoder; JPEG 2000 needs pylibjpeg-openjpeg; JPEG-LS needs
    pyjpegls. A syntax is listed only if its encoder plugin is importable.
    """
    found = []
    for syntax, plugin in _ENCODING_PLUGINS.items():
        encoder = get_encoder(syntax)
        if encoder.is_available and plugin in encoder.available_plugins:
            found.append(UID(syntax))
    return tuple(found)


def compress(ds: _D, syntax: str) -> _D:
    """Re-encode native pixel data losslessly, in place, keeping the SOP Instance UID.

    Supported syntaxes are those of :func:`lossless_syntaxes`: RLE Lossless
    (pydicom's pure-Python encoder: slow for full-field images), JPEG 2000 Lossless
    (pylibjpeg-openjpeg) and JPEG-LS Lossless (pyjpegls). The file meta transfer syntax
    is updated (PS3.5 8.2, Annex A.4 encapsulation).

    Raises
    ------
    ValueError
        If the syntax is not one of those, or its encoder is not installed.
    """
    if syntax not in lossless_syntaxes():
        raise ValueError(f"cannot compress to {syntax!r}; supported: {lossless_syntaxes()}")
    ds.compress(syntax, encoding_plugin=_ENCODING_PLUGINS[syntax], generate_instance_uid=False)
    return ds


def save(ds: Dataset, target: str | os.PathLike[str] | BinaryIO) -> None:
    """Write a data set as a Part 10 file (preamble, DICM, file meta; PS3.10 7.1).

    Native pixel data is handed to pydicom as a stream, which it copies out in chunks;
    given plain bytes, pydicom would first build a second in-memory copy of the whole
    value, doubling the peak memory of a full-size tomosynthesis stack.
    """
    pixels = ds.get("PixelData")
    streamed = isinstance(pixels, bytes) and "NumberOfFrames" in ds and len(pixels) > 2**24
    if streamed:
        ds.PixelData = io.BytesIO(pixels)  # shares the bytes object, no copy
    try:
        ds.save_as(target, enforce_file_format=True)
    finally:
        if streamed:
            ds.PixelData = pixels


def to_bytes(ds: Dataset) -> bytes:
    """Serialise a data set as a Part 10 file, for tests and network senders."""
    out = io.BytesIO()
    save(ds, out)
    return out.getvalue()
