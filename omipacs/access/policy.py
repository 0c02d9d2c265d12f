"""The one access check: who may do what, and what they then see.

Every door (DICOMweb, the JSON API, rendered images, and later exports and DIMSE
query/retrieve) asks :func:`authorize` with the caller's :class:`Principal`, the
:class:`Action` and the :class:`Root` the request came through. The answer is a
:class:`Decision` whose :class:`~omipacs.index.visibility.Visibility` the query and
retrieve services apply to every read, or an error:

* :class:`~omipacs.errors.Forbidden` (403) when the caller's role may not do this at
  all (a researcher on the whole-archive root, a curator on an admin endpoint);
* :class:`~omipacs.errors.NotFound` (404) when the data lie outside what the caller's
  licences grant: a licence they do not hold, a scope it lacks. 404 and not 403, so
  that existence is not revealed.

Roles: an *admin* may do everything; a *curator* ingests (STOW, import, clinical
records, marks, quarantine), reads the whole archive and the audit trail, but manages
no users, licences or tokens and decides no access requests; a *researcher* reads only
through licences, each limited to its cohort version's members and its data scopes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from omipacs.access.models import Licence
from omipacs.access.scopes import Scope, instance_condition, parse_scopes
from omipacs.cohorts import cohort_restriction, get_cohort
from omipacs.cohorts.models import CohortMember
from omipacs.errors import BadRequest, Forbidden, NotFound
from omipacs.index.visibility import EVERYTHING, Visibility


class Role(StrEnum):
    """What a user is to the archive."""

    ADMIN = "admin"
    """Everything, including users, licences and tokens."""
    CURATOR = "curator"
    """Ingest and curation; reads the whole archive."""
    RESEARCHER = "researcher"
    """Reads only through licences."""


class Action(StrEnum):
    """What a request does, as the access check sees it."""

    READ_IMAGES = "read-images"
    """QIDO-RS, WADO-RS (instances, metadata, frames, bulk data, rendered, thumbnails)."""
    INGEST = "ingest"
    """STOW-RS, clinical records, marks: anything that adds to the archive."""
    READ_STATS = "read-stats"
    """The brochure's tables."""
    READ_CLINICAL = "read-clinical"
    """A client's timeline and priors."""
    READ_MARKS = "read-marks"
    """The marks API."""
    QUERY_COHORTS = "query-cohorts"
    """The cohort builder over the whole archive."""
    READ_COHORTS = "read-cohorts"
    """Saved cohorts."""
    WRITE_COHORTS = "write-cohorts"
    """Saving a cohort."""
    REQUEST_ACCESS = "request-access"
    """Submitting and following one's own data access requests."""
    READ_RELEASES = "read-releases"
    """Every licence's releases: their progress and verification (curators and admins)."""
    READ_AUDIT = "read-audit"
    """The audit trail: who did what, when, through which door (curators and admins)."""
    READ_CHANGES = "read-changes"
    """The change feed (what changed in the index, in order; curators and admins)."""
    ADMIN = "admin"
    """Users, licences, tokens, access request decisions, withdrawals."""
    CAPABILITIES = "capabilities"
    """What the server supports (no data)."""


@dataclass(frozen=True)
class LicenceGrant:
    """A licence as the access check uses it: usable now, by this principal."""

    id: int
    cohort_id: int
    scopes: frozenset[Scope]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    email: str
    role: Role
    user_id: int | None = None
    token_prefix: str = ""
    token_id: int | None = None
    bound_licence: int | None = None
    """The one licence a licence-bound token may use."""
    licences: tuple[LicenceGrant, ...] = ()
    """Licences the caller may use right now (active, within dates, a member)."""

    def usable(self, licence_id: int) -> LicenceGrant | None:
        """The licence if this principal may use it now."""
        if self.bound_licence is not None and licence_id != self.bound_licence:
            return None
        return next((g for g in self.licences if g.id == licence_id), None)


LOCAL_ADMIN = Principal(email="local", role=Role.ADMIN)
"""The single user of an archive whose ``[auth] mode`` is ``none`` (loopback only)."""


