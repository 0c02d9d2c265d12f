"""Write a new file from a changed header plus the original pixel bytes.

De-identification changes the header but never the pixels (unless pixel cleaning
applies), so the pixel data element is copied byte for byte from the spooled file: the
header is re-encoded, the (possibly gigabyte-sized) pixel element is streamed, then any
trailing elements are encoded. Memory use is one copy buffer, whatever the image size.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO, Protocol

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset, write_file_meta_info

from omipacs.dicom.parse import ParsedFile


class PixelWordCleaner(Protocol):
    """Cleans native pixel words chunk by chunk (overlay bits hidden in unused bits)."""

    @property
    def word_bytes(self) -> int: ...

    def apply(self, chunk: bytes) -> bytes: ...


def rewrite(
    parsed: ParsedFile,
    meta: FileMetaDataset,
    header: Dataset,
    dest: Path,
    pixel_words: PixelWordCleaner | None = None,
) -> None:
    """Write ``dest``: zero preamble, ``meta``, ``header`` and the source's pixel bytes.

    With ``pixel_words``, a native pixel value is streamed through it instead of being
    copied verbatim (encapsulated pixel data is always copied).
    """
    pixel = parsed.pixel
    before = Dataset()
    after = Dataset()
    for tag in header.keys():
        elem = header[tag]
        if pixel is not None and tag > pixel.tag:
            after.add(elem)
        elif tag.group != 0x0002:
            before.add(elem)
    with open(dest, "wb") as raw:
        raw.write(b"\x00" * 128 + b"DICM")
        out = DicomFileLike(raw)
        out.is_little_endian = True
        out.is_implicit_VR = False
        write_file_meta_info(out, meta, enforce_standard=True)
        out.is_implicit_VR = parsed.is_implicit_vr
        write_dataset(out, before)
        if pixel is not None:
            raw.flush()
            with open(parsed.path, "rb") as src:
                if pixel_words is not None and pixel.value is not None and not pixel.encapsulated:
                    head = pixel.value.offset - pixel.element_offset
                    copy_range(src, raw, pixel.element_offset, head)
                    _clean_range(src, raw, pixel.value.offset, pixel.value.length, pixel_words)
                    raw.flush()  # buffered writes land before the kernel copies more
                    tail = pixel.element_end - pixel.value.offset - pixel.value.length
                    copy_range(src, raw, pixel.value.offset + pixel.value.length, tail)
                else:
                    copy_range(
                        src, raw, pixel.element_offset, pixel.element_end - pixel.element_offset
                    )
            if len(after):
                write_dataset(out, after)
        raw.flush()


def _clean_range(
    src: BinaryIO, dest: BinaryIO, offset: int, length: int, cleaner: PixelWordCleaner
) -> None:
    """Append ``length`` bytes of ``src`` from ``offset``, word-aligned chunks cleaned."""
    chunk_size = (1 << 20) - (1 << 20) % cleaner.word_bytes
    src.seek(offset)
    remaining = length
    while remaining:
        chunk = src.read(min(remaining, chunk_size))
        if not chunk:
            raise OSError("source file shrank while being copied")
        dest.write(cleaner.apply(chunk))
        remaining -= len(chunk)


def copy_range(src: BinaryIO, dest: BinaryIO, offset: int, length: int) -> None:
    """Append ``length`` bytes of ``src`` from ``offset`` to ``dest`` (at its position).

    Uses ``copy_file_range`` where the kernel offers it: the bytes never enter Python
    (and may be shared, not copied, on filesystems with reflinks); else a chunked copy.
    """
    remaining = length
    if hasattr(os, "copy_file_range"):
        src_off = offset
        try:
            while remaining:
                n = os.copy_file_range(
                    src.fileno(), dest.fileno(), min(remaining, 1 << 30), src_off
                )
                if n == 0:
                    raise OSError("source file shrank while being copied")
                src_off += n
                remaining -= n
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            offset = src_off
    src.seek(offset)
    while remaining:
        chunk = src.read(min(remaining, 1 << 20))
        if not chunk:
            raise OSError("source file shrank while being copied")
        dest.write(chunk)
        remaining -= len(chunk)
