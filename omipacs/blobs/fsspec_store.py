"""Blobs in an object store (S3, GCS, Azure, ...) through fsspec.

At scale the archive keeps bytes in a bucket and runs stateless workers in front of
it. The rules the filesystem store keeps hold here too, in object-store terms:

- **Durable before indexed.** A finished spool file is streamed to its final key in
  parts of ``upload_block_bytes`` (a multipart upload on S3, a resumable upload on
  GCS), so memory stays bounded whatever the size of the instance. The object becomes
  visible, whole, only when the upload is completed; ``put_file`` returns after that,
  and only then is the index row committed. An upload that fails is aborted, never
  completed with part of the bytes.
- **Orphans are found, not trusted away.** A crash between the upload and the index
  commit leaves an object no row points to; ``omipacs verify`` lists every key with its
  time and reports those past a grace period.
- **Reads fetch what they need.** Blobs are opened with a small read-ahead
  (``read_block_bytes``): a frame of a tomosynthesis object costs one ranged GET of
  that frame's bytes (plus the read-ahead), not the object.

Listings and metadata are asked of the store each time (fsspec's listing cache is
dropped first): other workers, on other machines, write and delete keys too.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

import fsspec

from omipacs.errors import OutOfResources

_KEY_CHARS = frozenset("0123456789abcdef")
_COPY_CHUNK = 1 << 20


def _mtime(info: Mapping[str, Any]) -> float:
    """Modification time of a listed object, whatever the backend calls it."""
    for name in ("mtime", "LastModified", "updated", "created", "timeCreated"):
        value = info.get(name)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


class FsspecBlobStore:
    """Blob store on any fsspec filesystem URL (``s3://bucket/prefix``, ``gs://...``)."""

    def __init__(
        self,
        url: str,
        spool_dir: Path,
        options: Mapping[str, Any] | None = None,
        *,
        upload_block_bytes: int = 16 << 20,
        read_block_bytes: int = 1 << 16,
    ) -> None:
        self.fs: Any
        self.fs, self.prefix = fsspec.core.url_to_fs(url.rstrip("/"), **dict(options or {}))
        self.spool_dir = spool_dir
        self.upload_block_bytes = upload_block_bytes
        self.read_block_bytes = read_block_bytes

    def _path(self, key: str) -> str:
        # Keys are ours, but they come back from the index: check before using one.
        if len(key) != 32 or not set(key) <= _KEY_CHARS:
            raise ValueError("invalid blob key")
        return f"{self.prefix}/{key[:2]}/{key[2:4]}/{key}"

    def put_file(self, src: Path) -> str:
        key = uuid.uuid4().hex
        path = self._path(key)
        out = self.fs.open(path, "wb", block_size=self.upload_block_bytes)
        try:
            with open(src, "rb") as f:
                shutil.copyfileobj(f, out, _COPY_CHUNK)
        except BaseException:
            # Abort the multipart/resumable upload: nothing partial becomes visible.
            out.discard()
            raise
        try:
            out.close()  # completes the upload: the object appears whole, or not at all
        except OSError as exc:
            if "quota" in str(exc).lower():
                raise OutOfResources("object storage quota exceeded") from None
            raise
        os.unlink(src)
        return key

    def open(self, key: str) -> BinaryIO:
        return cast(
            BinaryIO,
            self.fs.open(
                self._path(key),
                "rb",
                block_size=self.read_block_bytes,
                cache_type="readahead",
            ),
        )

    def size(self, key: str) -> int:
        path = self._path(key)
        self.fs.invalidate_cache(path)
        return int(self.fs.size(path))

    def exists(self, key: str) -> bool:
        path = self._path(key)
        self.fs.invalidate_cache(path)
        return bool(self.fs.exists(path))

    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass

    def keys(self) -> Iterator[tuple[str, float]]:
        self.fs.invalidate_cache(self.prefix)
        try:
            listing = self.fs.find(self.prefix, detail=True)
        except FileNotFoundError:
            return
        for path, info in sorted(listing.items()):
            name = path.rsplit("/", 1)[-1]
            if len(name) == 32 and set(name) <= _KEY_CHARS:
                yield name, _mtime(info)

    def local_path(self, key: str) -> Path | None:
        return None
