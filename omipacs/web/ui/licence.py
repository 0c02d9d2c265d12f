"""Which licence a researcher's dashboard request works under.

A researcher reads only through a licence. The dashboard uses the one named by
``?licence=`` (remembered in a cookie once chosen), else the token's own licence, else
the first licence the researcher holds; :func:`omipacs.access.policy.authorize` then
decides as for the API (404 for a licence they do not hold). Image requests are made
through that licence's root, so they see its members within its data scopes, as OHIF
would through ``/licences/{id}/dicom-web``. Curators and admins see the whole archive
unless they name a licence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Response, g, request

from omipacs.access.policy import Action, Principal, Role
from omipacs.web import auth
from omipacs.web.ui.blueprint import bp, current_principal

LICENCE_COOKIE = "omipacs_licence"


def _wanted() -> str | None:
    asked = request.args.get("licence")
    if asked is not None:
        return asked
    remembered = request.cookies.get(LICENCE_COOKIE, "")
    return remembered if remembered.isdigit() and len(remembered) <= 12 else None


def choose(principal: Principal) -> str | None:
    """The licence (as the ``licence`` argument of ``authorize``) of this request."""
    wanted = _wanted()
    chosen: str | None
    if principal.role is not Role.RESEARCHER:
        chosen = request.args.get("licence")
    elif wanted is not None and (
        "licence" in request.args or (wanted.isdigit() and principal.usable(int(wanted)))
    ):
        chosen = wanted
    elif principal.bound_licence is not None:
        chosen = str(principal.bound_licence)
    else:
        usable = [grant.id for grant in principal.licences if principal.usable(grant.id)]
        chosen = str(usable[0]) if usable else None
    if chosen is not None and chosen.isdigit() and len(chosen) <= 12:
        g.ui_licence = int(chosen)
        if auth.action_for(request.endpoint) is Action.READ_IMAGES:
            g.licence_id = int(chosen)  # the licence's root: its members, its scopes
    return chosen


auth.LICENCE_CHOICE[bp.name] = choose


def current() -> int | None:
    """The licence this request works under (None: the whole archive)."""
    found = g.get("ui_licence")
    return int(found) if found is not None else None


@dataclass(frozen=True)
class LicenceOption:
    """An entry of the licence selector."""

    id: int
    selected: bool


def options() -> list[LicenceOption]:
    """The licences the signed-in researcher may choose between (empty for others)."""
    principal = current_principal()
    if principal is None or principal.role is not Role.RESEARCHER:
        return []
    chosen = current()
    return [
        LicenceOption(grant.id, grant.id == chosen)
        for grant in principal.licences
        if principal.usable(grant.id)
    ]


def query() -> dict[str, Any]:
    """URL arguments that keep the current licence in links (image URLs, fragments)."""
    chosen = current()
    return {} if chosen is None else {"licence": chosen}


@bp.after_request
def _remember(response: Response) -> Response:
    chosen = current()
    if "licence" in request.args and chosen is not None and response.status_code < 400:
        response.set_cookie(LICENCE_COOKIE, str(chosen), path="/ui", httponly=True,
                            samesite="Strict", secure=request.is_secure)
    return response


@bp.app_context_processor
def _template_helpers() -> dict[str, object]:
    return {"licence_options": options(), "licence_query": query()}
