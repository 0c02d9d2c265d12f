"""Synthetic images for the retrieve tests: pydicom datasets, frames and Part 10 files.

Everything is generated from a seeded random source; there is no patient data. Compressed
frames come from pydicom's encoders (RLE, JPEG 2000, JPEG-LS) or, for the JPEG processes
pydicom cannot encode, from dcmtk's ``dcmcjpeg``.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels.encoders.base import get_encoder
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGLSLossless,
)

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
NATIVE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian)


def make_image(
    *,
    rows: int = 40,
    columns: int = 36,
    frames: int = 1,
    photometric: str = "MONOCHROME2",
    bits_allocated: int = 16,
    bits_stored: int = 12,
    signed: bool = False,
    samples: int = 1,
    planar: int = 0,
    seed: int = 0,
    **attrs: Any,
) -> tuple[FileDataset, np.ndarray]:
    """Return a header-and-pixels dataset (native) and the pixel array it holds.

    The array is (frames, rows, columns[, samples]) with planar configuration 0 whatever
    `planar` says; `planar` only sets how the native bytes are laid out.
    """
    rng = np.random.default_rng(seed)
    if signed:
        low, high = -(1 << (bits_stored - 1)), (1 << (bits_stored - 1))
    else:
        low, high = 0, 1 << bits_stored
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits_allocated // 8}")
    shape: tuple[int, ...] = (frames, rows, columns) + ((samples,) if samples > 1 else ())
    arr = rng.integers(low, high, shape, dtype=dtype)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(MG_FOR_PRESENTATION)
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("synthetic", Dataset(), file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.Modality = "MG"
    ds.PatientID = "SYNTH-0001"
    ds.ImageLaterality = "R"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples > 1:
        ds.PlanarConfiguration = planar
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    ds.PixelData = b"".join(native_frame(f, planar) for f in arr)
    ds["PixelData"].VR = "OW" if bits_allocated > 8 else "OB"
    return ds, arr


def native_frame(frame: np.ndarray, planar: int = 0, *, big_endian: bool = False) -> bytes:
    """Return one frame's native bytes (PS3.5 8.1.1)."""
    if frame.ndim == 3 and planar == 1:
        frame = np.moveaxis(frame, -1, 0)
    dtype = frame.dtype.newbyteorder(">" if big_endian else "<")
    return np.ascontiguousarray(frame).astype(dtype).tobytes()


def encoder_options(ds: Dataset) -> dict[str, Any]:
    """Image Pixel values for pydicom's encoders, one frame at a time."""
    opts: dict[str, Any] = {
        "rows": ds.Rows,
        "columns": ds.Columns,
        "samples_per_pixel": ds.SamplesPerPixel,
        "bits_allocated": ds.BitsAllocated,
        "bits_stored": ds.BitsStored,
        "pixel_representation": ds.PixelRepresentation,
        "photometric_interpretation": ds.PhotometricInterpretation,
        "number_of_frames": 1,
    }
    if ds.SamplesPerPixel > 1:
        opts["planar_configuration"] = 0
    return opts


def encode_frames(ds: Dataset, arr: np.ndarray, syntax: str) -> list[bytes]:
    """Compress each frame with pydicom's encoder for `syntax`."""
    encoder = get_encoder(UID(syntax))
    extra: dict[str, Any] = {"j2k_cr": [4]} if syntax == JPEG2000 else {}
    return [bytes(encoder.encode(f, **encoder_options(ds), **extra)) for f in arr]


def with_pixels(ds: FileDataset, frames: list[bytes], syntax: str) -> FileDataset:
    """Replace the pixel data by encapsulated `frames` in `syntax` (in place)."""
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    return ds


def write(ds: FileDataset, path: Path) -> Path:
    """Write `ds` as a Part 10 file in its file meta transfer syntax."""
    syntax = ds.file_meta.TransferSyntaxUID
    ds.save_as(
        path,
        enforce_file_format=True,
        implicit_vr=syntax == ImplicitVRLittleEndian,
        little_endian=syntax != ExplicitVRBigEndian,
    )
    return path


def native_file(ds: FileDataset, arr: np.ndarray, syntax: str, path: Path) -> Path:
    """Write `ds` natively in `syntax` (Explicit/Implicit VR LE, or Explicit VR BE by dcmconv)."""
    ds.PixelData = b"".join(native_frame(f) for f in arr)
    if syntax != ExplicitVRBigEndian:
        ds.file_meta.TransferSyntaxUID = UID(syntax)
        return write(ds, path)
    little = write(ds, path.with_suffix(".le.dcm"))
    subprocess.run(["dcmconv", "+tb", str(little), str(path)], check=True)
    return path


def dcmtk_compress(source: Path, target: Path, *options: str) -> tuple[str, list[bytes]]:
    """Compress a native Part 10 file with dcmcjpeg; return its syntax and frames."""
    subprocess.run(["dcmcjpeg", *options, str(source), str(target)], check=True)
    out = pydicom.dcmread(target)
    frames = list(
        generate_frames(out.PixelData, number_of_frames=int(out.get("NumberOfFrames", 1)))
    )
    return str(out.file_meta.TransferSyntaxUID), frames


def header_of(path: Path) -> FileDataset:
    """Read a stored file the way the archive does: header only."""
    return pydicom.dcmread(path, stop_before_pixels=True)


def largest_accepted_frame(value: int = 0, syntax: str = JPEGLSLossless) -> bytes:
    """A Part 10 file of one 8192 x 8192 x 8-bit frame of `value`, JPEG-LS or JPEG 2000
    lossless: the largest frame ingest accepts (``storage.max_frame_bytes``, 64 MiB
    decoded) from about 1 KB sent, which is what a client asking for it to be rendered
    over and over costs."""
    from omipacs.demo import factory

    pixels = np.full((8192, 8192), value, np.uint8)
    if syntax == JPEGLSLossless:
        import jpeg_ls

        stream = bytes(jpeg_ls.encode(pixels))
    else:
        options = {
            "rows": 8192,
            "columns": 8192,
            "samples_per_pixel": 1,
            "bits_allocated": 8,
            "bits_stored": 8,
            "pixel_representation": 0,
            "photometric_interpretation": "MONOCHROME2",
            "number_of_frames": 1,
        }
        stream = bytes(get_encoder(UID(syntax)).encode(pixels, **options))
    ds = factory.make_mammo(rows=64, columns=48)
    ds.Rows = ds.Columns = 8192
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
