"""The JSON API next to DICOMweb: statistics, cohorts, clinical records, timelines.

Thin views over :mod:`omipacs.clinical`: parse the request, call the core function,
return JSON. Saved cohorts are also served as DICOMweb roots (``/cohorts/{id}/dicom-web``,
see :mod:`omipacs.web.app`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import select

from omipacs.access.policy import readable_cohorts, sees_density_of
from omipacs.access.scopes import Scope
from omipacs.annotations.importer import import_marks
from omipacs.annotations.search import marks_for_study, search_marks
from omipacs.clinical.importer import import_records
from omipacs.clinical.models import Client
from omipacs.clinical.stats import stats
from omipacs.clinical.timeline import client_timeline, find_priors
from omipacs.cohorts import (
    CohortFilters,
    cohort_query,
    get_cohort,
    list_cohorts,
    save_cohort,
)
from omipacs.deid.keys import DeidKeys
from omipacs.errors import BadRequest, ConfigurationError, NotFound
from omipacs.web.context import decision, restriction, services
from omipacs.web.jsonbody import read_json

bp = Blueprint("api", __name__)

PAGING = ("limit", "offset", "count", "after")


def _json(doc: Any, status: int = 200) -> Response:
    return Response(json.dumps(doc, default=str), status=status, content_type="application/json")


def _int_arg(name: str, default: int, maximum: int) -> int:
    value = request.args.get(name, str(default))
    if not value.isdigit():
        raise BadRequest(f"{name} must be a non-negative integer")
    return min(int(value), maximum)


def _body() -> Any:
    return read_json(request, services().settings.http.max_json_bytes)


def stats_tables() -> frozenset[str]:
    """The brochure tables the caller's data scopes cover."""
    d = decision()
    shown = {"marked"} if d.has(Scope.MARKS) else set()
    if d.has(Scope.TWO_D) or d.has(Scope.FOR_PROCESSING):
        shown.add("2d")
    if d.has(Scope.THREE_D):
        shown.add("3d")
    return frozenset(shown)


def require_member(client_id: str) -> None:
    """404 for a client outside the caller's licence."""
    condition = decision().client_condition(Client.client_id)
    if condition is None:
        return
    with services().sessions() as session:
        found = session.scalar(
            select(Client.pk).where(Client.client_id == client_id, condition)
        )
    if found is None:
        raise NotFound("no such client")


@bp.get("/stats")
def get_stats() -> Response:
    d = decision()
    with services().sessions() as session:
        tables = stats(
            session, clients=d.client_condition(Client.client_id), tables=stats_tables()
        )
    if request.args.get("format") == "csv" or (
        request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"
    ):
        return Response(tables.to_csv(), content_type="text/csv")
    return _json(tables.to_dict())


@bp.get("/cohorts")
def cohorts() -> Response:
    d = decision()
    allowed = readable_cohorts(d)
    with services().sessions() as session:
        found = list_cohorts(session, request.args.get("name"))
    return _json([c.to_dict(density=sees_density_of(d, c.id))
                  for c in found if allowed is None or c.id in allowed])


@bp.get("/cohorts/query")
def query_cohort() -> Response:
    params = {k: request.args.getlist(k) for k in request.args if k not in PAGING}
    filters = CohortFilters.from_params(params)
    limit = _int_arg("limit", 100, 10_000)
    offset = _int_arg("offset", 0, 1 << 62)
    count = request.args.get("count", "true").lower() != "false"
    after = request.args.get("after")
    if after is not None and not (0 < len(after) <= 64 and after.isascii() and after.isalnum()):
        raise BadRequest("after must be a client ID (the previous page's next_after)")
    with services().sessions() as session:
        result = cohort_query(
            session, filters, limit=limit, offset=offset, count=count, after=after
        )
    return _json(result.to_dict())


@bp.post("/cohorts")
def create_cohort() -> Response:
    body = _body()
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
        raise BadRequest("expected {name, description?, filters}")
    filters = CohortFilters.from_dict(body.get("filters") or {})
    with services().write_sessions.begin() as session:
        summary = save_cohort(
            session, body["name"], filters, description=str(body.get("description", ""))
        )
    return _json(summary.to_dict(), status=201)


@bp.get("/cohorts/<int:cohort_id>")
def cohort(cohort_id: int) -> Response:
    members = request.args.get("members", "true").lower() != "false"
    d = decision()
    allowed = readable_cohorts(d)
    if allowed is not None and cohort_id not in allowed:
        raise NotFound("no such cohort")
    with services().sessions() as session:
        saved = get_cohort(session, cohort_id, with_members=members)
    return _json(saved.to_dict(density=sees_density_of(d, cohort_id)))


def _keys() -> DeidKeys:
    keys = services().extras.get("deid.keys")
    if not isinstance(keys, DeidKeys):
        raise ConfigurationError("clinical import needs the de-identification key")
    return keys


@bp.post("/clinical")
def post_clinical() -> Response:
    body = _body()
    records = body if isinstance(body, list) else [body]
    with services().write_sessions() as session:
        report = import_records(session, records, _keys(),
                                keep_fields=services().settings.deid.clinical_fields)
    return _json(report.to_dict(), status=200 if report.ok else 422)


@bp.post("/marks")
def post_marks() -> Response:
    body = _body()
    source_uids = False
    records = body
    if isinstance(body, dict) and "records" in body:
        records, source_uids = body["records"], bool(body.get("source_uids", False))
    if not isinstance(records, list):
        records = [records]
    report = import_marks(services(), records, source_uids=source_uids)
    status = 422 if report.rejected and not report.accepted else 200
    return _json(report.to_dict(), status=status)


@bp.get("/marks")
def get_marks() -> Response:
    args = request.args
    clinical = decision().has(Scope.CLINICAL)
    if not clinical and args.getlist("outcome"):
        raise NotFound("the licence does not include clinical data")
    with services().sessions() as session:
        found = search_marks(
            session,
            client=args.get("client"),
            study_uid=args.get("study"),
            sop_uid=args.get("sop"),
            lesion_type=args.getlist("lesion_type") or None,
            conspicuity=args.getlist("conspicuity") or None,
            outcome=args.getlist("outcome") or None,
            limit=_int_arg("limit", 100, 10_000),
            offset=_int_arg("offset", 0, 1 << 62),
            restrict=restriction(),
        )
    return _json([_mark(m.to_dict(), clinical) for m in found])


def _mark(doc: dict[str, Any], clinical: bool) -> dict[str, Any]:
    """A mark as the caller may see it: no outcome or pathology without clinical data."""
    if not clinical:
        for key in ("client_outcome", "pathology"):
            doc.pop(key, None)
    return doc


@bp.get("/studies/<study>/marks")
def study_marks(study: str) -> Response:
    clinical = decision().has(Scope.CLINICAL)
    with services().sessions() as session:
        found = marks_for_study(session, study, restrict=restriction())
    return _json([_mark(m.to_dict(), clinical) for m in found])


@bp.get("/clients/<client_id>/timeline")
def timeline(client_id: str) -> Response:
    require_member(client_id)
    with services().sessions() as session:
        return _json(client_timeline(session, client_id, restriction()).to_dict())


@bp.get("/clients/<client_id>/priors")
def priors(client_id: str) -> Response:
    require_member(client_id)
    with services().sessions() as session:
        found = find_priors(session, client_id, restriction())
    return _json([dataclasses.asdict(p) for p in found])
