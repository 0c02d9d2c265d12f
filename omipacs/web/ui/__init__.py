"""The web dashboard under ``/ui/``: server-rendered pages over the archive's services.

Pages are Flask views with Jinja templates, a little htmx for live updates and Vega-Lite
for charts; every script and style is served by the archive itself
(``static/ui/vendor/``, see its LICENSES.md), never from a CDN. Like the JSON API, the
views are thin: they parse the request, call the same core services
(:mod:`omipacs.clinical.stats`, the cohort builder, the timeline, the marks, the
renderer) and format the result. Access is decided before a view runs, by
:mod:`omipacs.web.auth` and the one access check, with the principal of the session
(:mod:`omipacs.web.ui.session`).

Adding a page (the curator's desk, the access requests)::

    # omipacs/web/ui/desk.py
    from omipacs.access.policy import Action, Role
    from omipacs.web.ui.blueprint import page, render

    @page("/desk/licences", Action.ADMIN, nav="Licences", roles={Role.ADMIN}, order=50)
    def licences() -> tuple[str, int]:
        return render("ui/desk/licences.html", licences=...)

    @page("/desk/licences/<int:licence_id>/suspend", Action.ADMIN, methods=("POST",))
    def suspend_licence(licence_id: int) -> Response:
        ...  # the CSRF token was checked before the view ran

then import the module in :data:`VIEWS` below. :func:`~.blueprint.page` puts the endpoint
(``ui.<function name>``) into the access table with its :class:`Action` (so a test that
walks the URL map finds it) and, with ``nav``, adds a menu entry for ``roles``. Templates
extend ``ui/base.html`` and fill ``{% block content %}`` (``{% block title %}`` for the
page title); every form carries ``{{ csrf_field() }}``, and htmx requests send the token
from the page's ``<meta name="csrf-token">`` (``static/ui/ui.js`` adds the header).
``principal`` (the signed-in :class:`~omipacs.access.policy.Principal`) is available in
every template. Views raise the usual :mod:`omipacs.errors` exceptions; the blueprint
turns them into an HTML error page with the same status, and an expired session into a
redirect to ``/ui/login``.
"""

from __future__ import annotations

from omipacs.web.ui import (
    applications,
    audit,
    clients,
    cohorts,
    desk,
    images,
    licence,
    overview,
    quarantine,
    releases,
    session,
)
from omipacs.web.ui.blueprint import bp

VIEWS = (session, licence, overview, images, cohorts, clients, applications, desk, quarantine,
         audit, releases)
"""Modules whose import registers the dashboard's pages."""

__all__ = ["VIEWS", "bp"]
