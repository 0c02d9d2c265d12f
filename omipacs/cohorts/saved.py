"""Saved cohorts: a definition frozen with its resolved members, versioned by name.

:func:`save_cohort` freezes a definition and its members; :func:`cohort_restriction`
turns a saved cohort into a condition on ``Study`` that the DICOMweb services apply, so
the cohort is served as its own root and a non-member study is never visible through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, func, insert, literal, select
from sqlalchemy.orm import Session

from omipacs.cohorts.filters import DENSITY_CRITERIA, CohortFilters
from omipacs.cohorts.models import Cohort, CohortMember
from omipacs.cohorts.query import members_hash, resolve_members
from omipacs.errors import BadRequest, NotFound
from omipacs.index.models import Study

_INSERT_CHUNK: Final = 5_000


@dataclass(frozen=True)
class CohortSummary:
    """A saved cohort without its members."""

    id: int
    name: str
    version: int
    description: str
    definition: dict[str, Any]
    definition_sha256: str
    members_sha256: str
    client_count: int
    study_count: int
    created_at: datetime | None

    @property
    def filters(self) -> CohortFilters:
        return CohortFilters.from_dict(self.definition)

    def to_dict(self, *, density: bool = True) -> dict[str, Any]:
        """JSON-ready. ``density=False`` (a reader whose licence lacks the ``density``
        scope) leaves out the density criteria, which would tell every member's density
        band, and the definition's SHA-256, from which the few possible criteria could
        be recovered by trying them."""
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat() if self.created_at else None
        if not density:
            data["definition"] = {
                k: v for k, v in data["definition"].items() if k not in DENSITY_CRITERIA
            }
            del data["definition_sha256"]
        return data


@dataclass(frozen=True)
class SavedCohort:
    """A saved cohort and its frozen members."""

    summary: CohortSummary
    members: tuple[tuple[str, str], ...]

    @property
    def client_ids(self) -> tuple[str, ...]:
        return tuple(sorted({c for c, _ in self.members}))

    @property
    def study_uids(self) -> tuple[str, ...]:
        return tuple(sorted(s for _, s in self.members))

    def to_dict(self, *, density: bool = True) -> dict[str, Any]:
        return {
            **self.summary.to_dict(density=density),
            "members": [{"client_id": c, "study_uid": s} for c, s in self.members],
        }


def _summary(row: Cohort) -> CohortSummary:
    return CohortSummary(
        id=row.pk,
        name=row.name,
        version=row.version,
        description=row.description,
        definition=dict(row.definition),
        definition_sha256=row.definition_sha256,
        members_sha256=row.members_sha256,
        client_count=row.client_count,
        study_count=row.study_count,
        created_at=row.created_at,
    )


def save_cohort(
    session: Session, name: str, filters: CohortFilters, *, description: str = ""
) -> CohortSummary:
    """Resolve ``filters`` now and save the result as the next version of ``name``.

    The caller commits. A cohort never changes once saved: re-running the same
    definition later (after more data arrived) makes a new version.
    """
    name = name.strip()
    if not name or len(name) > 128:
        raise BadRequest("a cohort needs a name of 1 to 128 characters")
    members = resolve_members(session, filters)
    latest = session.scalar(select(func.max(Cohort.version)).where(Cohort.name == name))
    definition = filters.definition()
    row = Cohort(
        name=name,
        version=(latest or 0) + 1,
        description=description,
        definition=definition,
        definition_sha256=filters.sha256(),
        members_sha256=members_hash(members),
        client_count=len({c for c, _ in members}),
        study_count=len(members),
    )
    session.add(row)
    session.flush()
    for start in range(0, len(members), _INSERT_CHUNK):
        session.execute(
            insert(CohortMember),
            [
                {"cohort_pk": row.pk, "client_id": c, "study_instance_uid": s}
                for c, s in members[start : start + _INSERT_CHUNK]
            ],
        )
    session.flush()
    session.refresh(row)
    return _summary(row)


MAX_ID: Final = 2**63 - 1
"""The largest ID a database row can have (a signed 64-bit integer)."""


def get_cohort(session: Session, cohort_id: int, *, with_members: bool = True) -> SavedCohort:
    """A saved cohort and (by default) its members, sorted.

    Raises
    ------
    NotFound
        No cohort has this ID.
    """
    if not 0 < cohort_id <= MAX_ID:
        raise NotFound("no such cohort")  # no database integer holds it
    row = session.get(Cohort, cohort_id)
    if row is None:
        raise NotFound("no such cohort")
    members: Sequence[tuple[str, str]] = ()
    if with_members:
        members = [
            (c, s)
            for c, s in session.execute(
                select(CohortMember.client_id, CohortMember.study_instance_uid)
                .where(CohortMember.cohort_pk == cohort_id)
                .order_by(CohortMember.client_id, CohortMember.study_instance_uid)
            )
        ]
    return SavedCohort(_summary(row), tuple(members))


def list_cohorts(session: Session, name: str | None = None) -> list[CohortSummary]:
    """Saved cohorts (all versions), newest first."""
    stmt = select(Cohort).order_by(Cohort.pk.desc())
    if name is not None:
        stmt = stmt.where(Cohort.name == name)
    return [_summary(row) for row in session.scalars(stmt)]


def cohort_restriction(cohort_id: int) -> ColumnElement[bool]:
    """A condition on ``Study`` that holds only for the cohort's studies.

    Pass it as ``restrict`` to QIDO-RS and WADO-RS to serve the cohort as its own
    DICOMweb root. The member list is the frozen one, matched by Study Instance UID
    (the ``cohort_member`` unique index), so data added later never joins a saved
    cohort.

    A correlated ``EXISTS`` probes that index once per study considered, rather than an
    ``IN (subquery)`` that SQLite materialises as a list of every member for each query:
    a WADO-RS retrieval then costs one index lookup whatever the cohort's size, and a
    study list ordered by date stops at its page instead of computing every member's
    attributes before sorting (tests/benchmarks/bench_access.py measures it).
    """
    return (
        select(literal(1))
        .where(
            CohortMember.cohort_pk == cohort_id,
            CohortMember.study_instance_uid == Study.study_instance_uid,
        )
        .correlate(Study)
        .exists()
    )
