"""One copier per batch: a claim held while a batch is copied, released by death.

Two runs of ``omipacs release create`` on the same unfinished release (a resume started
twice, a REST request and a command line), or a run beside ``release worker`` processes,
would otherwise copy the same batch at once. Before it copies a batch, a process takes
the batch's claim without waiting; if another holds it, it leaves the batch to that one
and comes back only if the batch is still not done when the claim is gone.

A claim must vanish with its holder, even after ``kill -9``, or a dead run would block
the resume that the journal exists for. So it is not a row in the index (which would need
a lease and a clock) but a lock the operating system or the database drops with the
process:

* PostgreSQL: a session advisory lock on ``(release, batch)``, held on a connection of
  its own for the length of the copy (workers on many machines share it);
* SQLite (one machine): ``flock`` on a file ``release-claims/<release>.<batch>.lock``
  under the storage root.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text

from omipacs.services import Services


@contextlib.contextmanager
def claim(services: Services, release_pk: int, batch: int) -> Iterator[bool]:
    """Try to claim a batch: yields True while this process holds it, False when
    another does (then do nothing with it)."""
    if services.engine.dialect.name == "postgresql":
        with services.engine.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:r, :b)"),
                                    {"r": release_pk, "b": batch}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:r, :b)"),
                                 {"r": release_pk, "b": batch})
                    conn.commit()
        return
    folder = Path(services.settings.storage.root) / "release-claims"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{release_pk}.{batch}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def forget(services: Services, release_pk: int) -> None:
    """Remove a complete release's claim files (SQLite; advisory locks leave nothing)."""
    folder = Path(services.settings.storage.root) / "release-claims"
    for path in folder.glob(f"{release_pk}.*.lock"):
        path.unlink(missing_ok=True)
