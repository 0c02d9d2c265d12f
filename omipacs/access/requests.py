"""Data access requests: an applicant asks, the steering committee decides.

The brochure's application names the proposed study and intended use (in technical and
lay terms), the data types wanted, the expected patient benefit and the organisation.
Admins record each decision with a reason; an approval (with or without changes)
creates the licence, non-exclusive and for the approved purpose only, three years
unless another term is set, and links request, decisions and licence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from omipacs.access.admin import create_licence, default_term, find_user
from omipacs.access.authenticate import utcnow
from omipacs.access.models import AccessDecision, AccessRequest, User
from omipacs.access.scopes import format_scopes, parse_scopes
from omipacs.errors import BadRequest, NotFound

DECISIONS = ("approved", "approved-with-changes", "rejected", "more-information")
RESUBMITTED = "resubmitted"
"""The history step of an applicant's answer to a request for more information."""
OPEN_STATES = ("submitted", "more-information")
"""States in which a request waits for the committee (or for the applicant's answer)."""
_FIELDS = ("title", "technical_summary", "lay_summary", "patient_benefit")


@dataclass(frozen=True)
class RequestInfo:
    """A request with its decisions."""

    id: int
    applicant: str
    organisation: str
    title: str
    technical_summary: str
    lay_summary: str
    data_types: str
    patient_benefit: str
    cohort_id: int | None
    state: str
    created_at: datetime | None
    decisions: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        doc = dict(self.__dict__)
        doc["data_types"] = self.data_types.split(",") if self.data_types else []
        doc["created_at"] = self.created_at.isoformat() if self.created_at else None
        doc["decisions"] = list(self.decisions)
        return doc


def _info(session: Session, req: AccessRequest) -> RequestInfo:
    applicant = session.get(User, req.applicant_pk)
    rows = session.scalars(
        select(AccessDecision)
        .where(AccessDecision.request_pk == req.pk)
        .order_by(AccessDecision.pk)
    ).all()
    decisions = tuple(
        {
            "decision": d.decision,
            "reason": d.reason,
            "reviewer": (session.get(User, d.reviewer_pk) or User(email="")).email,
            "licence_id": d.licence_pk,
            "decided_at": d.decided_at.isoformat() if d.decided_at else None,
        }
        for d in rows
    )
    return RequestInfo(
        req.pk, applicant.email if applicant else "", req.organisation, req.title,
        req.technical_summary, req.lay_summary, req.data_types, req.patient_benefit,
        req.cohort_pk, req.state, req.created_at, decisions,
    )


def _application(session: Session, applicant_pk: int, doc: dict[str, Any]) -> dict[str, Any]:
    """The application form's fields from ``doc``, checked (BadRequest naming a field)."""
    if not isinstance(doc, dict):
        raise BadRequest("expected a JSON object")
    values: dict[str, Any] = {}
    for name in _FIELDS:
        value = doc.get(name)
        if not isinstance(value, str) or not value.strip():
            raise BadRequest(f"{name} is required")
        values[name] = value.strip()[:20_000]
    values["title"] = values["title"][:256]
    types = doc.get("data_types")
    scopes = parse_scopes(types if isinstance(types, list | str) else "")
    if not scopes:
        raise BadRequest("data_types names at least one data type")
    values["data_types"] = format_scopes(scopes)
    cohort = doc.get("cohort_id")
    if cohort is not None and not (isinstance(cohort, int) and 0 < cohort < 1 << 62):
        raise BadRequest("cohort_id must be a saved cohort's ID")
    values["cohort_pk"] = cohort
    applicant = session.get(User, applicant_pk)
    org = doc.get("organisation")
    values["organisation"] = (org if isinstance(org, str) and org else applicant.organisation
                              if applicant else "")[:128]
    return values


def submit(session: Session, applicant_pk: int, doc: dict[str, Any]) -> RequestInfo:
    """File a request from ``doc`` (the application form's fields)."""
    req = AccessRequest(applicant_pk=applicant_pk, state="submitted",
                        **_application(session, applicant_pk, doc))
    session.add(req)
    session.flush()
    return _info(session, req)


