"""Applying for access, and the steering committee's queue.

An applicant fills in the data access request the brochure describes (the proposed
study, its intended use in technical and in lay terms, the data types wanted, the
expected patient benefit) and follows its state and the committee's decisions. Admins
(the committee) see every request, open ones first, each with its history, and record
decisions; an approval creates the licence (:func:`omipacs.access.requests.decide`).
The same core functions answer ``/api/v1/access-requests``.

Who sees what follows that API: anyone signed in may file and follow their own
requests (``request-access``); only admins see others' and decide (``admin``); a
request that is not the caller's is "not found".
"""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.wrappers import Response as BaseResponse

from omipacs.access import requests as access_requests
from omipacs.access.policy import Action, Role
from omipacs.access.scopes import Scope
from omipacs.cohorts import list_cohorts
from omipacs.errors import BadRequest
from omipacs.web.admin import _changed
from omipacs.web.context import decision, services
from omipacs.web.ui import forms
from omipacs.web.ui.blueprint import page, render

SCOPE_LABELS: dict[str, str] = {
    Scope.TWO_D.value: "2D mammograms (FFDM for presentation)",
    Scope.FOR_PROCESSING.value: "Unprocessed (for processing) FFDM",
    Scope.THREE_D.value: "3D tomosynthesis (DBT)",
    Scope.MARKS.value: "Expert marks and annotations",
    Scope.CLINICAL.value: "Clinical, pathology and outcome data",
    Scope.DENSITY.value: "Breast density (needs a further approval)",
}
DECISION_LABELS: dict[str, str] = {
    "approved": "Approve",
    "approved-with-changes": "Approve with changes",
    "more-information": "Ask for more information",
    "rejected": "Reject",
}


def _committee() -> bool:
    return decision().principal.role is Role.ADMIN


def _applicant() -> int | None:
    """None for the committee (every request), else the caller's own user ID."""
    if _committee():
        return None
    user = decision().principal.user_id
    if user is None:
        raise BadRequest("requests are filed by a named user")
    return user


@page("/requests", Action.REQUEST_ACCESS, nav="Access requests", order=60)
def access_requests_page() -> tuple[str, int]:
    """The caller's requests; for the committee, the open queue and the decided ones."""
    with services().sessions() as session:
        found = access_requests.list_requests(session, applicant_pk=_applicant())
    waiting = [r for r in found if r.state in access_requests.OPEN_STATES]
    decided = [r for r in found if r.state not in access_requests.OPEN_STATES]
    return render("ui/requests/list.html", waiting=waiting, decided=decided,
                  committee=_committee(), notice=forms.notice())


@page("/requests/new", Action.REQUEST_ACCESS)
def new_request() -> tuple[str, int]:
    """The application form."""
    with services().sessions() as session:
        cohorts = list_cohorts(session)
    return render("ui/requests/new.html", scopes=SCOPE_LABELS, cohorts=cohorts, form={},
                  error="")


def _application_form() -> dict[str, Any]:
    """The application form's fields as :func:`omipacs.access.requests.submit` takes them."""
    doc: dict[str, Any] = {
        name: forms.text(name) for name in (
            "title", "organisation", "technical_summary", "lay_summary", "patient_benefit")
    }
    doc["data_types"] = [s for s in request.form.getlist("data_types") if s in SCOPE_LABELS]
    cohort = forms.optional_id("cohort_id")
    if cohort is not None:
        doc["cohort_id"] = cohort
    return doc


@page("/requests", Action.REQUEST_ACCESS, methods=("POST",), endpoint="submit_request")
def submit_request() -> Any:
    """File the application; back to the form with the reason if it is incomplete."""
    doc = _application_form()
    user = decision().principal.user_id
    try:
        if user is None:
            raise BadRequest("requests are filed by a named user")
        with services().write_sessions.begin() as session:
            info = access_requests.submit(session, user, doc)
    except BadRequest as exc:
        with services().sessions() as session:
            cohorts = list_cohorts(session)
        return render("ui/requests/new.html", 400, scopes=SCOPE_LABELS, cohorts=cohorts,
                      form=doc, error=exc.reason)
    return forms.done("ui.access_request", "submitted", request_id=info.id)


@page("/requests/<int:request_id>", Action.REQUEST_ACCESS)
def access_request(request_id: int) -> tuple[str, int]:
    """One request with its history; the committee's decision form while it is open."""
    return _show(request_id)


def _show(request_id: int, error: str = "", status: int = 200) -> tuple[str, int]:
    with services().sessions() as session:
        info = access_requests.get_request(session, request_id, applicant_pk=_applicant())
        cohorts = list_cohorts(session) if _committee() else []
    history: list[dict[str, Any]] = [{
        "what": "submitted", "who": info.applicant, "reason": "", "licence_id": None,
        "at": info.created_at.isoformat(sep=" ", timespec="minutes")
        if info.created_at else "",
    }]
    for d in info.decisions:
        history.append({
            "what": d["decision"], "who": d["reviewer"], "reason": d["reason"],
            "licence_id": d["licence_id"],
            "at": (d["decided_at"] or "").replace("T", " ")[:16],
        })
    open_ = info.state in access_requests.OPEN_STATES
    mine = info.applicant == decision().principal.email
    return render("ui/requests/show.html", status, r=info, error=error, history=history,
                  scopes=SCOPE_LABELS, decisions=DECISION_LABELS, cohorts=cohorts,
                  can_decide=_committee() and open_, notice=forms.notice(),
                  can_answer=mine and info.state == "more-information")


@page("/requests/<int:request_id>/resubmit", Action.REQUEST_ACCESS, methods=("POST",))
def resubmit_request(request_id: int) -> BaseResponse | tuple[str, int]:
    """The applicant's answer to the committee's question, with the amended application."""
    user = decision().principal.user_id
    doc = _application_form()
    doc["response"] = forms.text("response")
    try:
        if user is None:
            raise BadRequest("requests are filed by a named user")
        with services().write_sessions.begin() as session:
            access_requests.resubmit(session, request_id, user, doc)
    except BadRequest as exc:
        return _show(request_id, exc.reason, 400)
    return forms.done("ui.access_request", "resubmitted", request_id=request_id)


@page("/requests/<int:request_id>/decisions", Action.ADMIN, methods=("POST",))
def decide_request(request_id: int) -> BaseResponse | tuple[str, int]:
    """Record the committee's decision (an approval creates the licence)."""
    scopes = [s for s in request.form.getlist("scopes") if s in SCOPE_LABELS]
    try:
        with services().write_sessions.begin() as session:
            access_requests.decide(
                session, request_id, decision().principal.user_id, forms.text("decision"),
                forms.text("reason", required=True), cohort_id=forms.optional_id("cohort_id"),
                scopes=",".join(scopes) if scopes else None,
                starts=forms.optional_date("starts"), ends=forms.optional_date("ends"),
            )
    except BadRequest as exc:
        return _show(request_id, exc.reason, 400)
    _changed()
    return forms.done("ui.access_request", "decided", request_id=request_id)
