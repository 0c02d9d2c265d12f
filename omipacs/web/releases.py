"""``/api/v1/licences/{id}/releases``: a licence's releases, started by admins and
followed by admins and curators (as on the dashboard's releases page).

Thin: parses, calls :mod:`omipacs.export`, formats. The access check (``admin`` to
start one, ``read-releases`` to follow them) and the audit record are
:mod:`omipacs.web.auth`'s, like every other endpoint's.
"""

from __future__ import annotations

from flask import Blueprint, Response

from omipacs.errors import BadRequest
from omipacs.export import launch
from omipacs.export import release as releases
from omipacs.web.api import _body, _json
from omipacs.web.context import services

bp = Blueprint("releases", __name__)


@bp.post("/licences/<int:licence_id>/releases")
def create(licence_id: int) -> Response:
    doc = _body()
    if not isinstance(doc, dict) or not isinstance(doc.get("url"), str) or not doc["url"]:
        raise BadRequest('expected {"url": "<folder, s3://… or gs://…>"}')
    full = doc.get("full", False)
    if not isinstance(full, bool):
        raise BadRequest("full must be true or false")
    check = doc.get("check", "sha256")
    if not isinstance(check, str):
        raise BadRequest("check must be a string")
    info = launch.start(services(), licence_id, doc["url"], full=full, check=check)
    response = _json(info.to_dict(), status=202)
    response.headers["Location"] = f"/api/v1/licences/{licence_id}/releases/{info.number}"
    return response


@bp.get("/licences/<int:licence_id>/releases")
def listing(licence_id: int) -> Response:
    with services().sessions() as session:
        return _json([r.to_dict() for r in releases.list_releases(session, licence_id)])


@bp.get("/licences/<int:licence_id>/releases/<int:number>")
def show(licence_id: int, number: int) -> Response:
    with services().sessions() as session:
        return _json(releases.get_release(session, licence_id, number).to_dict())
