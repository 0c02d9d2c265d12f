"""The release tables (migration 0007): they match the models and downgrade cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from omipacs.index.db import alembic_config, make_engine, upgrade
from omipacs.schema import metadata
from tests.index.test_changes import _tables_of

TABLES = {"release", "release_batch"}


def test_migration_matches_the_models_and_downgrades(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        assert TABLES <= set(inspect(conn).get_table_names())
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert not _tables_of(diff) & TABLES, diff
    cfg = alembic_config(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006_changes")
    with engine.connect() as conn:
        assert not TABLES & set(inspect(conn).get_table_names())
    upgrade(engine)
    engine.dispose()
