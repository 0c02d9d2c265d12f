"""QIDO-RS (PS3.18 §10.6): search studies, series and instances."""

from __future__ import annotations

import json
from typing import Any, Literal

from flask import Blueprint, Response, request

from omipacs.query.params import parse_qido
from omipacs.query.search import search
from omipacs.web import negotiate
from omipacs.web.context import dicomweb_base, restriction, services

bp = Blueprint("qido", __name__)

DICOM_JSON = "application/dicom+json"
STUDY, SERIES, SOP, RETRIEVE_URL = "0020000D", "0020000E", "00080018", "00081190"


def _search(
    level: Literal["study", "series", "instance"],
    study: str | None = None,
    series: str | None = None,
) -> Response:
    negotiate.wants(request.headers.get("Accept"), DICOM_JSON, "application/json")
    svc = services()
    http = svc.settings.http
    query = parse_qido(
        list(request.args.items(multi=True)),
        level,
        study_uid=study,
        series_uid=series,
        default_limit=http.qido_default_limit,
        max_limit=http.qido_max_limit,
    )
    restrict = restriction()
    with svc.sessions() as session:
        result = search(session, query, restrict=restrict)
    warnings = []
    if result.truncated:
        warnings.append(
            f'299 {request.host} "The number of results exceeded the maximum supported by '
            'the server. Additional results can be requested."'
        )
    if query.ignored_keys:
        warnings.append(
            f'299 {request.host} "The following attributes are not supported for matching '
            f'and were ignored: {", ".join(query.ignored_keys)}"'
        )
    base = dicomweb_base()
    items = [_with_retrieve_url(item, level, base) for item in result.items]
    return Response(
        json.dumps(items, separators=(",", ":")),
        content_type=DICOM_JSON,
        headers=[("Warning", w) for w in warnings],
    )


def _uid(item: dict[str, Any], key: str) -> str:
    return str(item[key]["Value"][0])


def _with_retrieve_url(item: dict[str, Any], level: str, base: str) -> dict[str, Any]:
    """Add Retrieve URL (0008,1190), a default return key at every level (PS3.18 Tables
    10.6.3-3 to -5): the WADO-RS URL of the study, series or instance."""
    url = f"{base}/studies/{_uid(item, STUDY)}"
    if level != "study":
        url += f"/series/{_uid(item, SERIES)}"
    if level == "instance":
        url += f"/instances/{_uid(item, SOP)}"
    return dict(sorted({**item, RETRIEVE_URL: {"vr": "UR", "Value": [url]}}.items()))


@bp.get("/studies")
def studies() -> Response:
    return _search("study")


@bp.get("/series")
def all_series() -> Response:
    return _search("series")


@bp.get("/studies/<study>/series")
def study_series(study: str) -> Response:
    return _search("series", study)


@bp.get("/instances")
def all_instances() -> Response:
    return _search("instance")


@bp.get("/studies/<study>/instances")
def study_instances(study: str) -> Response:
    return _search("instance", study)


@bp.get("/studies/<study>/series/<series>/instances")
def series_instances(study: str, series: str) -> Response:
    return _search("instance", study, series)
