"""``/api/v1/admin``: users, licences and tokens for admins; the audit trail for
admins and curators.

The same operations as ``omipacs user|licence|token|audit`` (both call
:mod:`omipacs.access.admin`). Every change drops this process's cached principals, so
it takes effect at once here and within ``[auth] cache_seconds`` elsewhere.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import Blueprint, Response, current_app, request

from omipacs.access import admin
from omipacs.access.audit import query_events
from omipacs.errors import BadRequest
from omipacs.web.api import _body, _int_arg, _json
from omipacs.web.context import services

bp = Blueprint("admin", __name__)


def _changed() -> None:
    auth = current_app.extensions.get("omipacs.auth")
    if auth is not None:
        auth.forget()


def _date(value: Any, name: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD)") from None


def _str(doc: dict[str, Any], name: str, default: str = "") -> str:
    value = doc.get(name, default)
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


def _object() -> dict[str, Any]:
    doc = _body()
    if not isinstance(doc, dict):
        raise BadRequest("expected a JSON object")
    return doc


@bp.get("/users")
def users() -> Response:
    with services().sessions() as session:
        return _json([u.to_dict() for u in admin.list_users(session)])


@bp.post("/users")
def add_user() -> Response:
    doc = _object()
    with services().write_sessions.begin() as session:
        user = admin.add_user(
            session, _str(doc, "email"), _str(doc, "role"),
            name=_str(doc, "name"), organisation=_str(doc, "organisation"),
        )
    return _json(user.to_dict(), status=201)


@bp.post("/users/<ref>/disable")
def disable_user(ref: str) -> Response:
    with services().write_sessions.begin() as session:
        user = admin.disable_user(session, ref)
    _changed()
    return _json(user.to_dict())


@bp.get("/licences")
def licences() -> Response:
    with services().sessions() as session:
        return _json([lic.to_dict() for lic in admin.list_licences(session)])


@bp.post("/licences")
def create_licence() -> Response:
    doc = _object()
    cohort = doc.get("cohort_id")
    if not isinstance(cohort, int):
        raise BadRequest("cohort_id must be a saved cohort's ID")
    ends = _date(doc.get("ends"), "ends")
    if ends is None:
        raise BadRequest("ends is required")
    members = doc.get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise BadRequest("members must be a list of user emails")
    scopes = doc.get("scopes", "")
    if isinstance(scopes, list):
        scopes = ",".join(str(s) for s in scopes)
    with services().write_sessions.begin() as session:
        lic = admin.create_licence(
            session, title=_str(doc, "title"), purpose=_str(doc, "purpose"),
            organisation=_str(doc, "organisation"), cohort_id=cohort, scopes=str(scopes),
            starts=_date(doc.get("starts"), "starts"), ends=ends, members=members,
        )
    return _json(lic.to_dict(), status=201)


@bp.get("/licences/<int:licence_id>")
def licence(licence_id: int) -> Response:
    with services().sessions() as session:
        return _json(admin.show_licence(session, licence_id).to_dict())


@bp.post("/licences/<int:licence_id>/state")
def licence_state(licence_id: int) -> Response:
    state = _str(_object(), "state")
    with services().write_sessions.begin() as session:
        lic = admin.set_licence_state(session, licence_id, state)
    _changed()
    return _json(lic.to_dict())


@bp.post("/licences/<int:licence_id>/cohort")
def licence_cohort(licence_id: int) -> Response:
    cohort = _object().get("cohort_id")
    if not isinstance(cohort, int) or isinstance(cohort, bool):
        raise BadRequest("cohort_id must be a saved cohort's ID")
    with services().write_sessions.begin() as session:
        lic = admin.rebind_licence(session, licence_id, cohort)
    _changed()
    return _json(lic.to_dict())


@bp.post("/licences/<int:licence_id>/members")
def licence_member(licence_id: int) -> Response:
    user = _str(_object(), "user")
    with services().write_sessions.begin() as session:
        lic = admin.add_member(session, licence_id, user)
    _changed()
    return _json(lic.to_dict())


@bp.get("/tokens")
def tokens() -> Response:
    with services().sessions() as session:
        found = admin.list_tokens(session, request.args.get("user"))
    return _json([t.to_dict() for t in found])


@bp.post("/tokens")
def create_token() -> Response:
    doc = _object()
    licence_id = doc.get("licence_id")
    if licence_id is not None and not isinstance(licence_id, int):
        raise BadRequest("licence_id must be a licence ID")
    with services().write_sessions.begin() as session:
        secret, info = admin.create_token(
            session, _str(doc, "user"), licence_id=licence_id,
            expires=_date(doc.get("expires"), "expires"), label=_str(doc, "label"),
        )
    return _json({"token": secret, **info.to_dict()}, status=201)


@bp.post("/tokens/<ref>/revoke")
def revoke_token(ref: str) -> Response:
    with services().write_sessions.begin() as session:
        info = admin.revoke_token(session, ref)
    _changed()
    return _json(info.to_dict())


@bp.get("/audit")
def audit() -> Response:
    since = request.args.get("since")
    try:
        since_at = datetime.fromisoformat(since) if since else None
    except ValueError:
        raise BadRequest("since must be an ISO 8601 time") from None
    licence_arg = request.args.get("licence")
    if licence_arg is not None and not licence_arg.isdigit():
        raise BadRequest("licence must be a licence ID")
    svc = services()
    if svc.audit is not None:
        svc.audit.flush()
    with svc.sessions() as session:
        events = query_events(
            session,
            user=request.args.get("user"),
            licence=int(licence_arg) if licence_arg else None,
            since=since_at.replace(tzinfo=None) if since_at else None,
            outcome=request.args.get("outcome"),
            limit=_int_arg("limit", 1000, 100_000),
        )
    return _json([e.to_json() for e in events])