@dataclass(frozen=True)
class Root:
    """Where a request came in: the whole archive, a saved cohort or a licence."""

    kind: Literal["archive", "cohort", "licence"] = "archive"
    id: int | None = None

    def describe(self) -> str:
        """Short form for the audit trail."""
        return self.kind if self.id is None else f"{self.kind}:{self.id}"


ARCHIVE = Root()


@dataclass(frozen=True)
class Decision:
    """What an allowed request may see."""

    principal: Principal
    action: Action
    root: Root
    visibility: Visibility = EVERYTHING
    licence: LicenceGrant | None = None
    scopes: frozenset[Scope] | None = None
    """None: every scope (admins and curators)."""
    extra: dict[str, str] = field(default_factory=dict)

    def has(self, scope: Scope) -> bool:
        """Whether data of ``scope`` exist for this caller."""
        return self.scopes is None or scope in self.scopes

    def client_condition(self, client_id_column: Any) -> ColumnElement[bool] | None:
        """A condition keeping ``client_id_column`` to the licence's members (None: all)."""
        if self.licence is None:
            return None
        members = select(CohortMember.client_id).where(
            CohortMember.cohort_pk == self.licence.cohort_id
        )
        condition: ColumnElement[bool] = client_id_column.in_(members)
        return condition


_CURATION = {Role.ADMIN, Role.CURATOR}
_CURATOR_ACTIONS = {
    Action.INGEST,
    Action.READ_IMAGES,
    Action.READ_STATS,
    Action.READ_CLINICAL,
    Action.READ_MARKS,
    Action.QUERY_COHORTS,
    Action.READ_COHORTS,
    Action.WRITE_COHORTS,
    Action.REQUEST_ACCESS,
    Action.READ_AUDIT,
    Action.READ_RELEASES,
    Action.READ_CHANGES,
    Action.CAPABILITIES,
}
#: The scope a researcher's licence needs for each JSON API action.
_API_SCOPE = {
    Action.READ_STATS: Scope.CLINICAL,
    Action.READ_CLINICAL: Scope.CLINICAL,
    Action.READ_MARKS: Scope.MARKS,
}


@functools.lru_cache(maxsize=1024)
def licence_visibility(grant: LicenceGrant) -> Visibility:
    """A licence's members, within its data scopes.

    Built once per grant (a frozen value: licence, cohort version, scopes) and reused:
    the conditions are immutable SQL expressions, and building them anew cost more than
    the index lookup they add to a WADO-RS retrieval.
    """
    return Visibility(
        study=cohort_restriction(grant.cohort_id), instance=instance_condition(grant.scopes)
    )


def _licence_for_api(principal: Principal, requested: str | None) -> LicenceGrant:
    """The licence a researcher's JSON API request works under."""
    if requested is not None:
        if not requested.isdigit() or len(requested) > 12:
            raise BadRequest("licence must be a licence ID")
        grant = principal.usable(int(requested))
        if grant is None:
            raise NotFound("no such licence")
        return grant
    if principal.bound_licence is not None:
        grant = principal.usable(principal.bound_licence)
        if grant is None:
            raise NotFound("the token's licence is not in force")
        return grant
    if len(principal.licences) == 1:
        return principal.licences[0]
    if not principal.licences:
        raise NotFound("no licence in force")
    raise BadRequest("name the licence: ?licence=ID")


