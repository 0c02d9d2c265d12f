"""``/api/v1/access-requests``: applicants file data access requests and follow them;
admins (the steering committee) see the queue and record decisions."""

from __future__ import annotations

from flask import Blueprint, Response

from omipacs.access import requests as access_requests
from omipacs.access.policy import Role
from omipacs.errors import BadRequest
from omipacs.web.admin import _date, _object, _str
from omipacs.web.api import _json
from omipacs.web.context import decision, services

bp = Blueprint("requests", __name__)


def _applicant() -> int | None:
    """None for admins (they see every request), else the caller's own user ID."""
    principal = decision().principal
    if principal.role is Role.ADMIN:
        return None
    if principal.user_id is None:
        raise BadRequest("requests are filed by a named user")
    return principal.user_id


@bp.post("")
def submit() -> Response:
    doc = _object()
    principal = decision().principal
    if principal.user_id is None:
        raise BadRequest("requests are filed by a named user")
    with services().write_sessions.begin() as session:
        info = access_requests.submit(session, principal.user_id, doc)
    return _json(info.to_dict(), status=201)


@bp.get("")
def mine() -> Response:
    with services().sessions() as session:
        found = access_requests.list_requests(session, applicant_pk=_applicant())
    return _json([r.to_dict() for r in found])


@bp.get("/<int:request_id>")
def show(request_id: int) -> Response:
    with services().sessions() as session:
        info = access_requests.get_request(session, request_id, applicant_pk=_applicant())
    return _json(info.to_dict())


@bp.post("/<int:request_id>/resubmit")
def resubmit(request_id: int) -> Response:
    doc = _object()
    principal = decision().principal
    if principal.user_id is None:
        raise BadRequest("requests are filed by a named user")
    with services().write_sessions.begin() as session:
        info = access_requests.resubmit(session, request_id, principal.user_id, doc)
    return _json(info.to_dict())


@bp.post("/<int:request_id>/decisions")
def decide(request_id: int) -> Response:
    doc = _object()
    cohort = doc.get("cohort_id")
    if cohort is not None and not isinstance(cohort, int):
        raise BadRequest("cohort_id must be a saved cohort's ID")
    scopes = doc.get("scopes")
    if isinstance(scopes, list):
        scopes = ",".join(str(s) for s in scopes)
    with services().write_sessions.begin() as session:
        info = access_requests.decide(
            session, request_id, decision().principal.user_id, _str(doc, "decision"),
            _str(doc, "reason"), cohort_id=cohort,
            scopes=scopes if isinstance(scopes, str) else None,
            starts=_date(doc.get("starts"), "starts"), ends=_date(doc.get("ends"), "ends"),
        )
    return _json(info.to_dict(), status=201)
