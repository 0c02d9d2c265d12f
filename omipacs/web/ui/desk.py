"""The curator's desk: users, licences and tokens (admins only, as in the role model).

Adding and disabling users, creating, suspending, reinstating and revoking licences,
adding members, issuing and revoking tokens: the operations of
``omipacs user|licence|token`` and ``/api/v1/admin``
(all of them :mod:`omipacs.access.admin`). Every change drops this process's cached
principals, so it takes effect at once here and within ``[auth] cache_seconds`` in
other workers. A new token's secret is shown once, in the answer to the form that made
it (never stored, never put in a URL or a cookie); the listing shows its prefix only.
"""

from __future__ import annotations

from typing import Any

from flask import request, url_for
from werkzeug.wrappers import Response as BaseResponse

from omipacs.access import admin
from omipacs.access.authenticate import utcnow
from omipacs.access.policy import Action, Role
from omipacs.access.scopes import parse_scopes
from omipacs.cohorts import list_cohorts
from omipacs.errors import BadRequest
from omipacs.web.admin import _changed
from omipacs.web.context import services
from omipacs.web.ui import forms
from omipacs.web.ui.applications import SCOPE_LABELS
from omipacs.web.ui.blueprint import page, render

ADMINS = {Role.ADMIN}


def _licences_page(error: str = "", status: int = 200, form: dict[str, Any] | None = None
                   ) -> tuple[str, int]:
    with services().sessions() as session:
        licences = admin.list_licences(session)
        cohorts = list_cohorts(session)
        users = admin.list_users(session)
    return render("ui/desk/licences.html", status, licences=licences, cohorts=cohorts,
                  users=users, scopes=SCOPE_LABELS, error=error, form=form or {},
                  notice=forms.notice())


@page("/desk/licences", Action.ADMIN, nav="Licences", roles=ADMINS, order=70)
def licences() -> tuple[str, int]:
    """Every licence with its state, and the form to create one."""
    return _licences_page()


@page("/desk/licences", Action.ADMIN, methods=("POST",), endpoint="create_licence")
def create_licence() -> BaseResponse | tuple[str, int]:
    """Create a licence on a saved cohort version."""
    form = {k: request.form.get(k, "") for k in ("title", "purpose", "organisation",
                                                   "cohort_id", "starts", "ends")}
    try:
        cohort = forms.optional_id("cohort_id")
        ends = forms.optional_date("ends")
        if cohort is None:
            raise BadRequest("choose the cohort the licence is bound to")
        if ends is None:
            raise BadRequest("a licence needs an end date")
        scopes = ",".join(s for s in request.form.getlist("scopes") if s in SCOPE_LABELS)
        members = [m for m in request.form.getlist("members") if m]
        with services().write_sessions.begin() as session:
            info = admin.create_licence(
                session, title=forms.text("title", required=True, limit=256),
                purpose=forms.text("purpose"), organisation=forms.text("organisation", limit=128),
                cohort_id=cohort, scopes=scopes, starts=forms.optional_date("starts"),
                ends=ends, members=members,
            )
    except BadRequest as exc:
        return _licences_page(exc.reason, 400, form)
    _changed()
    return forms.done("ui.licence", "licence-created", licence_id=info.id)


@page("/desk/licences/<int:licence_id>", Action.ADMIN)
def licence(licence_id: int) -> tuple[str, int]:
    """One licence: its terms, members and tokens; suspend, reinstate, revoke."""
    return _licence_page(licence_id)


def _licence_page(licence_id: int, error: str = "", status: int = 200) -> tuple[str, int]:
    with services().sessions() as session:
        info = admin.show_licence(session, licence_id)
        tokens = [t for t in admin.list_tokens(session) if t.licence_id == licence_id]
        users = [u for u in admin.list_users(session)
                 if u.active and u.email not in info.members]
    return render("ui/desk/licence.html", status, lic=info, tokens=tokens, users=users,
                  scopes=SCOPE_LABELS, granted=parse_scopes(info.scopes), error=error,
                  notice=forms.notice())


@page("/desk/licences/<int:licence_id>/state", Action.ADMIN, methods=("POST",))
def licence_state(licence_id: int) -> BaseResponse | tuple[str, int]:
    """Suspend or reinstate at once; revoking (for good) asks for confirmation first."""
    state = request.form.get("state", "")
    if state == "revoked" and not forms.confirmed():
        return forms.confirmation(
            f"Revoke licence {licence_id}",
            f"Revoke licence {licence_id}? Its members lose access at once and for good: a "
            "revoked licence cannot be reinstated.",
            url_for("ui.licence_state", licence_id=licence_id),
            "Revoke the licence", url_for("ui.licence", licence_id=licence_id),
            {"state": "revoked"})
    try:
        with services().write_sessions.begin() as session:
            admin.set_licence_state(session, licence_id, state)
    except BadRequest as exc:
        return _licence_page(licence_id, exc.reason, 400)
    _changed()
    return forms.done("ui.licence", "licence-state", licence_id=licence_id)


