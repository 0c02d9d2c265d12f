"""Compare the index with the stored bytes, and optionally repair.

The index is the truth for queries and the blob store for bytes; after a crash or a
disk fault they can disagree in three ways (dcm4chee's OBJECT_CHECKSUM policy):

* **missing**: an index row whose blob is gone or has the wrong size;
* **corrupt**: a blob whose SHA-256 differs from the one recorded before the ack;
* **orphan**: a blob (or spool file) with no index row: the crash hit between the
  rename and the index commit, so the sender was never acknowledged.

Repair removes orphans and leftover spool files, and takes missing or corrupt instances
out of the index (moving corrupt bytes aside to ``corrupt/``) so no query advertises
bytes the archive cannot serve; the report lists their UIDs so they can be re-sent.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from omipacs.blobs.filesystem import FilesystemBlobStore
from omipacs.filemodes import private_dir
from omipacs.index import repository
from omipacs.index.models import Instance
from omipacs.services import Services


@dataclass
class VerifyReport:
    """What ``verify`` found (and, with repair, did)."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    """SOP Instance UIDs whose bytes are gone."""
    corrupt: list[str] = field(default_factory=list)
    """SOP Instance UIDs whose bytes fail the checksum."""
    orphans: list[str] = field(default_factory=list)
    """Blob keys with no index row."""
    spool_leftovers: int = 0
    repaired: bool = False

    @property
    def ok(self) -> bool:
        """True when index and bytes agree."""
        return not (self.missing or self.corrupt or self.orphans or self.spool_leftovers)


def _sha256(store: Services, key: str) -> str:
    h = hashlib.sha256()
    with store.blobs.open(key) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify(
    services: Services,
    *,
    repair: bool = False,
    checksums: bool = True,
    grace_seconds: float = 600.0,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check every indexed instance and every stored blob.

    Orphan blobs younger than ``grace_seconds`` are left alone: they may belong to an
    ingest in flight in a running server. Spool files are reported at any age when the
    process that received them has ended (see :mod:`omipacs.blobs.spool`); those of a
    live process are in flight and never reported.
    """
    report = VerifyReport()
    known: set[str] = set()
    bad: list[tuple[int, str, str]] = []
    with services.sessions() as session:
        rows = session.execute(
            select(
                Instance.pk,
                Instance.sop_instance_uid,
                Instance.blob_key,
                Instance.size_bytes,
                Instance.sha256,
            )
        )
        for pk, uid, key, size, sha in rows:
            known.add(key)
            report.checked += 1
            if not services.blobs.exists(key) or services.blobs.size(key) != size:
                report.missing.append(uid)
                bad.append((pk, uid, key))
            elif checksums and _sha256(services, key) != sha:
                report.corrupt.append(uid)
                bad.append((pk, uid, key))
            if progress:
                progress(1)
    now = time.time()
    for key, mtime in services.blobs.keys():
        if key not in known and now - mtime >= grace_seconds:
            report.orphans.append(key)
    # Spool files are leftovers whatever their age once no live process owns them.
    spool_files = services.spool.leftovers()
    report.spool_leftovers = len(spool_files)
    if repair:
        _repair(services, report, bad, spool_files)
    return report


def _repair(
    services: Services,
    report: VerifyReport,
    bad: list[tuple[int, str, str]],
    spool_files: list[Path],
) -> None:
    for key in report.orphans:
        services.blobs.delete(key)
    services.spool.sweep_leftovers()
    if isinstance(services.blobs, FilesystemBlobStore):
        for stray in list(services.blobs.stray_files()):
            stray.unlink(missing_ok=True)
    corrupt_dir = Path(services.settings.storage.root) / "corrupt"
    with services.write_sessions.begin() as session:
        for pk, uid, key in bad:
            if uid in report.corrupt:
                local = services.blobs.local_path(key)
                if local is not None and local.exists():
                    private_dir(corrupt_dir)  # owner-only, like the blobs
                    shutil.move(str(local), corrupt_dir / key)
                else:
                    services.blobs.delete(key)
            repository.delete_instance(session, pk)
    report.repaired = True
