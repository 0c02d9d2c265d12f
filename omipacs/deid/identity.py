"""The identity map: keyed hash to client ID, kept apart from the research index.

The map lets an authorised person *at the archive* answer "which client is this woman?"
(recompute the keyed hash of her NHS number with the archive's key, look it up) and lets
operators see which sites a client came from and whether she is linked by NHS number.
It also binds each study to one client: the keyed hashes of (site, Study Instance UID)
and (site, Accession Number) map to the client the study was first filed under, so an
object of that study without an NHS number (a CAD SR carrying only a RIS number) joins
the same client and date offset (:meth:`IdentityMap.bind_study`).
It holds no NHS numbers, names or local IDs, only the keyed hashes, and it is a separate
SQLite file (``storage/identity.sqlite`` by default, mode 0600) that no served endpoint
opens: the research index and everything exported from it know only the client ID.

Several ingest threads (C-STORE associations, STOW requests) record clients at once; one
connection guarded by a lock serialises them within the process, and WAL mode with a
busy timeout covers other processes (a CLI import beside a running server).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from omipacs.deid.pseudonyms import ClientPseudonym
from omipacs.errors import OmipacsError, OutOfResources

if TYPE_CHECKING:
    from omipacs.config import Settings

logger = logging.getLogger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS client (
    key_hash   TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL UNIQUE,
    linked     INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS client_site (
    key_hash   TEXT NOT NULL REFERENCES client (key_hash),
    site       TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (key_hash, site)
);
CREATE TABLE IF NOT EXISTS study_client (
    study_key  TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    linked     INTEGER NOT NULL,
    first_seen TEXT NOT NULL
);
"""


def identity_path(settings: Settings) -> Path:
    """``[deid] identity_db``, or ``identity.sqlite`` under the storage root."""
    return settings.deid.identity_db or settings.storage.root / "identity.sqlite"


@dataclass(frozen=True)
class IdentityRecord:
    """What the map knows about one client."""

    key_hash: str
    client_id: str
    linked: bool
    first_seen: dt.datetime
    last_seen: dt.datetime
    sites: tuple[str, ...]


class IdentityMap:
    """SQLite store of keyed hash to client ID, linked flag, first/last seen and sites.

    Parameters
    ----------
    path
        The SQLite file; created (mode 0600, parent directories too) if missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            with self._conn:
                self._conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OutOfResources(f"identity map {path} cannot be opened: {exc}") from None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> IdentityMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, pseudonym: ClientPseudonym, site: str) -> None:
        """Record that ``pseudonym`` was seen from ``site`` now.

        Raises
        ------
        OmipacsError
            Two different keyed hashes gave the same client ID (a 60-bit collision); the
            instance must not be filed under another woman's client.
        OutOfResources
            The store cannot be written (disk full, locked for too long).
        """
        if not pseudonym.key_hash:
            raise ValueError("a pseudonym without its key hash cannot be recorded")
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self._lock:
            try:
                with self._conn:
                    row = self._conn.execute(
                        "SELECT key_hash FROM client WHERE client_id = ?", (pseudonym.client_id,)
                    ).fetchone()
                    if row is not None and row[0] != pseudonym.key_hash:
                        raise OmipacsError("client pseudonym collision; instance not filed")
                    self._conn.execute(
                        "INSERT INTO client (key_hash, client_id, linked, first_seen, last_seen)"
                        " VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (key_hash) DO UPDATE SET last_seen = excluded.last_seen",
                        (pseudonym.key_hash, pseudonym.client_id, int(pseudonym.linked), now, now),
                    )
                    self._conn.execute(
                        "INSERT OR IGNORE INTO client_site (key_hash, site, first_seen)"
                        " VALUES (?, ?, ?)",
                        (pseudonym.key_hash, site, now),
                    )
            except sqlite3.Error as exc:
                logger.error("identity map %s cannot be written: %s", self.path, exc)
                raise OutOfResources("identity map cannot be written") from None

    def study_clients(self, study_keys: Sequence[str]) -> set[ClientPseudonym]:
        """The clients the studies named by ``study_keys`` are bound to (usually 0 or 1)."""
        if not study_keys:
            return set()
        marks = ",".join("?" for _ in study_keys)
        with self._lock:
            rows = self._conn.execute(
                "SELECT client_id, linked, key_hash FROM study_client"
                f" WHERE study_key IN ({marks})",
                tuple(study_keys),
            ).fetchall()
        return {ClientPseudonym(r[0], bool(r[1]), r[2]) for r in rows}

    def bind_study(
        self, study_keys: Sequence[str], pseudonym: ClientPseudonym
    ) -> set[ClientPseudonym]:
        """Bind the study to ``pseudonym`` unless it is bound already; the clients it has.

        Atomic: of two objects of a new study ingested at once, the first binds it and
        the second is told the first one's client. A result with more than one client
        (the Study UID bound to one, the accession to another) is a conflict the caller
        must not guess through.
        """
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        marks = ",".join("?" for _ in study_keys)
        with self._lock:
            try:
                with self._conn:
                    self._conn.executemany(
                        "INSERT OR IGNORE INTO study_client"
                        " (study_key, key_hash, client_id, linked, first_seen)"
                        " VALUES (?, ?, ?, ?, ?)",
                        [(k, pseudonym.key_hash, pseudonym.client_id, int(pseudonym.linked), now)
                         for k in study_keys],
                    )
                    rows = self._conn.execute(
                        "SELECT client_id, linked, key_hash FROM study_client"
                        f" WHERE study_key IN ({marks})",
                        tuple(study_keys),
                    ).fetchall()
            except sqlite3.Error as exc:
                logger.error("identity map %s cannot be written: %s", self.path, exc)
                raise OutOfResources("identity map cannot be written") from None
        return {ClientPseudonym(r[0], bool(r[1]), r[2]) for r in rows}

    def lookup(self, key_hash: str) -> IdentityRecord | None:
        """The record for ``key_hash`` (see ``ClientPseudonym.key_hash``), or ``None``."""
        return self._fetch("key_hash", key_hash)

    def lookup_client(self, client_id: str) -> IdentityRecord | None:
        """The record for a client ID, or ``None``."""
        return self._fetch("client_id", client_id)

    def _fetch(self, column: str, value: str) -> IdentityRecord | None:
        assert column in ("key_hash", "client_id")
        with self._lock:
            row = self._conn.execute(
                "SELECT key_hash, client_id, linked, first_seen, last_seen FROM client"
                f" WHERE {column} = ?",
                (value,),
            ).fetchone()
            if row is None:
                return None
            sites = self._conn.execute(
                "SELECT site FROM client_site WHERE key_hash = ? ORDER BY site", (row[0],)
            ).fetchall()
        return IdentityRecord(
            key_hash=row[0],
            client_id=row[1],
            linked=bool(row[2]),
            first_seen=dt.datetime.fromisoformat(row[3]),
            last_seen=dt.datetime.fromisoformat(row[4]),
            sites=tuple(s[0] for s in sites),
        )

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._conn.execute("SELECT count(*) FROM client").fetchone()
        return int(count)
