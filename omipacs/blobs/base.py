"""The blob store interface: opaque keys in, bytes out.

The index is the truth for queries; the blob store is the truth for bytes. Keys are
made by the store (never from a UID or any received value), so no request can steer a
write outside the store (docs/architecture.md, "Blobs and keys").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


@runtime_checkable
class BlobStore(Protocol):
    """Where instance bytes live. Implementations: filesystem, fsspec object stores."""

    def put_file(self, src: Path) -> str:
        """Move (or upload) the finished local file ``src`` into the store durably.

        Returns the new opaque key. When this returns, the bytes survive a crash.
        ``src`` is consumed (moved or deleted).
        """
        ...

    def open(self, key: str) -> BinaryIO:
        """Open a stored blob for reading (seekable)."""
        ...

    def size(self, key: str) -> int:
        """Size in bytes of a stored blob."""
        ...

    def exists(self, key: str) -> bool:
        """True if the key has bytes."""
        ...

    def delete(self, key: str) -> None:
        """Remove a blob (no error if it is already gone)."""
        ...

    def keys(self) -> Iterator[tuple[str, float]]:
        """Every stored key with its modification time (for verify and orphan sweeps)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A local filesystem path for the blob if there is one (lets callers sendfile)."""
        ...
