"""The check every migration test makes: its tables match the models and it downgrades."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from omipacs.index.db import alembic_config, make_engine, upgrade
from omipacs.schema import metadata


def tables_of(diff: list[object]) -> set[str]:
    """The tables an Alembic ``compare_metadata`` diff touches."""
    names = set()
    for change in diff:
        item = change[0] if isinstance(change, list) else change
        assert isinstance(item, tuple)
        for part in item[1:]:
            table = getattr(part, "table", None)
            if table is not None:
                names.add(str(table.name))
            elif isinstance(part, str):
                names.add(part)
    return names


def check_migration(
    db_url: str, tables: set[str], previous: str, kept: frozenset[str] = frozenset()
) -> None:
    """Upgrade to head: ``tables`` exist and match the models; downgrade to ``previous``:
    they are gone (and ``kept`` is still there); upgrade again: they are back."""
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        assert tables <= set(inspect(conn).get_table_names())
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert not tables_of(diff) & tables, diff
    cfg = alembic_config(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, previous)
    with engine.connect() as conn:
        remaining = set(inspect(conn).get_table_names())
    assert not tables & remaining and kept <= remaining
    upgrade(engine)
    with engine.connect() as conn:
        assert tables <= set(inspect(conn).get_table_names())
    engine.dispose()
