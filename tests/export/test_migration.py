"""The release tables (migration 0007): they match the models and downgrade cleanly."""

from __future__ import annotations

from tests.migrations import check_migration

TABLES = {"release", "release_batch"}


def test_migration_matches_the_models_and_downgrades(db_url: str) -> None:
    check_migration(db_url, TABLES, "0006_changes")
