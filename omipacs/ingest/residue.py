"""No identifiable residue: what the archive keeps of received bytes it did not store.

Everything that arrives is identifiable until it has been de-identified, so bytes that
were not stored must not linger:

* a C-STORE whose transfer fails or is aborted leaves the partial data set in the spool;
  the DIMSE layer deletes it as soon as the connection closes (:func:`discard_partial`);
* anything left in the spool of a process that has ended (``kill -9`` mid-ingest) is
  swept at start and on every sweep, whatever its age (its owner lock is free, see
  :mod:`omipacs.blobs.spool`); in this process's own spool, files older than
  ``[deid] spool_max_age_seconds`` (older than any transfer still in progress) are swept
  every ``[deid] residue_sweep_seconds`` by ``omipacs serve``;
* quarantined originals, which *are* identifiable (they wait for a person), are deleted
  after ``[deid] quarantine_retention_days`` by the same sweep.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from omipacs.blobs.spool import Spool
from omipacs.config import DeidSettings
from omipacs.ingest.quarantine import Quarantine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Swept:
    """What one sweep removed (counts only)."""

    spool_files: int
    quarantine_entries: int


def sweep_residue(
    spool: Spool, quarantine: Quarantine, deid: DeidSettings, *, spool_max_age: float | None = None
) -> Swept:
    """Delete stale spool files and quarantine entries past their retention."""
    age = deid.spool_max_age_seconds if spool_max_age is None else spool_max_age
    swept = Swept(
        spool.sweep_leftovers() + spool.sweep(older_than=age),
        quarantine.purge_expired(deid.quarantine_retention_days * 86400.0),
    )
    if swept.spool_files or swept.quarantine_entries:
        log.info(
            "removed %d stale spool files and %d quarantine entries past retention",
            swept.spool_files, swept.quarantine_entries,
        )
    return swept


def discard_partial(spool: Spool, path: Path | str | None) -> bool:
    """Delete the spool file of a transfer that never completed; True if one was deleted.

    Only files inside the spool are touched, whatever path the caller passes.
    """
    if not path:
        return False
    target = Path(path)
    try:
        if target.resolve().parent != spool.dir.resolve():
            return False
        target.unlink()
    except FileNotFoundError:
        return False
    log.info("deleted the spool file of an incomplete C-STORE transfer")
    return True
