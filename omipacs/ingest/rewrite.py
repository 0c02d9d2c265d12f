"""Write a new file from a changed header plus the original pixel bytes, hashing it.

De-identification changes the header but never the pixels (unless pixel cleaning
applies), so the pixel data element is copied byte for byte from the spooled file: the
header is re-encoded, the (possibly gigabyte-sized) pixel element is streamed, then any
trailing elements are encoded. Memory use is one copy buffer, whatever the image size.

The SHA-256 the index records is computed from the very buffers written, so the new
file is never read back to be hashed: each chunk of pixel bytes is read once, cleaned in
place where its words need it, hashed and written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info

from omipacs.dicom.parse import ParsedFile

CHUNK = 1 << 20


class PixelWordCleaner(Protocol):
    """Cleans native pixel words chunk by chunk (overlay bits hidden in unused bits)."""

    @property
    def word_bytes(self) -> int: ...

    def clean(self, chunk: memoryview) -> None:
        """Clean whole words of ``chunk`` in place (a trailing partial word is kept)."""


@dataclass(frozen=True)
class Written:
    """What :func:`rewrite` wrote: the file's SHA-256 (hex) and size."""

    sha256: str
    size: int


class _HashingWriter:
    """Appends to a file and hashes exactly what it appends."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.digest.update(data)
        self.raw.write(data)
        self.size += len(data)

    def encoded(self, ds: Dataset, implicit_vr: bool) -> None:
        """Append ``ds`` encoded little endian (explicit or implicit VR)."""
        buf = DicomBytesIO()
        buf.is_little_endian = True
        buf.is_implicit_VR = implicit_vr
        write_dataset(buf, ds)
        self.write(buf.getvalue())

    def copy(self, src: BinaryIO, offset: int, length: int,
             cleaner: PixelWordCleaner | None = None) -> None:
        """Append ``length`` bytes of ``src`` from ``offset``, word-aligned chunks cleaned."""
        size = CHUNK if cleaner is None else CHUNK - CHUNK % cleaner.word_bytes
        buf = bytearray(size)
        view = memoryview(buf)
        src.seek(offset)
        remaining = length
        while remaining:
            n = src.readinto(view[: min(remaining, size)])  # type: ignore[attr-defined]
            if not n:
                raise OSError("source file shrank while being copied")
            if cleaner is not None:
                cleaner.clean(view[:n])
            self.write(view[:n])
            remaining -= n


def rewrite(
    parsed: ParsedFile,
    meta: FileMetaDataset,
    header: Dataset,
    dest: Path,
    pixel_words: PixelWordCleaner | None = None,
) -> Written:
    """Write ``dest``: zero preamble, ``meta``, ``header`` and the source's pixel bytes.

    With ``pixel_words``, a native pixel value is streamed through it instead of being
    copied verbatim (encapsulated pixel data is always copied). Returns the SHA-256 and
    size of everything written, computed on the way.
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
        out = _HashingWriter(raw)
        head = DicomBytesIO()
        head.write(b"\x00" * 128 + b"DICM")
        head.is_little_endian = True
        head.is_implicit_VR = False
        write_file_meta_info(head, meta, enforce_standard=True)
        out.write(head.getvalue())
        out.encoded(before, parsed.is_implicit_vr)
        if pixel is not None:
            with open(parsed.path, "rb") as src:
                if pixel_words is not None and pixel.value is not None and not pixel.encapsulated:
                    start = pixel.value.offset
                    end = start + pixel.value.length
                    out.copy(src, pixel.element_offset, start - pixel.element_offset)
                    out.copy(src, start, end - start, pixel_words)
                    out.copy(src, end, pixel.element_end - end)
                else:
                    out.copy(src, pixel.element_offset, pixel.element_end - pixel.element_offset)
            if len(after):
                out.encoded(after, parsed.is_implicit_vr)
        return Written(out.digest.hexdigest(), out.size)
