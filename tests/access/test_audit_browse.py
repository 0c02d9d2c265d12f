"""Browsing the audit trail: filters and newest-first keyset pages, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert

from omipacs.access.audit import AuditFilter, AuditRecord, browse_events, query_events
from omipacs.access.models import AuditEvent
from omipacs.services import Services

T0 = datetime(2026, 3, 1, 9, 0, 0)


def _events() -> list[AuditRecord]:
    out = []
    for i in range(25):
        out.append(AuditRecord(
            at=T0 + timedelta(minutes=i),
            user_email="curator@a.example" if i % 5 == 0 else "r1@lab.example",
            token_prefix="omi_abcdefgh",
            licence_pk=7 if i % 2 else None,
            remote="127.0.0.1",
            door="dimse" if i % 3 == 0 else "http",
            action="read-images" if i % 4 else "ingest",
            resource=f"licence:7 GET /studies/1.2.{i}_x%" if i == 13 else f"archive GET /s/{i}",
            outcome="denied" if i in (3, 17) else "allowed",
            status=404 if i in (3, 17) else 200,
        ))
    return out


def test_filters_and_pages(any_db_services: Services) -> None:
    events = _events()
    with any_db_services.write_sessions.begin() as s:
        s.execute(insert(AuditEvent), [e.columns() for e in events])
    with any_db_services.sessions() as s:
        everything = browse_events(s, AuditFilter(), limit=10)
        assert [r.at for _, r in everything.events] == [e.at for e in events[::-1][:10]]
        assert everything.older is not None
        second = browse_events(s, AuditFilter(), before=everything.older, limit=10)
        third = browse_events(s, AuditFilter(), before=second.older, limit=10)
        assert len(second.events) == 10 and len(third.events) == 5 and third.older is None
        ids = [i for page in (everything, second, third) for i, _ in page.events]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == 25

        def matching(where: AuditFilter) -> list[int]:
            page = browse_events(s, where, limit=1000)
            return sorted(int(r.at.minute) for _, r in page.events)

        assert matching(AuditFilter(outcome="denied")) == [3, 17]
        assert matching(AuditFilter(user=" Curator@A.example ")) == [0, 5, 10, 15, 20]
        assert matching(AuditFilter(licence=7, door="dimse")) == [3, 9, 15, 21]
        assert matching(AuditFilter(action="ingest", outcome="allowed")) == [0, 4, 8, 12, 16,
                                                                              20, 24]
        window = AuditFilter(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=12))
        assert matching(window) == [10, 11]
        # The resource filter is a substring match; %, _ and \ match only themselves.
        assert matching(AuditFilter(resource="1.2.13_x%")) == [13]
        assert matching(AuditFilter(resource="_")) == [13]
        assert matching(AuditFilter(resource="%")) == [13]
        assert matching(AuditFilter(resource="GET /s/2")) == [2, 20, 21, 22, 23, 24]
        # The older API keeps its order (oldest first) and filters.
        assert [e.at.minute for e in query_events(s, outcome="denied")] == [3, 17]
