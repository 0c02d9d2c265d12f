"""Per-request access to the archive's services and the client-facing base URL."""

from __future__ import annotations

from flask import current_app, g, request

from omipacs.access.policy import Decision
from omipacs.errors import Forbidden
from omipacs.index.visibility import Visibility
from omipacs.retrieve.frames import HeaderCache
from omipacs.services import Services
from omipacs.web.proxy import base_url


def services() -> Services:
    """The Services this app was created with."""
    found: Services = current_app.extensions["omipacs"]
    return found


def headers_cache() -> HeaderCache:
    """The process-wide cache of parsed instance headers."""
    found: HeaderCache = current_app.extensions["omipacs.headers"]
    return found


def dicomweb_base() -> str:
    """Absolute DICOMweb root as the client sees it (cohort roots included)."""
    svc = services()
    base_path = svc.settings.http.base_path
    path = request.path
    cut = path.find(base_path)
    root = path[: cut + len(base_path)] if cut >= 0 else base_path
    return base_url(request, root, public_url=svc.settings.http.public_url)


def decision() -> Decision:
    """The access decision for this request (made before the view ran)."""
    found: Decision | None = g.get("decision")
    if found is None:  # a view reached without the access check: refuse, never serve
        raise Forbidden("no access decision for this request")
    return found


def restriction() -> Visibility:
    """What this request may see; every query and retrieval applies it.

    The whole archive for admins and curators on ``/dicom-web``; a saved cohort's
    members under ``/cohorts/{id}/dicom-web``; a licence's members within its data
    scopes under ``/licences/{id}/dicom-web``.
    """
    return decision().visibility
