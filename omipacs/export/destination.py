"""Where a release is written: a folder or a bucket, through fsspec.

The release's bytes are written once and never changed, so what matters is that a file
appears whole or not at all, and that a file seen at its path is finished:

* in a bucket (s3fs, gcsfs) an object becomes visible only when its multipart or
  resumable upload completes; a failed or killed upload leaves nothing at the path;
* in a folder a file is written under a temporary name beside its path and renamed
  when its last byte is written (and, with ``fsync``, synced).

Files stream through in chunks and are hashed as they go (SHA-256), so memory is
bounded by the chunk and the upload part size whatever the file's size, and what was
written is checked against what the index promised before it is made visible.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import mmap
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from omipacs.errors import Forbidden

log = logging.getLogger(__name__)

CHUNK = 4 << 20
"""Bytes read and written per step."""
_HASHERS = ThreadPoolExecutor(8, thread_name_prefix="release-hash")
"""Threads that hash chunks while they are written."""
UPLOAD_PART = 16 << 20
"""Bytes buffered per object-store upload part (S3's minimum part is 5 MiB)."""

Progress = Callable[[int], None]
"""Called with the number of bytes just written."""


class ChecksumMismatch(Exception):
    """What was read does not hash to what the index recorded (the source is damaged)."""


def check_place(
    url: str, allowed_roots: tuple[str, ...], storage_root: Path, *, over_http: bool
) -> None:
    """Refuse a folder destination outside ``[release] allowed_roots`` (docs/releases.md,
    "Where releases may go"): an admin's request must not be able to write anywhere the
    server's user can, and no release goes inside the archive's own storage.

    Raises
    ------
    Forbidden
        The folder is not allowed, with the reason.
    """
    if "://" in url and not url.startswith("file://"):
        return  # a bucket: its credentials decide
    path = os.path.realpath(url.removeprefix("file://"))

    def inside(root: str | Path) -> bool:
        real = os.path.realpath(root)
        return path == real or path.startswith(real.rstrip(os.sep) + os.sep)

    if inside(storage_root):
        raise Forbidden("a release may not be written inside the archive's storage")
    if allowed_roots:
        if not any(inside(root) for root in allowed_roots):
            raise Forbidden("releases may be written only under the folders of "
                            "[release] allowed_roots")
    elif over_http:
        raise Forbidden("a release requested over HTTP goes to a bucket, or to a folder "
                        "under [release] allowed_roots (none is set)")


class RateLimit:
    """At most ``bytes_per_second`` across every transfer of a process (0: no limit),
    so that a release does not take the whole uplink of the archive."""

    def __init__(self, bytes_per_second: int = 0) -> None:
        self.rate = bytes_per_second
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def take(self, n: int) -> None:
        """Wait until ``n`` more bytes may be sent."""
        if self.rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + n / self.rate
        delay = start - now
        if delay > 0:
            time.sleep(delay)


NO_LIMIT = RateLimit()


@dataclass(frozen=True)
class Written:
    """What one copy wrote."""

    bytes: int
    sha256: str


class Destination:
    """A folder or bucket prefix that releases are written under."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.fs: Any
        self.fs, root = fsspec.core.url_to_fs(self.url, **dict(options or {}))
        self.root = str(root).rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)

    def path(self, relative: str) -> str:
        """The full path of ``relative`` under the destination."""
        return f"{self.root}/{relative}"

    # -- writing -----------------------------------------------------------------------

    def copy_stream(
        self,
        src: BinaryIO,
        relative: str,
        *,
        expect_sha256: str | None = None,
        progress: Progress | None = None,
        limit: RateLimit = NO_LIMIT,
    ) -> Written:
        """Stream ``src`` to ``relative``, hashing as it goes; visible only when whole
        and (with ``expect_sha256``) only when it hashes to that."""
        digest = hashlib.sha256()
        size = 0
        hashing: Future[None] | None = None
        with self._writer(relative) as out:
            while chunk := src.read(CHUNK):
                limit.take(len(chunk))
                # Hash this chunk on another core while it is written (hashlib and file
                # writes both release the GIL); the previous chunk's hash is awaited first,
                # so chunks are hashed in order and at most two are held.
                if hashing is not None:
                    hashing.result()
                hashing = _HASHERS.submit(digest.update, chunk)
                out.write(chunk)
                size += len(chunk)
                if progress is not None:
                    progress(len(chunk))
            if hashing is not None:
                hashing.result()
            sha = digest.hexdigest()
            if expect_sha256 is not None and sha != expect_sha256:
                raise ChecksumMismatch(f"{relative}: stored bytes hash to {sha[:12]}…, "
                                       f"the index recorded {expect_sha256[:12]}…")
        return Written(size, sha)

    def copy_local(
        self,
        src: str,
        relative: str,
        *,
        expect_sha256: str | None = None,
        expect_bytes: int | None = None,
        progress: Progress | None = None,
        rehash: bool = True,
    ) -> Written:
        """Copy a local file into a folder destination by the kernel
        (``copy_file_range``, as ``cp`` does; ``sendfile`` where it is missing), with
        the file synced before it is renamed into place.

        ``rehash`` (the default): another thread hashes the source at the same time
        (mapped, so its bytes are not copied once more to be hashed) and the copy
        becomes visible only if it hashes to ``expect_sha256``; the disk flush overlaps
        the hash. Without ``rehash`` only the size is checked against ``expect_bytes``
        and the SHA-256 returned is ``expect_sha256``, the one the index recorded when
        the blob was acknowledged (docs/releases.md, "Checking copies").
        """
        assert self.local
        if not rehash and (expect_sha256 is None or expect_bytes is None):
            raise ValueError("a copy checked by size needs the recorded size and SHA-256")
        hashed: Future[Written] | None = (
            _HASHERS.submit(_hash_path, src, progress) if rehash else None)
        with self._writer(relative) as out, open(src, "rb") as f:
            out.flush()
            copied = _kernel_copy(f, out)
            # Flush to disk while the hash is still being computed: the two overlap
            # instead of one waiting for the other (the writer's own fsync is then free).
            os.fsync(out.fileno())
            if hashed is None:
                assert expect_sha256 is not None
                if copied != expect_bytes:
                    raise ChecksumMismatch(f"{relative}: {copied} bytes stored, the index "
                                           f"recorded {expect_bytes}")
                if progress is not None:
                    progress(copied)
                return Written(copied, expect_sha256)
            found = hashed.result()
            if expect_sha256 is not None and found.sha256 != expect_sha256:
                raise ChecksumMismatch(f"{relative}: stored bytes hash to {found.sha256[:12]}…,"
                                       f" the index recorded {expect_sha256[:12]}…")
            if found.bytes != copied:
                raise ChecksumMismatch(f"{relative}: {copied} bytes copied, {found.bytes} "
                                       "hashed (the source changed while it was copied)")
        return found

    def write_bytes(self, relative: str, data: bytes) -> Written:
        """Write a small file whole (manifests, tables, README)."""
        with self._writer(relative) as out:
            out.write(data)
        return Written(len(data), hashlib.sha256(data).hexdigest())

    def writer(self, relative: str) -> _AtomicWriter:
        """A file to write ``relative`` through, a piece at a time; it appears whole
        when the ``with`` block ends without an error, and not at all otherwise."""
        return _AtomicWriter(self, self.path(relative))

    _writer = writer

    # -- reading -----------------------------------------------------------------------

    def open(self, relative: str) -> BinaryIO:
        """Open a written file for reading (streamed)."""
        if self.local:
            f: BinaryIO = self.fs.open(self.path(relative), "rb")
            return f
        # A plain read-ahead of one chunk: the reads are sequential, and the concurrent
        # prefetching caches of newer gcsfs versions buy nothing here.
        f = self.fs.open(self.path(relative), "rb", block_size=CHUNK, cache_type="readahead")
        return f

    def read_bytes(self, relative: str) -> bytes | None:
        """A small file's bytes, or None when it does not exist."""
        path = self.path(relative)
        self.fs.invalidate_cache(path)
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        return data

    def size(self, relative: str) -> int | None:
        """Size of a finished file, or None when there is none at ``relative``."""
        path = self.path(relative)
        self.fs.invalidate_cache(path)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            return None
        return int(info["size"])

    def hash_file(self, relative: str, progress: Progress | None = None) -> Written | None:
        """Re-read a file and hash it (None: missing)."""
        digest = hashlib.sha256()
        size = 0
        try:
            with self.open(relative) as f:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
        except FileNotFoundError:
            return None
        return Written(size, digest.hexdigest())

    def files(self, relative: str) -> Iterator[str]:
        """Every finished file under ``relative`` (paths relative to it)."""
        base = self.path(relative)
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return
        for path in sorted(found):
            name = str(path)[len(base) + 1 :]
            if not _is_partial(name):
                yield name

    def sweep_partials(self, relative: str) -> int:
        """Remove files a killed writer left under ``relative`` (folders only: an object
        store never shows an unfinished upload; a bucket lifecycle rule should abort
        incomplete multipart uploads). Returns how many were removed."""
        if not self.local:
            return 0
        removed = 0
        for dirpath, _dirs, names in os.walk(self.path(relative)):
            for name in names:
                if _is_partial(name):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
        return removed

    def remove_tree(self, relative: str) -> None:
        """Remove everything under ``relative`` (staging data once a release is out)."""
        path = self.path(relative)
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass


def _kernel_copy(src: Any, out: Any) -> int:
    """All of ``src`` into ``out`` by the kernel, without passing through Python:
    ``copy_file_range``, else ``sendfile``, else a plain chunked copy. Returns the bytes
    copied."""
    size = os.fstat(src.fileno()).st_size
    offset = 0
    for name in ("copy_file_range", "sendfile"):
        call = getattr(os, name, None)
        if call is None:
            continue
        try:
            while offset < size:
                step = min(size - offset, 1 << 30)
                if name == "sendfile":
                    sent = call(out.fileno(), src.fileno(), offset, step)
                else:
                    sent = call(src.fileno(), out.fileno(), step, offset)
                if sent == 0:
                    break
                offset += sent
            return offset
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            log.debug("%s refused (%s); trying the next way", name, exc)
    src.seek(offset)
    out.seek(offset)
    shutil.copyfileobj(src, out, CHUNK)
    out.flush()
    return os.fstat(out.fileno()).st_size


_MAP_STEP = 8 << 20
"""Bytes of a mapped file given to the hash at once (hashlib releases the GIL for it)."""
_MAP_WINDOW = 64 << 20
"""Bytes of a file mapped at once: unmapped before the next, so the hashed pages do not
count in the process's resident size (a 1 GiB file stays at one window)."""


def _hash_path(path: str, progress: Progress | None) -> Written:
    """SHA-256 of a local file, read through a memory map, one window at a time: the
    page cache's pages are hashed where they are, not copied into a buffer first."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for offset in range(0, size, _MAP_WINDOW):
            length = min(_MAP_WINDOW, size - offset)
            with mmap.mmap(f.fileno(), length, offset=offset, prot=mmap.PROT_READ) as mapped:
                if hasattr(mapped, "madvise"):
                    mapped.madvise(mmap.MADV_SEQUENTIAL)
                view = memoryview(mapped)
                try:
                    for start in range(0, length, _MAP_STEP):
                        part = view[start : start + _MAP_STEP]
                        digest.update(part)
                        part.release()
                        if progress is not None:
                            progress(min(_MAP_STEP, length - start))
                finally:
                    view.release()
    return Written(size, digest.hexdigest())


_PARTIAL = ".part-"


def _is_partial(name: str) -> bool:
    return _PARTIAL in name.rsplit("/", 1)[-1]


class _AtomicWriter:
    """A context manager giving a writable file that becomes visible only on success."""

    def __init__(self, dest: Destination, path: str) -> None:
        self.dest = dest
        self.path = path
        self._tmp = ""
        self._out: Any = None

    def __enter__(self) -> Any:
        fs = self.dest.fs
        if self.dest.local:
            parent = os.path.dirname(self.path)
            os.makedirs(parent, exist_ok=True)
            self._tmp = f"{self.path}{_PARTIAL}{uuid.uuid4().hex[:12]}"
            self._out = open(self._tmp, "wb")  # noqa: SIM115 (closed in __exit__)
        else:
            self._out = fs.open(self.path, "wb", block_size=UPLOAD_PART)
        return self._out

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        out = self._out
        if self.dest.local:
            if exc_type is None:
                out.flush()
                os.fsync(out.fileno())
                out.close()
                os.replace(self._tmp, self.path)
            else:
                out.close()
                try:
                    os.unlink(self._tmp)
                except FileNotFoundError:
                    pass
            return
        if exc_type is None:
            out.close()  # completes the upload: the object appears whole
        else:
            # Abort the multipart/resumable upload: nothing partial becomes visible.
            out.discard()
