"""Answering a cohort query: counts and one page of member clients, walked in order."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omipacs.clinical.models import (
    Client,
)
from omipacs.cohorts.filters import CohortFilters, StudyScope
from omipacs.cohorts.sql import client_row_conditions, client_select, study_conditions, study_select
from omipacs.index.models import Study


@dataclass(frozen=True)
class CohortClient:
    """A member client and her member studies."""

    client_id: str
    outcome: str
    studies: tuple[str, ...]


@dataclass(frozen=True)
class CohortQueryResult:
    """A page of a cohort query, with its totals."""

    client_count: int
    study_count: int
    clients: tuple[CohortClient, ...]
    next_after: str | None = None
    """When the page is full: the client ID to pass as ``after`` for the next page."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_count": self.client_count,
            "study_count": self.study_count,
            "clients": [asdict(c) | {"studies": list(c.studies)} for c in self.clients],
            "next_after": self.next_after,
        }


_FIRST_STRIDE: Final = 256
_MAX_GROWTH: Final = 8
_WALK_BUDGET: Final = 20


def _page(
    session: Session, filters: CohortFilters, limit: int | None, offset: int, after: str | None
) -> list[tuple[int, str, str]]:
    """``(client pk, client ID, outcome)`` of a page of members, in client ID order.

    Rather than find every member and sort them (work that grows with the archive), the
    clients that pass the row criteria are walked in client ID order, a stretch at a
    time, and each stretch is checked against all the criteria; the walk stops when the
    page is full. Each stretch is sized from the share of members among the clients
    checked so far (at most eight times the last), so a cohort that fills its page early
    costs about a page's worth of checks.

    A cohort whose members are rare among the clients its row criteria leave (say
    "grade 3" alone, where no row criterion narrows the walk) would make the walk check
    a large part of the archive one client at a time. So after a budget of checks
    (:data:`_WALK_BUDGET` per wanted member, at least :data:`_FIRST_STRIDE` times eight),
    or as soon as the share of members seen says the page would need more than that,
    the rest of the page is asked of the database in one query, which the planner can
    start from the most selective criterion; the walk then costs at most its budget more
    than that query alone, and usually one stretch more.
    """
    columns = client_select(filters).add_columns(Client.outcome)
    if limit is None:
        stmt = columns.order_by(Client.client_id).offset(offset)
        if after is not None:
            stmt = stmt.where(Client.client_id > after)
        return [(r[0], r[1], r[2]) for r in session.execute(stmt)]
    wanted = offset + limit
    row = client_row_conditions(filters)
    found: list[tuple[int, str, str]] = []
    checked = 0
    low = after
    stride = max(_FIRST_STRIDE, wanted)
    budget = max(_FIRST_STRIDE * _MAX_GROWTH, _WALK_BUDGET * wanted)
    needed = 0
    while len(found) < wanted:
        if checked >= budget or checked + needed > budget:
            rest = columns.order_by(Client.client_id).limit(wanted - len(found))
            if low is not None:
                rest = rest.where(Client.client_id > low)
            found += [(r[0], r[1], r[2]) for r in session.execute(rest)]
            break
        beyond = [Client.client_id > low] if low is not None else []
        high = session.scalar(
            select(Client.client_id)
            .where(*row, *beyond)
            .order_by(Client.client_id)
            .offset(stride - 1)
            .limit(1)
        )
        upto = [Client.client_id <= high] if high is not None else []
        stmt = columns.where(*beyond, *upto).order_by(Client.client_id)
        found += [(r[0], r[1], r[2]) for r in session.execute(stmt)]
        if high is None:
            break
        low = high
        checked += stride
        # Enough clients for the rest of the page at the share of members seen so far,
        # with a quarter more to spare.
        share = max(len(found), 1) / checked
        needed = int((wanted - len(found)) / share * 1.25) + 1
        stride = max(_FIRST_STRIDE, min(needed, stride * _MAX_GROWTH, budget - checked))
    return found[offset:wanted]


def cohort_query(
    session: Session,
    filters: CohortFilters,
    *,
    limit: int | None = 100,
    offset: int = 0,
    count: bool = True,
    after: str | None = None,
) -> CohortQueryResult:
    """A page of member clients (in client ID order) with their member studies.

    The page costs what finding its members costs (see :func:`_page`), not what
    finding every member would. ``after`` starts the page after that client ID (keyset
    paging: the result's ``next_after`` gives the next page at the same cost however
    deep it is, where a large ``offset`` walks from the start). The totals need every
    member to be counted; pass ``count=False`` to skip them (they are then -1).
    """
    page = _page(session, filters, limit, offset, after)
    by_client: dict[str, list[str]] = {row[1]: [] for row in page}
    if page:
        # The page's clients meet the client criteria; only their studies are filtered.
        studies_stmt = (
            select(Client.client_id, Study.study_instance_uid)
            .join(Client, Client.patient_pk == Study.patient_pk)
            .where(Client.pk.in_([row[0] for row in page]))
        )
        if filters.scope is StudyScope.MATCHING:
            studies_stmt = studies_stmt.where(*study_conditions(filters))
        for cid, uid in session.execute(studies_stmt):
            by_client[cid].append(uid)
    client_count = study_count = -1
    if count:
        # One pass: every member client has at least one member study.
        studies = study_select(filters).subquery()
        counted = session.execute(
            select(func.count(func.distinct(studies.c.client_id)), func.count())
        ).one()
        client_count, study_count = int(counted[0]), int(counted[1])
    full = limit is not None and len(page) == limit and limit > 0
    return CohortQueryResult(
        client_count,
        study_count,
        tuple(CohortClient(row[1], row[2], tuple(sorted(by_client[row[1]]))) for row in page),
        page[-1][1] if full else None,
    )


def resolve_members(session: Session, filters: CohortFilters) -> list[tuple[str, str]]:
    """Every ``(client ID, Study Instance UID)`` of the cohort, sorted."""
    stmt = study_select(filters).order_by(None)
    return sorted({(row[0], row[2]) for row in session.execute(stmt)})


def members_hash(members: Iterable[tuple[str, str]]) -> str:
    """SHA-256 of the sorted member list, one ``client_id<TAB>study_uid<LF>`` per member."""
    digest = hashlib.sha256()
    for client_id, study_uid in sorted(members):
        digest.update(f"{client_id}\t{study_uid}\n".encode())
    return digest.hexdigest()

