"""Migration 0003 creates exactly the mark models, and can be undone."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from omipacs.index.db import alembic_config, make_engine, upgrade
from omipacs.schema import metadata
from tests.migrations import tables_of

MARK_TABLES = {"mark", "mark_lesion"}


def test_migration_matches_the_models_and_downgrades(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        assert MARK_TABLES <= set(inspect(conn).get_table_names())
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert not tables_of(diff) & MARK_TABLES, diff

    cfg = alembic_config(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert not MARK_TABLES & tables and "lesion" in tables
    upgrade(engine)
    with engine.connect() as conn:
        assert MARK_TABLES <= set(inspect(conn).get_table_names())
    engine.dispose()
