"""Engines and sessions for SQLite (default) and PostgreSQL.

One engine and one ``sessionmaker`` per process; every request or DIMSE event opens its
own session (sessions are not thread-safe). SQLite runs in WAL mode with
``synchronous=FULL``: an acknowledged instance's index row must survive power loss,
and WAL lets QIDO readers run while C-STORE writers commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from omipacs.errors import ConfigurationError
from omipacs.filemodes import private_dir, private_file

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(
    url: str, *, echo: bool = False, pool_size: int = 10, read_only: bool = False
) -> Engine:
    """Create the engine for ``url`` with the settings each backend needs.

    ``read_only`` engines refuse every write in the database itself (SQLite
    ``query_only``, PostgreSQL ``default_transaction_read_only``), for commands that only
    report; their SQLite index must already exist.
    """
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1].split("?", 1)[0]
        if read_only and db_path and db_path != ":memory:" and not Path(db_path).is_file():
            raise ConfigurationError(f"no index at {db_path} (run `omipacs init-db` first)")
        if db_path and db_path != ":memory:" and not read_only:
            if not Path(db_path).parent.exists():
                private_dir(Path(db_path).parent)
            # Owner-only; SQLite gives the -wal and -shm files the database's mode.
            private_file(Path(db_path))
        engine = create_engine(
            url, echo=echo, connect_args={"timeout": 60, "check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let the driver not open implicit transactions; we issue BEGIN ourselves so
            # that writers take the lock up front (BEGIN IMMEDIATE) and never deadlock.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if read_only:
                cur.execute("PRAGMA query_only=ON")
            else:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            write = conn.get_execution_options().get("omipacs_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    return create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"options": "-c default_transaction_read_only=on"} if read_only else {},
    )


def make_sessionmaker(engine: Engine, *, write: bool = False) -> sessionmaker[Session]:
    """The process-wide session factory.

    ``write=True`` gives sessions for transactions that read then write (ingest): on
    SQLite they start with ``BEGIN IMMEDIATE`` so two writers queue on the lock instead
    of failing with a stale snapshot; on PostgreSQL nothing changes.
    """
    bind = engine.execution_options(omipacs_write=True) if write else engine
    return sessionmaker(bind, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """Alembic configuration pointing at our migrations and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent; run at every start)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def checkpoint(engine: Engine) -> bool:
    """SQLite: copy the write-ahead log into the database file and truncate the log.

    Used after deleting what must not linger (a withdrawal), with ``secure_delete`` on
    for the deletes: old copies of the rows would otherwise stay in the log's frames.
    Runs outside any transaction (a reader's snapshot would stop it). Returns False when
    other readers kept it from finishing; SQLite then completes it at a later checkpoint.
    """
    if engine.dialect.name != "sqlite":
        return True
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        busy = cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        cur.close()
    finally:
        raw.close()
    return not (busy and busy[0])
