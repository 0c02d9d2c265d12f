"""Signing in to the dashboard: the session cookie, CSRF protection, login and logout.

The session *is* the credential the API takes: the token pasted into ``/ui/login`` (or
the identity token of the OpenID Connect sign-in) is kept in an HttpOnly, SameSite=Strict
cookie (Secure over HTTPS) and read by :mod:`omipacs.web.auth` in place of the
``Authorization`` header. Every page therefore resolves to the same
:class:`~omipacs.access.policy.Principal` as a bearer request with that token, through the
same cache, and a revoked or expired token, a disabled user or a suspended licence ends
the session at the next request, as it would for the API. Nothing about sessions is
stored on the server.

CSRF: a random nonce lives in a second HttpOnly cookie; the token every form carries
(``csrf_token``, or the ``X-CSRF-Token`` header htmx sends) is an HMAC of the session
credential keyed by that nonce. Another site can neither read it nor make the browser
send the cookies (SameSite=Strict), and it changes with every sign-in. Every POST, PUT,
PATCH and DELETE under ``/ui`` is refused without it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import Request, Response, current_app, g, redirect, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from omipacs.access.authenticate import Authenticator
from omipacs.access.policy import Action
from omipacs.errors import BadRequest, Forbidden, NotFound, OmipacsError, Unauthorized
from omipacs.web import auth
from omipacs.web.context import services
from omipacs.web.ui.blueprint import bp, current_principal, landing, nav_for, page, render

SESSION_COOKIE = "omipacs_session"
NONCE_COOKIE = "omipacs_csrf"
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_CREDENTIAL = re.compile(r"^[A-Za-z0-9._~+/=-]{1,8192}$")
_NEXT = re.compile(r"^/ui/[A-Za-z0-9/_.\-]*(\?[A-Za-z0-9_.\-=&%+]*)?$")
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: What the pages allow the browser to load: only the archive's own scripts and styles.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)


def _credential(req: Request) -> str | None:
    value = req.cookies.get(SESSION_COOKIE, "")
    return value if _CREDENTIAL.match(value) else None


def _header(req: Request) -> str | None:
    credential = _credential(req)
    return f"Bearer {credential}" if credential else None


auth.CREDENTIALS[bp.name] = _header


def authenticator() -> Authenticator:
    """The process's authenticator (the one the API uses)."""
    found: Authenticator = current_app.extensions["omipacs.auth"]
    return found


def login_required() -> bool:
    """False for the single-user ``[auth] mode = "none"`` install."""
    return authenticator().required


def _secure() -> bool:
    public = services().settings.http.public_url
    return request.is_secure or public.startswith("https://")


def _nonce() -> str:
    found = g.get("ui_nonce")
    if found:
        return str(found)
    value = request.cookies.get(NONCE_COOKIE, "")
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        value = secrets.token_hex(32)
        g.ui_new_nonce = value
    g.ui_nonce = value
    return value


def csrf_token() -> str:
    """The CSRF token of this browser's current session."""
    credential = g.get("ui_credential")
    if credential is None:
        credential = _credential(request) or ""
    return hmac.new(_nonce().encode(), f"csrf:{credential}".encode(), hashlib.sha256).hexdigest()


def csrf_field() -> Markup:
    """The hidden form field carrying :func:`csrf_token`."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, csrf_token())


def check_csrf() -> None:
    """Refuse an unsafe request whose CSRF token is missing or wrong (403)."""
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD, "")
    if NONCE_COOKIE not in request.cookies or not hmac.compare_digest(
        sent.encode(), csrf_token().encode()
    ):
        raise Forbidden("the form's CSRF token is missing or stale: reload the page")


@bp.before_request
def _csrf() -> None:
    if request.method in _UNSAFE:
        check_csrf()


@bp.after_request
def _headers(response: Response) -> Response:
    new = g.get("ui_new_nonce")
    if new:
        response.set_cookie(
            NONCE_COOKIE, new, path=COOKIE_PATH, httponly=True, samesite="Strict",
            secure=_secure(),
        )
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "ui.static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    principal = current_principal()
    return {
        "csrf_field": csrf_field,
        "csrf_token": csrf_token,
        "principal": principal,
        "nav": nav_for(principal),
        "login_required": login_required(),
    }


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a dashboard path, never another site."""
    if value and _NEXT.match(value) and not urlsplit(value).netloc:
        return value
    return url_for("ui.overview")


