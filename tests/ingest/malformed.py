"""Malformed instances of the kinds hostile or broken senders produce, built from demo data.

Each builder returns the bytes of a Part 10 file that an archive must refuse before
acknowledging: it would be stored broken or cost gigabytes to decode later.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from omipacs.demo import factory


def _bytes(ds: pydicom.Dataset) -> bytes:
    return factory.to_bytes(ds)


def _mammo(**kw: object) -> pydicom.Dataset:
    return factory.make_mammo(rows=64, columns=48, **kw)  # type: ignore[arg-type]


def header_only() -> bytes:
    ds = _mammo()
    del ds.PixelData
    return _bytes(ds)


def length_swallows_pixels() -> bytes:
    """A private OB element before Pixel Data whose length is 0xFFFFFFF0."""
    ds = _mammo()
    ds.add_new(0x00091010, "OB", b"\x00" * 8)
    data = bytearray(_bytes(ds))
    at = data.index(b"\x09\x00\x10\x10OB\x00\x00")
    data[at + 8 : at + 12] = struct.pack("<L", 0xFFFFFFF0)
    return bytes(data)


def _encapsulated(frames: list[bytes], syntax: str, n_frames: int = 1, **kw: object) -> bytes:
    ds = _mammo(**kw)
    ds.PixelData = encapsulate(frames) if frames else b"\xfe\xff\x00\xe0\x00\x00\x00\x00"
    ds["PixelData"].VR = "OB"
    if n_frames > 1:
        ds.NumberOfFrames = n_frames
    ds.file_meta.TransferSyntaxUID = syntax
    raw = io.BytesIO()
    ds.save_as(raw, enforce_file_format=True)
    data = raw.getvalue()
    if not frames:
        # An empty Basic Offset Table then the sequence delimiter: no fragment at all.
        at = data.rindex(b"\xe0\x7f\x10\x00OB")
        data = data[:at] + b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
        data += b"\xfe\xff\x00\xe0\x00\x00\x00\x00\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    return data


def no_fragments() -> bytes:
    return _encapsulated([], JPEGLSLossless)


def bogus_fragment() -> bytes:
    return _encapsulated([b"\x00\x11" * 200], JPEGLSLossless)


def fragments_fewer_than_frames() -> bytes:
    ds = factory.compress(factory.make_dbt(frames=3, rows=64, columns=48), RLELossless)
    frames = [f for f in pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=3)]
    ds.PixelData = encapsulate(frames[:2])
    return _bytes(ds)


def syntax_contradicts_stream() -> bytes:
    """JPEG-LS frames labelled JPEG 2000."""
    ds = factory.compress(_mammo(), JPEGLSLossless)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    return _bytes(ds)


def with_syntax(data: bytes, syntax: str) -> bytes:
    """A Part 10 file (or its head) with TransferSyntaxUID replaced, group length fixed."""
    old_at = data.index(b"\x02\x00\x10\x00UI")
    old_len = struct.unpack("<H", data[old_at + 6 : old_at + 8])[0]
    value = syntax.encode() + (b"\x00" if len(syntax) % 2 else b"")
    elem = b"\x02\x00\x10\x00UI" + struct.pack("<H", len(value)) + value
    out = data[:old_at] + elem + data[old_at + 8 + old_len :]
    gl_at = out.index(b"\x02\x00\x00\x00UL")
    group_length = (old_at + len(elem)) - (gl_at + 12)
    meta_end = old_at + len(elem)
    while out[meta_end : meta_end + 2] == b"\x02\x00":
        vr = out[meta_end + 4 : meta_end + 6]
        if vr in (b"OB", b"UN", b"UT", b"SQ"):
            n = 12 + struct.unpack("<L", out[meta_end + 8 : meta_end + 12])[0]
        else:
            n = 8 + struct.unpack("<H", out[meta_end + 6 : meta_end + 8])[0]
        meta_end += n
        group_length += n
    return out[: gl_at + 8] + struct.pack("<L", group_length) + out[gl_at + 12 :]


def native_labelled_compressed() -> bytes:
    return with_syntax(_bytes(_mammo()), RLELossless)


def modality_contradicts_class() -> bytes:
    return _bytes(_mammo(Modality="CT"))


def stream_declares_more_pixels() -> bytes:
    """A JPEG-LS bomb: 64 x 48 in the header, 8192 x 8192 in the stream (about 1 KB)."""
    import jpeg_ls

    stream = bytes(jpeg_ls.encode(np.zeros((8192, 8192), np.uint16)))
    return _encapsulated([stream], JPEGLSLossless)


def frame_over_the_limit() -> bytes:
    """Header and stream agree on 8192 x 8192 x 16 bits: 128 MiB per frame decoded."""
    import jpeg_ls

    stream = bytes(jpeg_ls.encode(np.zeros((8192, 8192), np.uint16)))
    data = _encapsulated([stream], JPEGLSLossless)
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.Rows = ds.Columns = 8192
    return _bytes(ds)


def truncated_header(data: bytes, cut_from_end: int) -> bytes:
    return data[: len(data) - cut_from_end]


#: name -> (builder, FailureReason / C-STORE status expected)
CASES: dict[str, tuple[Callable[[], bytes], int]] = {
    "header_only": (header_only, 0xA900),
    "length_swallows_pixels": (length_swallows_pixels, 0xC000),
    "no_fragments": (no_fragments, 0xA900),
    "bogus_fragment": (bogus_fragment, 0xA900),
    "fragments_fewer_than_frames": (fragments_fewer_than_frames, 0xA900),
    "syntax_contradicts_stream": (syntax_contradicts_stream, 0xA900),
    "native_labelled_compressed": (native_labelled_compressed, 0xA900),
    "modality_contradicts_class": (modality_contradicts_class, 0xA900),
    "stream_declares_more_pixels": (stream_declares_more_pixels, 0xA900),
    "frame_over_the_limit": (frame_over_the_limit, 0xA900),
}
