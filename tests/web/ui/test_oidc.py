"""Single sign-on in the dashboard with an OpenID Connect issuer.

The issuer's keys are served on loopback and its ID tokens signed by PyJWT
(tests/access/test_authenticate.py); the browser's part, the redirect to the issuer and
the fragment posted back, is played by the Flask test client.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient

from omipacs.access import admin
from omipacs.config import AuthSettings, OidcSettings, Settings
from omipacs.services import Services
from omipacs.web.app import create_app
from tests.access.test_authenticate import AUDIENCE, ISSUER, _jwt, jwks_url, key  # noqa: F401

AUTHORIZE = "https://login.example.ac.uk/realms/research/protocol/openid-connect/auth"


@pytest.fixture
def browser(settings: Settings, jwks_url: str) -> Iterator[FlaskClient]:  # noqa: F811
    oidc = OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_url,
                        authorization_url=AUTHORIZE, client_id=AUDIENCE)
    services = Services.create(dataclasses.replace(
        settings, auth=AuthSettings(mode="token", oidc=oidc)))
    with services.write_sessions.begin() as s:
        admin.add_user(s, "c@lab.example", "curator")
    try:
        yield create_app(services).test_client()
    finally:
        services.close()


def _start(browser: FlaskClient) -> tuple[str, str, str]:
    """Start the sign-on: (state, nonce, CSRF token of the return page)."""
    assert "Sign in with single sign-on" in browser.get("/ui/login").text
    r = browser.get("/ui/login/oidc?start=1&next=/ui/clients")
    assert r.status_code == 303 and r.headers["Location"].startswith(AUTHORIZE + "?")
    query = parse_qs(urlsplit(r.headers["Location"]).query)
    assert query["response_type"] == ["id_token"] and query["client_id"] == [AUDIENCE]
    assert query["redirect_uri"] == ["http://localhost/ui/login/oidc"]
    page = browser.get("/ui/login/oidc")
    found = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text)
    assert page.status_code == 200 and found
    return query["state"][0], query["nonce"][0], found.group(1)


def test_single_sign_on_starts_a_session(
    browser: FlaskClient, key: rsa.RSAPrivateKey  # noqa: F811
) -> None:
    state, nonce, csrf = _start(browser)
    token = _jwt(key, email="c@lab.example", nonce=nonce)
    r = browser.post("/ui/login/oidc", data={"id_token": token, "state": state,
                                             "csrf_token": csrf})
    assert r.status_code == 303 and r.headers["Location"] == "/ui/clients"
    cookie = browser.get_cookie("omipacs_session", path="/ui")
    assert cookie is not None and cookie.value == token and cookie.http_only
    page = browser.get("/ui/")
    assert page.status_code == 200 and "c@lab.example" in page.text


@pytest.mark.parametrize("wrong", ["state", "nonce", "user", "csrf"])
def test_single_sign_on_refuses_a_token_of_another_sign_in(
    browser: FlaskClient, key: rsa.RSAPrivateKey, wrong: str  # noqa: F811
) -> None:
    state, nonce, csrf = _start(browser)
    claims = {"email": "nobody@lab.example" if wrong == "user" else "c@lab.example",
              "nonce": "other" if wrong == "nonce" else nonce}
    r = browser.post("/ui/login/oidc", data={
        "id_token": _jwt(key, **claims),
        "state": "other" if wrong == "state" else state,
        "csrf_token": "0" * 64 if wrong == "csrf" else csrf,
    })
    assert r.status_code == (403 if wrong == "csrf" else 401)
    assert browser.get_cookie("omipacs_session", path="/ui") is None
    assert browser.get("/ui/").status_code == 303


def test_the_session_cookie_is_secure_over_https(settings: Settings) -> None:
    services = Services.create(dataclasses.replace(settings, auth=AuthSettings(mode="token")))
    try:
        with services.write_sessions.begin() as s:
            admin.add_user(s, "c@lab.example", "curator")
            secret, _ = admin.create_token(s, "c@lab.example")
        browser = create_app(services).test_client()
        https = "https://archive.example.org"
        form = browser.get("/ui/login", base_url=https)
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', form.text)
        assert csrf and "Secure" in form.headers["Set-Cookie"]
        r = browser.post("/ui/login", base_url=https,
                         data={"token": secret, "csrf_token": csrf.group(1)})
        cookie = next(v for v in r.headers.getlist("Set-Cookie")
                      if v.startswith("omipacs_session="))
        assert r.status_code == 303 and "; Secure" in cookie and "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
    finally:
        services.close()