def start_session(response: BaseResponse, credential: str) -> BaseResponse:
    """Put ``credential`` (already checked) into the session cookie of ``response``."""
    response.set_cookie(
        SESSION_COOKIE, credential, path=COOKIE_PATH, httponly=True, samesite="Strict",
        secure=_secure(),
    )
    # A fresh nonce at every sign-in: a token seen before it is worth nothing after.
    g.ui_new_nonce = secrets.token_hex(32)
    return response


def end_session(response: BaseResponse) -> BaseResponse:
    """Clear the session cookie."""
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict",
                           secure=_secure())
    return response


@bp.errorhandler(Unauthorized)
def _sign_in(exc: Unauthorized) -> BaseResponse:
    """Not signed in (or the session's token stopped working): to the login form."""
    g.error_reason = exc.reason
    ended = SESSION_COOKIE in request.cookies
    args: dict[str, Any] = {"ended": 1} if ended else {}
    target = url_for("ui.login", next=request.full_path.rstrip("?"), **args)
    if request.headers.get("HX-Request"):
        response: BaseResponse = Response(status=401, headers={"HX-Redirect": target})
    else:
        response = redirect(target, code=303)
    return end_session(response) if ended else response


@bp.errorhandler(OmipacsError)
def _error_page(exc: OmipacsError) -> BaseResponse | tuple[str, int]:
    g.error_reason = exc.reason
    if request.endpoint == "ui.overview" and exc.http_status == 404:
        # The overview is where signing in lands. Whoever may not see its statistics
        # (a researcher whose licence has no clinical data) goes on to the first page
        # she may open, not to an error.
        first = landing(current_principal())
        if first is not None and first != "ui.overview":
            return redirect(url_for(first), code=303)
    return render("ui/error.html", exc.http_status, status=exc.http_status, reason=exc.reason)


@page("/<path:missing>", Action.CAPABILITIES)
def no_such_page(missing: str) -> BaseResponse:
    """Any other path under ``/ui/``: a page of the dashboard (sign-in first, then an
    HTML 404), not the JSON API's error."""
    raise NotFound("no such page")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The sign-in form: paste a token (field ``token``), or use single sign-on."""
    oidc = services().settings.auth.oidc
    sso = bool(oidc.issuer and oidc.authorization_url and oidc.client_id)
    target = safe_next(request.values.get("next"))
    if not login_required():
        return redirect(target, code=303)
    if request.method == "GET":
        ended = request.args.get("ended") == "1"
        message = "Your session has ended; sign in again." if ended else ""
        return render("ui/login.html", next=target, sso=sso, message=message)
    token = request.form.get("token", "").strip()
    if not token:
        raise BadRequest("paste a token into the form")
    try:
        authenticator().authenticate(services().sessions, f"Bearer {token}")
        if not _CREDENTIAL.match(token):
            raise Unauthorized("malformed token")
    except Unauthorized as exc:
        g.error_reason = exc.reason
        return render("ui/login.html", 401, next=target, sso=sso,
                      message=f"That token was refused ({exc.reason}).")
    g.ui_credential = token
    return start_session(redirect(target, code=303), token)


@bp.route("/login/oidc", methods=["GET", "POST"])
def login_oidc() -> Any:
    """Single sign-on with the configured OpenID Connect issuer (see :mod:`.oidc`)."""
    from omipacs.web.ui import oidc as flow

    return flow.handle()


@page("/logout", Action.CAPABILITIES, methods=("POST",))
def logout() -> BaseResponse:
    """End the browser's session (the token itself stays valid until revoked)."""
    return end_session(redirect(url_for("ui.login"), code=303))
