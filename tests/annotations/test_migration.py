"""Migration 0003 creates exactly the mark models, and can be undone."""

from __future__ import annotations

from tests.migrations import check_migration

MARK_TABLES = {"mark", "mark_lesion"}


def test_migration_matches_the_models_and_downgrades(db_url: str) -> None:
    # Downgrading to 0002 drops the marks' tables and keeps the older lesion table.
    check_migration(db_url, MARK_TABLES, "0002", kept=frozenset({"lesion"}))
