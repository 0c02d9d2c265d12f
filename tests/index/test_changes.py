"""The change feed's table (migration 0006) and its core API, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import delete

from omipacs.index.changes import ChangeKind, changes_since, current_sequence, record_change
from omipacs.index.db import make_engine, make_sessionmaker, upgrade
from omipacs.index.models import ChangeEvent
from tests.migrations import check_migration

TABLES = {"change_event", "withdrawal"}


def test_migration_matches_the_models_and_downgrades(db_url: str) -> None:
    check_migration(db_url, TABLES, "0005")


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
