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


def test_a_long_feed_is_read_a_page_at_a_time(db_url: str) -> None:
    """iter_changes (what an incremental release folds) never asks for more than a page,
    stops at ``upto`` and skips the gaps a withdrawal leaves."""
    from sqlalchemy import event

    from omipacs.export.increment import read_feed
    from omipacs.index.changes import iter_changes

    engine = make_engine(db_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine, write=True)
    with sessions.begin() as session:
        seqs = [record_change(session, ChangeKind.INSTANCE_STORED, study_uid=f"1.{n % 3}",
                              sop_uid=f"1.{n % 3}.{n}") for n in range(25)]
        gap = seqs[10]
        session.execute(delete(ChangeEvent).where(ChangeEvent.seq == gap))
        last = record_change(session, ChangeKind.CLIENT_WITHDRAWN, client_hash="cd" * 32)
        record_change(session, ChangeKind.CLINICAL_CHANGED, client_id="OPTMBBBBBBBBBBBB")
    queries: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if "change_event" in statement:
            queries.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    with sessions() as session:
        got = list(iter_changes(session, seqs[0], upto=last, page=4))
        assert [c.seq for c in got] == [s for s in seqs[1:] if s != gap] + [last]
        assert len(queries) == 7  # 24 events, 4 a page: never the whole feed at once
        delta = read_feed(session, seqs[0], last, page=4)
    event.remove(engine, "before_cursor_execute", seen)
    assert delta.events == 24 and delta.withdrawn_hashes == {"cd" * 32}
    assert len(delta.sops) == 23 and delta.studies == {"1.0", "1.1", "1.2"}
    assert not delta.clinical_clients  # after ``upto``
    engine.dispose()
