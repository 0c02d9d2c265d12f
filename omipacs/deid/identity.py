"""The identity map: keyed hash to client ID, kept apart from the research index.

The map lets an authorised person *at the archive* answer "which client is this woman?"
(recompute the keyed hash of her NHS number with the archive's key, look it up) and lets
operators see which sites a client came from and whether she is linked by NHS number.
It also binds each study to one client: the keyed hashes of (site, Study Instance UID)
and (site, Accession Number) map to the client the study was first filed under, so an
object of that study without an NHS number (a CAD SR carrying only a RIS number) joins
the same client and date offset (:meth:`IdentityMap.bind_study`).
It holds no NHS numbers, names or local IDs, only the keyed hashes, and it is a database
of its own that no served endpoint opens: the research index and everything exported
from it know only the client ID.

Where it lives is ``[deid] identity_url``: a PostgreSQL database (its own, never the
research index) that every ingesting worker on every machine shares, so that two
machines seeing the same woman or the same study for the first time at the same moment
agree. Without it, it is a SQLite file (``storage/identity.sqlite`` or ``[deid]
identity_db``, mode 0600), right for the single-machine install.

Agreement under concurrency comes from the database, not from a lock in this process:
every write is ``INSERT … ON CONFLICT`` on the key, so of two first sightings one row is
written and both read it back; a transaction the server aborts (a deadlock, a
serialisation failure) is retried.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from omipacs.deid.pseudonyms import ClientPseudonym
from omipacs.errors import ConfigurationError, OmipacsError, OutOfResources
from omipacs.index.db import checkpoint, make_engine

if TYPE_CHECKING:
    from omipacs.config import Settings

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_RETRIES: Final = 5
"""Attempts at a transaction the database aborted to resolve a conflict (SQLSTATE 40xxx)."""
_SCHEMA_LOCK: Final = 0x6F6D6964
"""PostgreSQL advisory lock key held while creating the tables (workers start at once)."""

_metadata = sa.MetaData()
client_table: Final = sa.Table(
    "client",
    _metadata,
    sa.Column("key_hash", sa.Text, primary_key=True),
    sa.Column("client_id", sa.Text, nullable=False, unique=True),
    sa.Column("linked", sa.Integer, nullable=False),
    sa.Column("first_seen", sa.Text, nullable=False),
    sa.Column("last_seen", sa.Text, nullable=False),
)
client_site_table: Final = sa.Table(
    "client_site",
    _metadata,
    sa.Column("key_hash", sa.Text, sa.ForeignKey("client.key_hash"), primary_key=True),
    sa.Column("site", sa.Text, primary_key=True),
    sa.Column("first_seen", sa.Text, nullable=False),
)
study_client_table: Final = sa.Table(
    "study_client",
    _metadata,
    sa.Column("study_key", sa.Text, primary_key=True),
    sa.Column("key_hash", sa.Text, nullable=False),
    sa.Column("client_id", sa.Text, nullable=False),
    sa.Column("linked", sa.Integer, nullable=False),
    sa.Column("first_seen", sa.Text, nullable=False),
)


def identity_path(settings: Settings) -> Path:
    """``[deid] identity_db``, or ``identity.sqlite`` under the storage root."""
    return settings.deid.identity_db or settings.storage.root / "identity.sqlite"


def identity_url(settings: Settings) -> str:
    """``[deid] identity_url``, or the SQLite file of :func:`identity_path`.

    Raises
    ------
    ConfigurationError
        The URL names the research index: the map would then be readable by everything
        that reads the index, which is exactly what keeping it apart prevents.
    """
    url = settings.deid.identity_url
    if not url:
        return f"sqlite:///{identity_path(settings)}"
    if _same_database(url, settings.database_url):
        raise ConfigurationError(
            "deid.identity_url names the research index ([database] url); "
            "the identity map needs a database of its own"
        )
    return url


def _same_database(a: str, b: str) -> bool:
    try:
        ua, ub = sa.make_url(a), sa.make_url(b)
    except sa.exc.ArgumentError:
        raise ConfigurationError(f"deid.identity_url: {a!r} is not a database URL") from None

    def where(u: sa.URL) -> tuple[object, ...]:
        backend = u.get_backend_name()
        port = u.port or (5432 if backend == "postgresql" else None)
        return backend, (u.host or "").lower(), port, u.database

    return where(ua) == where(ub)


def open_identity_map(settings: Settings) -> IdentityMap:
    """The identity map ``settings`` name (see :func:`identity_url`)."""
    return IdentityMap(identity_url(settings))


@dataclass(frozen=True)
class IdentityRecord:
    """What the map knows about one client."""

    key_hash: str
    client_id: str
    linked: bool
    first_seen: dt.datetime
    last_seen: dt.datetime
    sites: tuple[str, ...]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class IdentityMap:
    """Keyed hash to client ID, linked flag, first/last seen and sites; study bindings.

    Parameters
    ----------
    where
        A SQLAlchemy database URL (``postgresql+psycopg://…/identity``), or the path of a
        SQLite file, created (mode 0600, parent directories 0700) if missing.
    """

    def __init__(self, where: Path | str) -> None:
        url = where if isinstance(where, str) else f"sqlite:///{where}"
        self.url = url
        self._shown = sa.make_url(url).render_as_string(hide_password=True)
        self._sqlite = url.startswith("sqlite")
        self._insert: Callable[[sa.Table], Any] = (
            sqlite.insert if self._sqlite else postgresql.insert
        )
        try:
            self._engine = make_engine(url, pool_size=4)
            self._create_schema()
        except (OSError, sa.exc.SQLAlchemyError) as exc:
            logger.error("identity map %s cannot be opened: %s", self._shown, exc)
            raise OutOfResources("identity map cannot be opened") from None

    def _create_schema(self) -> None:
        with self._engine.connect().execution_options(omipacs_write=True) as conn:
            with conn.begin():
                if not self._sqlite:
                    # CREATE TABLE races on PostgreSQL's catalogue; one creator at a time.
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
                _metadata.create_all(conn, checkfirst=True)

    def close(self) -> None:
        """Close the connections."""
        self._engine.dispose()

    def __enter__(self) -> IdentityMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, work: Callable[[sa.Connection], _T]) -> _T:
        """Run ``work`` in one write transaction, retried when the server aborts it."""
        for attempt in range(_RETRIES):
            try:
                with self._engine.connect().execution_options(omipacs_write=True) as conn:
                    with conn.begin():
                        return work(conn)
            except sa.exc.DBAPIError as exc:
                state = str(getattr(exc.orig, "sqlstate", "") or "")
                if state.startswith("40") and attempt < _RETRIES - 1:
                    time.sleep(0.01 * (attempt + 1))
                    continue
                if isinstance(exc, sa.exc.IntegrityError):
                    raise
                logger.error("identity map %s cannot be written: %s", self._shown, exc)
                raise OutOfResources("identity map cannot be written") from None
        raise AssertionError("unreachable")  # pragma: no cover

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
        now = _now()
        if self._recorded(pseudonym, site, now):
            return
        upsert = self._insert(client_table).values(
            key_hash=pseudonym.key_hash, client_id=pseudonym.client_id,
            linked=int(pseudonym.linked), first_seen=now, last_seen=now,
        )
        # Only a later second changes the row: objects of one client arriving together
        # do not each rewrite (and fsync) it.
        upsert = upsert.on_conflict_do_update(
            index_elements=["key_hash"],
            set_={"last_seen": upsert.excluded.last_seen},
            where=client_table.c.last_seen < upsert.excluded.last_seen,
        )
        site_row = self._insert(client_site_table).values(
            key_hash=pseudonym.key_hash, site=site, first_seen=now
        ).on_conflict_do_nothing()

        def work(conn: sa.Connection) -> None:
            owner = conn.execute(
                sa.select(client_table.c.key_hash).where(
                    client_table.c.client_id == pseudonym.client_id)
            ).scalar_one_or_none()
            if owner is not None and owner != pseudonym.key_hash:
                raise OmipacsError("client pseudonym collision; instance not filed")
            conn.execute(upsert)
            conn.execute(site_row)

        try:
            self._write(work)
        except sa.exc.IntegrityError:
            # The unique client ID, written by another process between our check and
            # our insert, under another keyed hash.
            raise OmipacsError("client pseudonym collision; instance not filed") from None

    def _recorded(self, pseudonym: ClientPseudonym, site: str, now: str) -> bool:
        """True if the map already says what :meth:`record` would write: her row under
        the same keyed hash, seen this second, and the site. Read without the write
        lock, so the objects of one woman arriving together do not queue for it."""
        c, s = client_table.c, client_site_table.c
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(c.key_hash, c.last_seen).where(c.client_id == pseudonym.client_id)
            ).first()
            if row is None or row[0] != pseudonym.key_hash or row[1] < now:
                return False  # new, a collision (raised by the write) or seen earlier
            return conn.execute(
                sa.select(s.site).where(s.key_hash == pseudonym.key_hash, s.site == site)
            ).first() is not None

    def unbound(self, study_keys: Sequence[str]) -> list[str]:
        """Those of ``study_keys`` not bound to any client yet (binding the others again
        would change nothing)."""
        if not study_keys:
            return []
        t = study_client_table
        with self._engine.connect() as conn:
            bound = set(conn.scalars(
                sa.select(t.c.study_key).where(t.c.study_key.in_(list(study_keys)))))
        return [k for k in study_keys if k not in bound]

    def study_clients(self, study_keys: Sequence[str]) -> set[ClientPseudonym]:
        """The clients the studies named by ``study_keys`` are bound to (usually 0 or 1)."""
        if not study_keys:
            return set()
        with self._engine.connect() as conn:
            return self._bound(conn, study_keys)

    @staticmethod
    def _bound(conn: sa.Connection, study_keys: Sequence[str]) -> set[ClientPseudonym]:
        t = study_client_table
        rows = conn.execute(
            sa.select(t.c.client_id, t.c.linked, t.c.key_hash).where(
                t.c.study_key.in_(list(study_keys)))
        ).all()
        return {ClientPseudonym(r[0], bool(r[1]), r[2]) for r in rows}

    def bind_study(
        self, study_keys: Sequence[str], pseudonym: ClientPseudonym
    ) -> set[ClientPseudonym]:
        """Bind the study to ``pseudonym`` unless it is bound already; the clients it has.

        Atomic across processes and machines: of two objects of a new study ingested at
        once, the first binds it and the second is told the first one's client (on
        PostgreSQL the second ``INSERT … ON CONFLICT DO NOTHING`` waits for the first to
        commit, and the ``SELECT`` after it sees that row). A result with more than one
        client (the Study UID bound to one, the accession to another) is a conflict the
        caller must not guess through.
        """
        if not study_keys:
            return set()
        now = _now()
        # One order for every writer, so two binding the same keys cannot deadlock.
        keys = sorted(set(study_keys))
        rows = [
            {"study_key": k, "key_hash": pseudonym.key_hash, "client_id": pseudonym.client_id,
             "linked": int(pseudonym.linked), "first_seen": now}
            for k in keys
        ]
        insert = self._insert(study_client_table).on_conflict_do_nothing()

        def work(conn: sa.Connection) -> set[ClientPseudonym]:
            conn.execute(insert, rows)
            return self._bound(conn, keys)

        return self._write(work)

    def study_keys_of(self, key_hash: str, client_id: str) -> list[str]:
        """The keyed study hashes bound to a client (by key hash or client ID)."""
        t = study_client_table
        with self._engine.connect() as conn:
            return list(conn.scalars(sa.select(t.c.study_key).where(
                sa.or_(t.c.key_hash == key_hash, t.c.client_id == client_id))))

    def forget(self, key_hash: str, client_id: str) -> bool:
        """Remove a client (a withdrawal): her row, her sites and her study bindings.

        Returns whether anything was removed. On SQLite the deleted bytes are
        overwritten and the write-ahead log truncated, so nothing of hers lingers in
        free pages of the file.
        """

        def work(conn: sa.Connection) -> int:
            if self._sqlite:
                conn.exec_driver_sql("PRAGMA secure_delete=ON")
            hashes = {key_hash} | set(conn.scalars(
                sa.select(client_table.c.key_hash).where(client_table.c.client_id == client_id)
            ))
            hashes.discard("")
            removed = 0
            for table in (client_site_table, study_client_table, client_table):
                removed += int(conn.execute(
                    sa.delete(table).where(table.c.key_hash.in_(hashes))).rowcount or 0)
            removed += int(conn.execute(sa.delete(study_client_table).where(
                study_client_table.c.client_id == client_id)).rowcount or 0)
            return removed

        removed = self._write(work)
        if removed and self._sqlite:
            checkpoint(self._engine)
        return removed > 0

    def lookup(self, key_hash: str) -> IdentityRecord | None:
        """The record for ``key_hash`` (see ``ClientPseudonym.key_hash``), or ``None``."""
        return self._fetch(client_table.c.key_hash == key_hash)

    def lookup_client(self, client_id: str) -> IdentityRecord | None:
        """The record for a client ID, or ``None``."""
        return self._fetch(client_table.c.client_id == client_id)

    def _fetch(self, where: sa.ColumnElement[bool]) -> IdentityRecord | None:
        c = client_table.c
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(c.key_hash, c.client_id, c.linked, c.first_seen, c.last_seen)
                .where(where)
            ).first()
            if row is None:
                return None
            sites = conn.execute(
                sa.select(client_site_table.c.site)
                .where(client_site_table.c.key_hash == row[0])
                .order_by(client_site_table.c.site)
            ).scalars().all()
        return IdentityRecord(
            key_hash=row[0],
            client_id=row[1],
            linked=bool(row[2]),
            first_seen=dt.datetime.fromisoformat(row[3]),
            last_seen=dt.datetime.fromisoformat(row[4]),
            sites=tuple(sites),
        )

    def __len__(self) -> int:
        with self._engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(client_table)).scalar()
        return int(count or 0)
