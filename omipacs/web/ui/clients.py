"""A client's page: her timeline, pathology, and each study's views with the marks.

The same checks and services as ``GET /api/v1/clients/{id}/timeline``: a client
outside the caller's licence is 404 (:func:`omipacs.web.api.require_member`), the
timeline comes from :func:`client_timeline`, the images of each study from
:func:`study_images` under the request's visibility, and their thumbnails from
:mod:`omipacs.web.ui.images`. "Open in OHIF" links to the configured viewer
(``[ui] ohif_url``) for the study, through the DICOMweb root the caller reads from.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from flask import redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from omipacs.access.policy import Action
from omipacs.access.scopes import Scope
from omipacs.annotations.study_images import study_images
from omipacs.clinical.pathology import client_pathology
from omipacs.clinical.timeline import client_timeline
from omipacs.errors import BadRequest
from omipacs.web.api import require_member
from omipacs.web.context import decision, restriction, services
from omipacs.web.proxy import base_url
from omipacs.web.ui import licence
from omipacs.web.ui.blueprint import page, render
from omipacs.web.ui.images import thumbnail_url

_CLIENT_ID = re.compile(r"^[^\x00-\x1f/\x7f]{1,64}$")


def dicomweb_root() -> str:
    """The DICOMweb root this caller reads from, as an absolute URL."""
    settings = services().settings
    chosen = licence.current()
    path = settings.http.base_path
    if chosen is not None:
        path = f"/licences/{chosen}{path}"
    return base_url(request, path, public_url=settings.http.public_url)


def ohif_link(study_uid: str) -> str | None:
    """The configured viewer's URL for ``study_uid`` (None: no viewer configured)."""
    template = services().settings.ui.ohif_url
    if not template:
        return None
    chosen = licence.current()
    return (template.replace("{study}", quote(study_uid, safe=""))
            .replace("{licence}", "" if chosen is None else str(chosen))
            .replace("{dicomweb}", quote(dicomweb_root(), safe="")))


@page("/clients", Action.READ_CLINICAL, nav="Clients", order=30)
def clients() -> BaseResponse | tuple[str, int]:
    wanted = request.args.get("client", "").strip()
    if wanted:
        if not _CLIENT_ID.match(wanted):
            raise BadRequest("a client ID has at most 64 characters and no /")
        return redirect(url_for("ui.client", client_id=wanted, **licence.query()), code=303)
    return render("ui/clients.html")


@page("/clients/<client_id>", Action.READ_CLINICAL)
def client(client_id: str) -> tuple[str, int]:
    require_member(client_id)
    marks = decision().has(Scope.MARKS)
    with services().sessions() as session:
        timeline = client_timeline(session, client_id, restriction())
        studies = [s for e in timeline.episodes for s in e.studies]
        studies += list(timeline.unlinked_studies)
        images = study_images(session, [s.study_uid for s in studies], restriction(),
                              marks=marks)
        pathology = client_pathology(session, client_id)
    views = {
        uid: [{"image": img, "url": thumbnail_url(img)} for img in found]
        for uid, found in images.items()
    }
    links = {s.study_uid: ohif_link(s.study_uid) for s in studies if views.get(s.study_uid)}
    return render("ui/client.html", timeline=timeline, views=views, links=links,
                  pathology=pathology, marks=marks, dicomweb=dicomweb_root())
