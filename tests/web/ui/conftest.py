"""The dashboard over a real server with access control on (tests/web/access_fixture.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from tests.web.access_fixture import AccessArchive, build_for


@pytest.fixture(scope="module", params=["sqlite"])
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AccessArchive]:
    yield from build_for(request, tmp_path_factory, "ui")


CSRF = re.compile(r'<meta name="csrf-token" content="([0-9a-f]{64})">')


def csrf_of(html: str) -> str:
    """The CSRF token a dashboard page carries."""
    found = CSRF.search(html)
    assert found, "page without a CSRF token"
    return found.group(1)


def sign_in(archive: AccessArchive, who: str) -> requests.Session:
    """A browser-like session signed in with the token named ``who``."""
    browser = requests.Session()
    form = browser.get(f"{archive.base}/ui/login", timeout=30)
    assert form.status_code == 200, form.text
    r = browser.post(
        f"{archive.base}/ui/login",
        data={"token": archive.tokens[who], "csrf_token": csrf_of(form.text)},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 303, r.text
    return browser
