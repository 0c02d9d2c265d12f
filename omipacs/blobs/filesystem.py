"""Blobs as files under ``<root>/blobs/``, written durably.

A blob is written as a temporary file on the same filesystem, fsynced, renamed into
place atomically, and its directory fsynced (the rename itself must be durable), all
before the index row is committed and the sender acknowledged. Keys are random UUIDs
sharded two levels deep so no directory grows past a few thousand entries at 7 M
instances.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from omipacs.errors import OutOfResources
from omipacs.filemodes import PRIVATE_FILE, private_dir

_KEY_CHARS = frozenset("0123456789abcdef")


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename or unlink inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemBlobStore:
    """Blob store on a local (or network-mounted POSIX) filesystem."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = private_dir(Path(root) / "blobs")
        self.fsync = fsync

    def _path(self, key: str) -> Path:
        # Keys are ours, but they come back from the index: check before touching disk.
        if len(key) != 32 or not set(key) <= _KEY_CHARS:
            raise ValueError("invalid blob key")
        return self.root / key[:2] / key[2:4] / key

    def put_file(self, src: Path) -> str:
        key = uuid.uuid4().hex
        dest = self._path(key)
        try:
            if not dest.parent.is_dir():
                private_dir(dest.parent)
            # Owner-only whoever wrote the file and whatever the process umask.
            if self.fsync:
                with open(src, "rb+") as f:
                    os.fchmod(f.fileno(), PRIVATE_FILE)
                    os.fsync(f.fileno())
            else:
                os.chmod(src, PRIVATE_FILE)
            try:
                os.replace(src, dest)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                # Different filesystem: copy to a temp name beside dest, then rename.
                tmp = dest.with_suffix(".part")
                shutil.copyfile(src, tmp)
                os.chmod(tmp, PRIVATE_FILE)
                if self.fsync:
                    with open(tmp, "rb+") as f:
                        os.fsync(f.fileno())
                os.replace(tmp, dest)
                os.unlink(src)
            if self.fsync:
                fsync_dir(dest.parent)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OutOfResources("storage is full") from None
            raise
        return key

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def keys(self) -> Iterator[tuple[str, float]]:
        for first in sorted(self.root.iterdir()):
            if not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                if not second.is_dir():
                    continue
                for entry in os.scandir(second):
                    if entry.is_file():
                        yield entry.name, entry.stat().st_mtime

    def stray_files(self) -> Iterator[Path]:
        """Files under the blob root that are not blobs (``.part`` leftovers, junk)."""
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                p = Path(dirpath) / name
                if (
                    len(name) != 32
                    or not set(name) <= _KEY_CHARS
                    or p.parent.parent.parent != self.root
                ):
                    yield p

    def local_path(self, key: str) -> Path | None:
        return self._path(key)
