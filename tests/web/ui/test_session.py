"""Signing in to the dashboard: the session cookie, CSRF, logout, ended sessions."""

from __future__ import annotations

import time

import requests
from sqlalchemy import select

from omipacs.access import admin
from omipacs.access.models import Token
from omipacs.access.tokens import digest
from tests.web.access_fixture import AccessArchive
from tests.web.ui.conftest import csrf_of, sign_in


def test_pages_need_a_session(archive: AccessArchive) -> None:
    r = requests.get(f"{archive.base}/ui/", allow_redirects=False, timeout=30)
    assert r.status_code == 303
    assert r.headers["Location"].startswith("/ui/login?next=")
    # A bearer header is not a dashboard session (the pages read only their cookie).
    r = requests.get(f"{archive.base}/ui/", headers=archive.headers("admin"),
                     allow_redirects=False, timeout=30)
    assert r.status_code == 303
    # htmx fragments are told where to go instead of following a redirect.
    r = requests.get(f"{archive.base}/ui/charts/age", headers={"HX-Request": "true"},
                     allow_redirects=False, timeout=30)
    assert r.status_code == 401 and r.headers["HX-Redirect"].startswith("/ui/login")


def test_login_sets_a_strict_httponly_cookie(archive: AccessArchive) -> None:
    browser = requests.Session()
    form = browser.get(f"{archive.base}/ui/login", timeout=30)
    assert 'name="token"' in form.text
    r = browser.post(f"{archive.base}/ui/login",
                     data={"token": archive.tokens["curator"], "csrf_token": csrf_of(form.text),
                           "next": "/ui/charts/age"},
                     allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == "/ui/charts/age"
    cookie = next(c for c in r.raw.headers.getlist("Set-Cookie")
                  if c.startswith("omipacs_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here; Secure over HTTPS
    page = browser.get(f"{archive.base}/ui/", timeout=30)
    assert page.status_code == 200 and "curator@a.example" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_login_refuses_bad_tokens_and_foreign_next(archive: AccessArchive) -> None:
    browser = requests.Session()
    form = browser.get(f"{archive.base}/ui/login", timeout=30)
    for token in ("not-a-token", archive.tokens["revoked"], archive.tokens["expired"]):
        r = browser.post(f"{archive.base}/ui/login",
                         data={"token": token, "csrf_token": csrf_of(form.text)},
                         allow_redirects=False, timeout=30)
        assert r.status_code == 401 and "refused" in r.text
        assert "omipacs_session" not in r.headers.get("Set-Cookie", "")
    r = browser.post(f"{archive.base}/ui/login",
                     data={"token": archive.tokens["admin"], "csrf_token": csrf_of(form.text),
                           "next": "https://evil.example/"},
                     allow_redirects=False, timeout=30)
    assert r.headers["Location"] == "/ui/"


def test_every_post_needs_the_csrf_token(archive: AccessArchive) -> None:
    browser = sign_in(archive, "admin")
    r = browser.post(f"{archive.base}/ui/logout", allow_redirects=False, timeout=30)
    assert r.status_code == 403 and "CSRF" in r.text
    r = browser.post(f"{archive.base}/ui/logout", data={"csrf_token": "0" * 64},
                     allow_redirects=False, timeout=30)
    assert r.status_code == 403
    # The login form itself: no token, no sign-in.
    r = requests.post(f"{archive.base}/ui/login", data={"token": archive.tokens["admin"]},
                      allow_redirects=False, timeout=30)
    assert r.status_code == 403
    page = browser.get(f"{archive.base}/ui/", timeout=30)
    r = browser.post(f"{archive.base}/ui/logout", data={"csrf_token": csrf_of(page.text)},
                     allow_redirects=False, timeout=30)
    assert r.status_code == 303
    r = browser.get(f"{archive.base}/ui/", allow_redirects=False, timeout=30)
    assert r.status_code == 303  # signed out


def test_a_revoked_token_ends_the_session(archive: AccessArchive) -> None:
    secret, info = None, None
    with archive.services.write_sessions.begin() as s:
        secret, info = admin.create_token(s, "r1@lab.example", licence_id=None)
    archive.tokens["short-lived"] = secret
    browser = sign_in(archive, "short-lived")
    assert browser.get(f"{archive.base}/ui/", timeout=30).status_code == 200
    with archive.services.write_sessions.begin() as s:
        admin.revoke_token(s, str(info.id))
        assert s.scalar(select(Token.revoked_at).where(Token.sha256 == digest(secret)))
    # The token cache holds a principal for [auth] cache_seconds (0.5 s here).
    for _ in range(50):  # at most 5 s
        r = browser.get(f"{archive.base}/ui/", allow_redirects=False, timeout=30)
        if r.status_code == 303:
            break
        time.sleep(0.1)
    assert r.status_code == 303 and "ended=1" in r.headers["Location"]
    assert "omipacs_session=;" in r.headers["Set-Cookie"]  # the cookie is cleared
