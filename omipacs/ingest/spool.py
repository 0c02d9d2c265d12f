"""The spool: where incoming bytes land before they are validated and stored.

It lives under the storage root, on the same filesystem as the blobs, so a finished
instance is *renamed* into the blob store rather than copied. A file in the spool is
never visible to any query; after a crash the sweeper removes what is left.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from omipacs.filemodes import open_private, private_dir

CHUNK = 1 << 20


class Spool:
    """A directory of in-flight files owned by the archive."""

    def __init__(self, root: Path) -> None:
        self.dir = private_dir(Path(root) / "spool")

    def new_path(self, suffix: str = ".dcm") -> Path:
        """A fresh, unused path in the spool."""
        return self.dir / f"{uuid.uuid4().hex}{suffix}"

    def copy_in(self, src: BinaryIO) -> Path:
        """Copy a stream into the spool, zeroing the 128-byte preamble on the way.

        The preamble can hold an executable header (CVE-2019-11687) or JSON aimed at
        a config parser (docs/architecture.md, "Hostile input"); the archive never keeps it.
        """
        dest = self.new_path()
        done = 0
        with open(open_private(dest), "wb") as out:
            while chunk := src.read(CHUNK):
                if done < 128:
                    keep = max(0, 128 - done)
                    chunk = b"\x00" * min(keep, len(chunk)) + chunk[keep:]
                out.write(chunk)
                done += len(chunk)
        return dest

    def free_bytes(self) -> int:
        """Bytes available to the archive on the spool's filesystem (the storage root's,
        which holds the blobs and the default index too)."""
        st = os.statvfs(self.dir)
        return st.f_bavail * st.f_frsize

    def sweep(self, older_than: float = 3600.0) -> int:
        """Delete spool files older than ``older_than`` seconds; returns how many."""
        now = time.time()
        removed = 0
        for entry in os.scandir(self.dir):
            try:
                if entry.is_file() and now - entry.stat().st_mtime >= older_than:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def zero_preamble(path: Path) -> None:
    """Overwrite a spooled file's preamble with zeros in place (if it is not already)."""
    with open(path, "r+b") as f:
        head = f.read(128)
        if head.strip(b"\x00"):
            f.seek(0)
            f.write(b"\x00" * len(head))


def hash_stream(f: BinaryIO, start: int = 0) -> tuple[str, int]:
    """SHA-256 of a stream from ``start`` to its end, and the number of bytes hashed."""
    digest = hashlib.sha256()
    f.seek(start)
    n = 0
    while chunk := f.read(CHUNK):
        digest.update(chunk)
        n += len(chunk)
    return digest.hexdigest(), n


def hash_file(path: Path, start: int = 0) -> tuple[str, int]:
    """SHA-256 of a file (from ``start``) in one streaming pass."""
    with open(path, "rb") as f:
        return hash_stream(f, start)