@page("/desk/licences/<int:licence_id>/members", Action.ADMIN, methods=("POST",))
def licence_member(licence_id: int) -> BaseResponse | tuple[str, int]:
    """Let a user work under the licence."""
    try:
        with services().write_sessions.begin() as session:
            admin.add_member(session, licence_id, forms.text("user", required=True))
    except BadRequest as exc:
        return _licence_page(licence_id, exc.reason, 400)
    _changed()
    return forms.done("ui.licence", "member-added", licence_id=licence_id)


def _tokens_page(error: str = "", status: int = 200, created: tuple[str, Any] | None = None
                 ) -> tuple[str, int]:
    with services().sessions() as session:
        tokens = admin.list_tokens(session)
        users = [u for u in admin.list_users(session) if u.active]
        licences = admin.list_licences(session)
    return render("ui/desk/tokens.html", status, tokens=tokens[::-1], users=users,
                  licences=licences, error=error, created=created, notice=forms.notice(),
                  now=utcnow())


@page("/desk/tokens", Action.ADMIN, nav="Tokens", roles=ADMINS, order=71)
def tokens() -> tuple[str, int]:
    """Every token (prefix, holder, licence, use, state), newest first; issue one."""
    return _tokens_page()


@page("/desk/tokens", Action.ADMIN, methods=("POST",), endpoint="create_token")
def create_token() -> tuple[str, int]:
    """Issue a token and show its secret this once.

    Not a redirect: the secret must not travel in a URL or a cookie, and it is never
    stored, so this answer is the only place it appears (``Cache-Control: no-store``, as
    on every dashboard page).
    """
    try:
        with services().write_sessions.begin() as session:
            secret, info = admin.create_token(
                session, forms.text("user", required=True),
                licence_id=forms.optional_id("licence_id"),
                expires=forms.optional_date("expires"), label=forms.text("label", limit=128),
            )
    except BadRequest as exc:
        return _tokens_page(exc.reason, 400)
    return _tokens_page(status=201, created=(secret, info))


@page("/desk/tokens/<int:token_id>/revoke", Action.ADMIN, methods=("POST",))
def revoke_token(token_id: int) -> BaseResponse | tuple[str, int]:
    """Revoke a token (after confirmation): its holder gets 401 from then on."""
    if not forms.confirmed():
        return forms.confirmation(
            f"Revoke token {token_id}",
            f"Revoke token {token_id}? Whoever holds it is refused from the next request; "
            "this cannot be undone.",
            url_for("ui.revoke_token", token_id=token_id), "Revoke the token",
            url_for("ui.tokens"))
    with services().write_sessions.begin() as session:
        admin.revoke_token(session, str(token_id))
    _changed()
    return forms.done("ui.tokens", "token-revoked")


def _users_page(error: str = "", status: int = 200, form: dict[str, str] | None = None
                ) -> tuple[str, int]:
    with services().sessions() as session:
        users = admin.list_users(session)
    return render("ui/desk/users.html", status, users=users, roles=[r.value for r in Role],
                  error=error, form=form or {}, notice=forms.notice())


@page("/desk/users", Action.ADMIN, nav="Users", roles=ADMINS, order=69)
def users() -> tuple[str, int]:
    """Every user with their role; add one."""
    return _users_page()


@page("/desk/users", Action.ADMIN, methods=("POST",), endpoint="add_user")
def add_user() -> BaseResponse | tuple[str, int]:
    """Add a user (they sign in with a token issued on the tokens page, or single sign-on)."""
    form = {k: request.form.get(k, "") for k in ("email", "role", "name", "organisation")}
    try:
        with services().write_sessions.begin() as session:
            admin.add_user(session, forms.text("email", required=True, limit=254),
                           forms.text("role", required=True, limit=16),
                           name=forms.text("name", limit=128),
                           organisation=forms.text("organisation", limit=128))
    except BadRequest as exc:
        return _users_page(exc.reason, 400, form)
    return forms.done("ui.users", "user-added")


@page("/desk/users/<int:user_id>/disable", Action.ADMIN, methods=("POST",))
def disable_user(user_id: int) -> BaseResponse | tuple[str, int]:
    """Disable a user and revoke their tokens (after confirmation)."""
    with services().sessions() as session:
        email = admin.find_user(session, user_id).email
    if not forms.confirmed():
        return forms.confirmation(
            f"Disable {email}",
            f"Disable {email}? Every token they hold is revoked at once and they can no "
            "longer sign in.",
            url_for("ui.disable_user", user_id=user_id), "Disable the user", url_for("ui.users"))
    with services().write_sessions.begin() as session:
        admin.disable_user(session, user_id)
    _changed()
    return forms.done("ui.users", "user-disabled")
