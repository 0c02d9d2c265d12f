"""The dashboard's blueprint, its page registry and its navigation.

Every dashboard view is registered with :func:`page`, which puts the endpoint into the
access table of :mod:`omipacs.web.auth` (so the one access check,
:func:`omipacs.access.policy.authorize`, decides before the view runs) and, when asked,
adds a navigation entry shown to the roles that may use it. See the package docstring
(:mod:`omipacs.web.ui`) for how a new page is added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint, g, render_template

from omipacs.access.policy import Action, Principal, Role, authorize
from omipacs.errors import OmipacsError
from omipacs.web import auth

bp = Blueprint(
    "ui",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

PUBLIC_ENDPOINTS: frozenset[str] = frozenset({"ui.static", "ui.login", "ui.login_oidc"})
"""Reachable without a session: the login form, the OpenID Connect return and the
assets they need. Everything else needs a signed-in principal."""
for _endpoint in PUBLIC_ENDPOINTS:
    auth.ENDPOINT_ACTIONS[_endpoint] = Action.CAPABILITIES
    auth.OPTIONAL_AUTHENTICATION.add(_endpoint)

ALL_ROLES: frozenset[Role] = frozenset(Role)


@dataclass(frozen=True)
class NavEntry:
    """A link in the dashboard's main navigation."""

    label: str
    endpoint: str
    roles: frozenset[Role]
    order: int


_NAV: list[NavEntry] = []

F = TypeVar("F", bound=Callable[..., Any])


def page(
    rule: str,
    action: Action,
    *,
    methods: Iterable[str] = ("GET",),
    nav: str | None = None,
    roles: Iterable[Role] = ALL_ROLES,
    order: int = 100,
    endpoint: str | None = None,
) -> Callable[[F], F]:
    """Register a dashboard view under ``/ui`` with the action the access check needs.

    ``nav`` adds a navigation entry with that label for ``roles`` (the view itself is
    guarded by ``action`` through the policy, whatever the menu shows); ``order`` sorts
    the menu. POST views get the CSRF check from :mod:`omipacs.web.ui.session`.
    """

    def register(view: F) -> F:
        name = endpoint or view.__name__
        full = f"ui.{name}"
        if full in auth.ENDPOINT_ACTIONS and auth.ENDPOINT_ACTIONS[full] is not action:
            raise RuntimeError(f"{full} is already registered with another action")
        auth.ENDPOINT_ACTIONS[full] = action
        bp.add_url_rule(rule, endpoint=name, view_func=view, methods=list(methods))
        if nav is not None and all(e.endpoint != full for e in _NAV):
            _NAV.append(NavEntry(nav, full, frozenset(roles), order))
            _NAV.sort(key=lambda e: (e.order, e.label))
        return view

    return register


def nav_for(principal: Principal | None) -> list[NavEntry]:
    """The navigation entries ``principal`` sees (none before signing in).

    A researcher's entries are also put to the one access check under the licence the
    page works under: a page her licence's data types do not reach (the statistics of a
    licence without clinical data) is not offered, rather than offered and then 404.
    """
    if principal is None:
        return []
    entries = [e for e in _NAV if principal.role in e.roles]
    if principal.role is Role.RESEARCHER:
        entries = [e for e in entries if _allowed(principal, auth.ENDPOINT_ACTIONS[e.endpoint])]
    return entries


def _allowed(principal: Principal, action: Action) -> bool:
    from omipacs.web.context import services
    from omipacs.web.ui.licence import current

    chosen = current()
    try:
        with services().sessions() as session:
            authorize(session, principal, action,
                      licence=str(chosen) if chosen is not None else None)
    except OmipacsError:
        return False
    return True


def landing(principal: Principal | None) -> str | None:
    """The first page ``principal`` may open (None: none at all)."""
    entries = nav_for(principal)
    return entries[0].endpoint if entries else None


def current_principal() -> Principal | None:
    """The signed-in principal of this request (None on the public pages)."""
    found: Principal | None = g.get("principal")
    return found


def render(template: str, code: int = 200, **context: Any) -> tuple[str, int]:
    """Render a dashboard template (base.html's navigation and CSRF helpers included)."""
    return render_template(template, **context), code


@bp.app_template_filter("outcome")
def outcome_label(code: str | None) -> str:
    """A case outcome code (``M``) as the brochure names it (``Malignant``)."""
    from omipacs.clinical.codes import CaseOutcome
    from omipacs.clinical.stats import OUTCOME_LABELS

    try:
        return OUTCOME_LABELS[CaseOutcome(code or "U")]
    except ValueError:
        return code or ""
