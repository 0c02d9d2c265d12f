"""Blobs in an object store (S3, GCS, Azure, ...) through fsspec.

At scale the archive keeps bytes in a bucket and runs stateless workers in front of
it. An object store has no rename, so a finished spool file is uploaded under its
final key in one ``put`` (object stores make a completed upload visible atomically),
and only then is the index row committed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import fsspec


class FsspecBlobStore:
    """Blob store on any fsspec filesystem URL (``s3://bucket/prefix``, ``memory://x``)."""

    def __init__(self, url: str, spool_dir: Path) -> None:
        self.fs: Any
        self.fs, self.prefix = fsspec.core.url_to_fs(url.rstrip("/"))
        self.spool_dir = spool_dir

    def _path(self, key: str) -> str:
        if len(key) != 32 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError("invalid blob key")
        return f"{self.prefix}/{key[:2]}/{key[2:4]}/{key}"

    def put_file(self, src: Path) -> str:
        key = uuid.uuid4().hex
        self.fs.put_file(str(src), self._path(key))
        os.unlink(src)
        return key

    def open(self, key: str) -> BinaryIO:
        return cast(BinaryIO, self.fs.open(self._path(key), "rb"))

    def size(self, key: str) -> int:
        return int(self.fs.size(self._path(key)))

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass

    def keys(self) -> Iterator[tuple[str, float]]:
        if not self.fs.exists(self.prefix):
            return
        for path in self.fs.find(self.prefix):
            name = path.rsplit("/", 1)[-1]
            if len(name) == 32:
                info = self.fs.info(path)
                mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or 0
                yield name, float(mtime.timestamp() if hasattr(mtime, "timestamp") else mtime)

    def local_path(self, key: str) -> Path | None:
        return None