def authorize(
    session: Session | Callable[[], Session],
    principal: Principal,
    action: Action,
    root: Root = ARCHIVE,
    *,
    licence: str | None = None,
) -> Decision:
    """Decide whether ``principal`` may do ``action`` through ``root``.

    ``licence`` is the licence a researcher names for a JSON API request (the token's
    own, or the only one they hold, when absent).

    ``session`` may be a session factory (a ``sessionmaker``): a session is then opened
    only when the decision needs the index (an admin or curator on a cohort or licence
    root). Every other decision is made from the principal alone, whose licences were
    read when the token was resolved, so most requests do no database work here.
    """
    role = principal.role
    if action is Action.CAPABILITIES:
        return Decision(principal, action, root)
    if role is Role.ADMIN:
        return _curator_view(session, principal, action, root)
    if role is Role.CURATOR:
        if action not in _CURATOR_ACTIONS:
            raise Forbidden(f"a curator may not do this ({action.value})")
        return _curator_view(session, principal, action, root)
    # Researchers.
    if action is Action.REQUEST_ACCESS:
        return Decision(principal, action, root)
    if action is Action.READ_IMAGES:
        if root.kind != "licence" or root.id is None:
            raise Forbidden(
                "researchers read images through a licence root: /licences/{id}/dicom-web"
            )
        grant = principal.usable(root.id)
        if grant is None:
            raise NotFound("no such licence")
        return Decision(
            principal, action, root, licence_visibility(grant), grant, grant.scopes
        )
    if action in _API_SCOPE:
        grant = _licence_for_api(principal, licence)
        if _API_SCOPE[action] not in grant.scopes:
            raise NotFound(f"the licence does not include {_API_SCOPE[action].value} data")
        return Decision(principal, action, root, licence_visibility(grant), grant, grant.scopes)
    if action is Action.READ_COHORTS:
        return Decision(principal, action, root, extra={
            "cohorts": _cohort_ids(principal),
            "density_cohorts": _cohort_ids(principal, Scope.DENSITY),
        })
    raise Forbidden(f"a researcher may not do this ({action.value})")


def _cohort_ids(principal: Principal, scope: Scope | None = None) -> str:
    """The cohorts of the licences ``principal`` may use now (granting ``scope``)."""
    usable = [
        g for g in principal.licences
        if principal.usable(g.id) is not None and (scope is None or scope in g.scopes)
    ]
    return ",".join(str(g.cohort_id) for g in usable)


def _curator_view(
    session: Session | Callable[[], Session], principal: Principal, action: Action, root: Root
) -> Decision:
    """Admins and curators: the whole archive, or the cohort/licence the root names."""
    if root.id is None or root.kind == "archive":
        return Decision(principal, action, root)
    with _opened(session) as s:
        if root.kind == "cohort":
            get_cohort(s, root.id, with_members=False)  # 404 for an unknown cohort
            return Decision(
                principal, action, root, Visibility(study=cohort_restriction(root.id))
            )
        grant = grant_of(s, root.id)
    return Decision(principal, action, root, licence_visibility(grant), grant, grant.scopes)


@contextmanager
def _opened(session: Session | Callable[[], Session]) -> Iterator[Session]:
    """``session`` itself, or a new session from the factory (closed afterwards)."""
    if isinstance(session, Session):
        yield session
        return
    with session() as opened:
        yield opened


def grant_of(session: Session, licence_id: int) -> LicenceGrant:
    """A licence as a grant whatever its state (admins inspecting what it shows)."""
    row = session.get(Licence, licence_id) if 0 < licence_id < 1 << 62 else None
    if row is None:
        raise NotFound("no such licence")
    return LicenceGrant(row.pk, row.cohort_pk, parse_scopes(row.scopes))


def readable_cohorts(decision: Decision) -> set[int] | None:
    """Saved cohorts the caller may read (None: all)."""
    if decision.principal.role in _CURATION:
        return None
    listed = decision.extra.get("cohorts", "")
    return {int(c) for c in listed.split(",") if c}


def sees_density_of(decision: Decision, cohort_id: int) -> bool:
    """Whether the caller may see breast density for ``cohort_id``'s members: curators
    always, a researcher through a licence on that cohort that grants ``density``.
    Without it, density is withheld even where it is only implied (a saved cohort's
    density criteria)."""
    if decision.principal.role in _CURATION:
        return True
    listed = decision.extra.get("density_cohorts", "")
    return str(cohort_id) in listed.split(",")


def in_force(state: str, starts: date, ends: date, today: date) -> bool:
    """Whether a licence in ``state`` with this term may be used on ``today``."""
    return state == "active" and starts <= today <= ends


def effective_state(state: str, starts: date, ends: date, today: date) -> str:
    """The state a person should see: ``expired`` / ``pending`` derived from the dates."""
    if state != "active":
        return state
    if today > ends:
        return "expired"
    if today < starts:
        return "pending"
    return "active"


def grants(rows: Iterable[tuple[int, int, frozenset[Scope]]]) -> tuple[LicenceGrant, ...]:
    """LicenceGrants from (id, cohort, scopes) rows, in ID order."""
    return tuple(LicenceGrant(i, c, s) for i, c, s in sorted(rows))
