"""QIDO-RS (PS3.18 §10.6): search studies, series and instances."""

from __future__ import annotations

import json
from typing import Literal

from flask import Blueprint, Response, request

from omipacs.query.params import parse_qido
from omipacs.query.search import search
from omipacs.web import negotiate
from omipacs.web.context import restriction, services

bp = Blueprint("qido", __name__)

DICOM_JSON = "application/dicom+json"


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
    headers = {}
    if result.truncated:
        headers["Warning"] = (
            f'299 {request.host} "The number of results exceeded the maximum supported by '
            'the server. Additional results can be requested."'
        )
    return Response(
        json.dumps(result.items, separators=(",", ":")), content_type=DICOM_JSON, headers=headers
    )


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
