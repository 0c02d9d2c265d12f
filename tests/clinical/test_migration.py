"""Migration 0002 creates exactly the clinical models, and can be undone."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from omipacs.index.db import alembic_config, make_engine, upgrade
from omipacs.schema import metadata

CLINICAL_TABLES = {
    "site", "client", "episode", "event", "screen_read", "lesion", "lesion_finding",
    "density", "image_feature", "study_link", "clinical_tally", "clinical_state", "cohort",
    "cohort_member",
}


def _table_of(change: Any) -> str:
    item = change[0] if isinstance(change, list) else change
    for part in item[1:]:
        name = getattr(part, "name", None)
        table = getattr(part, "table", None)
        if table is not None:
            return str(table.name)
        if name is not None and hasattr(part, "columns"):
            return str(name)
    return str(item[2]) if len(item) > 2 else ""


def test_migration_matches_the_models_and_downgrades(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        assert CLINICAL_TABLES <= set(inspect(conn).get_table_names())
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diff if _table_of(d) in CLINICAL_TABLES] == []

    cfg = alembic_config(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    with engine.connect() as conn:
        assert not CLINICAL_TABLES & set(inspect(conn).get_table_names())
    upgrade(engine)
    with engine.connect() as conn:
        assert CLINICAL_TABLES <= set(inspect(conn).get_table_names())
    engine.dispose()
