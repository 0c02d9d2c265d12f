"""The change feed's table (migration 0006) and its core API, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, inspect

from omipacs.index.changes import ChangeKind, changes_since, current_sequence, record_change
from omipacs.index.db import alembic_config, make_engine, make_sessionmaker, upgrade
from omipacs.index.models import ChangeEvent
from omipacs.schema import metadata

TABLES = {"change_event", "withdrawal"}


def _tables_of(diff: list[object]) -> set[str]:
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
        command.downgrade(cfg, "0005")
    with engine.connect() as conn:
        assert not TABLES & set(inspect(conn).get_table_names())
    upgrade(engine)
    with engine.connect() as conn:
        assert TABLES <= set(inspect(conn).get_table_names())
    engine.dispose()


def test_sequence_grows_is_never_reused_and_pages(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine, write=True)
    with sessions.begin() as session:
        assert current_sequence(session) == 0
        assert changes_since(session, 0) == []
        first = record_change(session, ChangeKind.INSTANCE_STORED, study_uid="1.2",
                              series_uid="1.2.3", sop_uid="1.2.3.4",
                              client_id="OPTMAAAAAAAAAAAA")
        second = record_change(session, "clinical-changed", client_id="OPTMAAAAAAAAAAAA")
    assert second > first
    with sessions.begin() as session:
        # The newest events go (a withdrawal deletes them); their numbers stay spent.
        session.execute(delete(ChangeEvent))
    with sessions.begin() as session:
        assert current_sequence(session) == 0
        third = record_change(session, ChangeKind.CLIENT_WITHDRAWN, client_hash="ab" * 32)
    assert third > second
    with sessions.begin() as session:
        for n in range(5):
            record_change(session, ChangeKind.MARKS_CHANGED, study_uid=f"1.{n}")
    with sessions() as session:
        assert current_sequence(session) == third + 5
        page = changes_since(session, third, limit=3)
        assert [c.seq for c in page] == [third + 1, third + 2, third + 3]
        assert [c.study_instance_uid for c in page] == ["1.0", "1.1", "1.2"]
        rest = changes_since(session, page[-1].seq, limit=100)
        assert [c.seq for c in rest] == [third + 4, third + 5]
        withdrawn = changes_since(session, second, limit=1)[0]
        assert withdrawn.kind is ChangeKind.CLIENT_WITHDRAWN
        doc = withdrawn.to_dict()
        assert doc["client_hash"] == "ab" * 32 and "client_id" not in doc
        assert doc["kind"] == "client-withdrawn" and doc["at"].endswith("Z")
    engine.dispose()
