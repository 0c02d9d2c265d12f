"""The spool: where incoming bytes land before they are validated and stored.

It lives under the storage root, on the same filesystem as the blobs, so a finished
instance is *renamed* into the blob store rather than copied. A file in the spool is
never visible to any query.

Each process that ingests owns a directory of its own, ``spool/<owner>/``, and holds an
exclusive lock on ``spool/<owner>.lock`` for as long as it lives (:meth:`Spool.claim`).
The lock is released by the kernel however the process ends, ``kill -9`` included, so
any process (a restarted server, ``omipacs verify``) can tell a leftover, whatever its
age, from a file another live process (a second SCP, a web worker) is still receiving:
a directory whose lock can be taken is a leftover.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from omipacs.filemodes import open_private, private_dir

CHUNK = 1 << 20
LOOSE_GRACE_SECONDS = 60.0


class Spool:
    """A directory of in-flight files owned by the archive."""

    def __init__(self, root: Path) -> None:
        self.base = private_dir(Path(root) / "spool")
        self.dir = self.base
        self._lock: int | None = None

    @classmethod
    def claim(cls, root: Path) -> Spool:
        """A spool directory owned by this process until :meth:`release` (or its end)."""
        spool = cls(root)
        name = f"p{os.getpid()}-{uuid.uuid4().hex[:12]}"
        fd = os.open(spool.base / f"{name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        spool._lock = fd
        spool.dir = private_dir(spool.base / name)
        return spool

    def release(self) -> None:
        """Remove this process's spool directory (nothing is in flight any more)."""
        if self._lock is None:
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        Path(f"{self.dir}.lock").unlink(missing_ok=True)
        os.close(self._lock)
        self._lock = None
        self.dir = self.base

    def _loose(self, entry: os.DirEntry[str]) -> bool:
        """A file directly in the spool, not written by an owned spool: a leftover once
        it is a minute old (only unclaimed spools write there, and :meth:`sweep` ages
        those out when this spool is itself unclaimed)."""
        return (
            self.dir != self.base
            and entry.is_file()
            and not entry.name.endswith(".lock")
            and time.time() - entry.stat().st_mtime >= LOOSE_GRACE_SECONDS
        )

    def leftovers(self) -> list[Path]:
        """Files no live process is working on: everything in the directories of ended
        owners, whatever its age, and stale files directly in the spool."""
        found: list[Path] = []
        for entry in os.scandir(self.base):
            path = Path(entry.path)
            if self._loose(entry):
                found.append(path)
            elif entry.is_dir() and path != self.dir and not _owned(path):
                found.extend(p for p in path.rglob("*") if p.is_file())
        return found

    def sweep_leftovers(self) -> int:
        """Remove :meth:`leftovers` and their dead owners' directories; returns how many
        files were removed. Safe while other processes ingest into their own spools."""
        removed = 0
        for entry in os.scandir(self.base):
            path = Path(entry.path)
            if self._loose(entry):
                path.unlink(missing_ok=True)
                removed += 1
            elif entry.is_dir() and path != self.dir:
                lock = _take(path)
                if lock is None:
                    continue
                try:
                    removed += sum(1 for p in path.rglob("*") if p.is_file())
                    shutil.rmtree(path, ignore_errors=True)
                    Path(f"{path}.lock").unlink(missing_ok=True)
                finally:
                    os.close(lock)
        return removed

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


def _take(owner_dir: Path) -> int | None:
    """The owner lock of a spool directory if nobody holds it (its owner is gone)."""
    try:
        fd = os.open(f"{owner_dir}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _owned(owner_dir: Path) -> bool:
    lock = _take(owner_dir)
    if lock is None:
        return True
    os.close(lock)
    return False


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
