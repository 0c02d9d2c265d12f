"""Per-request access to the archive's services and the client-facing base URL."""

from __future__ import annotations

from flask import current_app, g, request
from sqlalchemy import ColumnElement

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


def cohort_id() -> int | None:
    """The cohort whose DICOMweb root this request came through, if any."""
    value: int | None = g.get("cohort_id")
    return value


def restriction() -> ColumnElement[bool] | None:
    """The condition every query of this request must satisfy (None: whole archive).

    Requests under ``/cohorts/{id}/dicom-web`` see only that saved cohort's studies; a
    cohort that does not exist gives 404, like anything else not visible.
    """
    cid = cohort_id()
    if cid is None:
        return None
    from omipacs.clinical.cohorts import cohort_restriction, get_cohort

    with services().sessions() as session:
        get_cohort(session, cid, with_members=False)
    return cohort_restriction(cid)
