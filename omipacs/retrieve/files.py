"""A stored instance as a local file, for senders that stream from a path.

DIMSE C-STORE sub-operations (C-MOVE, C-GET, ``omipacs send``) send the stored bytes
as they are, read from a file a chunk at a time. On the filesystem store that is the
blob itself; on an object store the blob is first copied, streaming, into the spool and
the copy is removed once sent. Either way the peer receives the bytes the archive
acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omipacs.blobs.base import BlobStore
from omipacs.blobs.spool import Spool


@contextmanager
def local_file(blobs: BlobStore, spool: Spool, key: str) -> Iterator[Path]:
    """A path holding the bytes of blob ``key`` for the duration of the block."""
    path = blobs.local_path(key)
    if path is not None:
        yield path
        return
    with blobs.open(key) as src:
        copy = spool.copy_in(src)
    try:
        yield copy
    finally:
        copy.unlink(missing_ok=True)
