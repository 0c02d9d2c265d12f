"""Single sign-on for the dashboard with the configured OpenID Connect issuer.

The implicit flow with the ID token in the URL fragment (OpenID Connect Core 3.2):
``GET /ui/login/oidc?start=1`` sends the browser to the issuer's authorization endpoint
with a random ``state`` and ``nonce`` (kept in a short-lived HttpOnly cookie); the
issuer sends it back to ``/ui/login/oidc#id_token=…&state=…``; the fragment never
reaches a server, so that page's script (``static/ui/oidc.js``) posts it, with the CSRF
token, to ``POST /ui/login/oidc``. There the state and nonce are compared with the
cookie's, the token is verified by :class:`omipacs.access.authenticate.OidcVerifier`
(signature, issuer, audience, expiry) and resolved to its user exactly as the API
resolves it as a bearer token, and it becomes the session's credential: the session
ends when the identity token expires.

No client secret and no back channel are needed, so the archive never calls the issuer
except for its signing keys.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

from flask import g, redirect, request, url_for

from omipacs.access.authenticate import OidcVerifier
from omipacs.errors import NotFound, Unauthorized
from omipacs.web.context import services
from omipacs.web.proxy import base_url
from omipacs.web.ui import session
from omipacs.web.ui.blueprint import render

FLOW_COOKIE = "omipacs_oidc"
FLOW_SECONDS = 600


def _return_url() -> str:
    return base_url(request, url_for("ui.login_oidc"),
                    public_url=services().settings.http.public_url)


def handle() -> Any:
    """Start the sign-on, serve the return page, or finish it (POST)."""
    settings = services().settings.auth
    oidc = settings.oidc
    if not (oidc.issuer and oidc.authorization_url and oidc.client_id):
        raise NotFound("single sign-on is not configured")
    target = session.safe_next(request.values.get("next"))
    if request.method == "GET" and request.args.get("start") == "1":
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        query = urlencode({
            "response_type": "id_token",
            "response_mode": "fragment",
            "client_id": oidc.client_id,
            "redirect_uri": _return_url(),
            "scope": "openid email",
            "state": state,
            "nonce": nonce,
        })
        response = redirect(f"{oidc.authorization_url}?{query}", code=303)
        # Lax: the issuer's redirect back is a cross-site navigation.
        response.set_cookie(FLOW_COOKIE, f"{state}.{nonce}.{target}", max_age=FLOW_SECONDS,
                            path=session.COOKIE_PATH, httponly=True, samesite="Lax",
                            secure=request.is_secure)
        return response
    if request.method == "GET":
        return render("ui/oidc_return.html")
    state, _, rest = request.cookies.get(FLOW_COOKIE, "").partition(".")
    nonce, _, saved_next = rest.partition(".")
    raw = request.form.get("id_token", "")
    if not state or not hmac.compare_digest(request.form.get("state", ""), state):
        return _refused("the sign-in did not start here or took too long")
    try:
        claims = OidcVerifier(settings).claims(raw)
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise Unauthorized("identity token for another sign-in")
        session.authenticator().authenticate(services().sessions, f"Bearer {raw}")
    except Unauthorized as exc:
        return _refused(exc.reason)
    g.ui_credential = raw
    response = session.start_session(redirect(session.safe_next(saved_next), code=303), raw)
    response.delete_cookie(FLOW_COOKIE, path=session.COOKIE_PATH)
    return response


def _refused(reason: str) -> Any:
    g.error_reason = reason
    return render("ui/login.html", 401, next=url_for("ui.overview"), sso=True,
                  message=f"Single sign-on failed ({reason}).")