def resubmit(
    session: Session, request_id: int, applicant_pk: int, doc: dict[str, Any]
) -> RequestInfo:
    """The applicant's answer to a request for more information: the amended application
    (the same fields as :func:`submit`) and a ``response`` to the committee.

    The request goes back to ``submitted``; the response is a step of its history (kept
    with the committee's decisions, as ``resubmitted`` by the applicant), so the
    committee reads what was asked, what was answered and what changed in order.
    """
    req = session.get(AccessRequest, request_id) if 0 < request_id < 1 << 62 else None
    if req is None or req.applicant_pk != applicant_pk:
        raise NotFound("no such access request")
    if req.state != "more-information":
        raise BadRequest("only a request the committee asked more information about can be "
                         "resubmitted")
    response = doc.get("response") if isinstance(doc, dict) else None
    if not isinstance(response, str) or not response.strip():
        raise BadRequest("response is required: answer the committee's question")
    for name, value in _application(session, applicant_pk, doc).items():
        setattr(req, name, value)
    session.add(AccessDecision(request_pk=req.pk, reviewer_pk=applicant_pk,
                               decision=RESUBMITTED, reason=response.strip()[:20_000]))
    req.state = "submitted"
    session.flush()
    return _info(session, req)


def get_request(
    session: Session, request_id: int, *, applicant_pk: int | None = None
) -> RequestInfo:
    """One request (only the applicant's own when ``applicant_pk`` is given)."""
    req = session.get(AccessRequest, request_id) if 0 < request_id < 1 << 62 else None
    if req is None or (applicant_pk is not None and req.applicant_pk != applicant_pk):
        raise NotFound("no such access request")
    return _info(session, req)


def list_requests(
    session: Session, *, applicant_pk: int | None = None, states: Iterable[str] | None = None
) -> list[RequestInfo]:
    """Requests, newest first (one applicant's, or all for the committee), optionally
    only those in ``states`` (e.g. :data:`OPEN_STATES`, the committee's queue)."""
    stmt = select(AccessRequest).order_by(AccessRequest.pk.desc())
    if applicant_pk is not None:
        stmt = stmt.where(AccessRequest.applicant_pk == applicant_pk)
    if states is not None:
        stmt = stmt.where(AccessRequest.state.in_(list(states)))
    return [_info(session, r) for r in session.scalars(stmt)]


def decide(
    session: Session,
    request_id: int,
    reviewer_pk: int | None,
    decision: str,
    reason: str,
    *,
    cohort_id: int | None = None,
    scopes: str | None = None,
    starts: date | None = None,
    ends: date | None = None,
) -> RequestInfo:
    """Record a committee decision; an approval creates the licence."""
    req = session.get(AccessRequest, request_id) if 0 < request_id < 1 << 62 else None
    if req is None:
        raise NotFound("no such access request")
    if decision not in DECISIONS:
        raise BadRequest(f"decision must be one of {', '.join(DECISIONS)}")
    if not reason.strip():
        raise BadRequest("a decision needs a reason")
    if req.state in ("approved", "approved-with-changes", "rejected"):
        raise BadRequest(f"the request is already {req.state}")
    if reviewer_pk is None:
        raise BadRequest("decisions are recorded by a named admin")
    licence_pk = None
    if decision.startswith("approved"):
        cohort = cohort_id if cohort_id is not None else req.cohort_pk
        if cohort is None:
            raise BadRequest("an approval names the cohort the licence is bound to")
        granted = scopes if scopes is not None else req.data_types
        if decision == "approved" and scopes is not None and (
            parse_scopes(scopes) != parse_scopes(req.data_types)
        ):
            raise BadRequest("changed data types make this approved-with-changes")
        begin = starts or utcnow().date()
        applicant = find_user(session, req.applicant_pk)
        lic = create_licence(
            session,
            title=req.title,
            purpose=f"{req.technical_summary}\n\nLay summary: {req.lay_summary}",
            organisation=req.organisation,
            cohort_id=cohort,
            scopes=granted,
            starts=begin,
            ends=ends or default_term(begin),
            members=[applicant.email],
            request_id=req.pk,
        )
        licence_pk = lic.id
    session.add(
        AccessDecision(
            request_pk=req.pk,
            reviewer_pk=reviewer_pk,
            decision=decision,
            reason=reason.strip()[:20_000],
            licence_pk=licence_pk,
        )
    )
    req.state = decision
    session.flush()
    return _info(session, req)
