"""CORS through a running server: none by default, listed origins only, never ``*`` with
credentials, preflights answered before any view."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from omipacs import config
from omipacs.config import HttpSettings, Settings
from omipacs.errors import ConfigurationError
from tests.conftest import ServerProcess, start_server

pytestmark = pytest.mark.slow

VIEWER = "https://viewer.example.org"
EVIL = "https://evil.example"


def _preflight(server: ServerProcess, origin: str, method: str = "GET") -> requests.Response:
    return requests.options(
        f"{server.base_url}/studies",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, accept",
        },
        timeout=10,
    )


@pytest.fixture
def serve(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers allowing the given origins; stopped after the test."""
    started: list[ServerProcess] = []

    def run(*origins: str) -> ServerProcess:
        http = replace(settings.http, cors_origins=origins)
        srv = start_server(replace(settings, http=http), tmp_path)
        started.append(srv)
        return srv

    yield run
    for srv in started:
        srv.stop()


def test_no_cross_origin_access_by_default(server: ServerProcess) -> None:
    got = requests.get(f"{server.base_url}/studies", headers={"Origin": EVIL}, timeout=10)
    assert got.status_code == 200
    assert not [h for h in got.headers if h.lower().startswith("access-control-")]
    assert got.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    pre = _preflight(server, EVIL)
    assert pre.status_code == 403
    assert "cors_origins" in pre.json()["error"]
    assert "Access-Control-Allow-Origin" not in pre.headers
    # The JSON API is no different.
    api = requests.get(
        server.base_url.replace("/dicom-web", "/api/v1/cohorts"),
        headers={"Origin": EVIL},
        timeout=10,
    )
    assert "Access-Control-Allow-Origin" not in api.headers


def test_listed_origin_only_with_credentials(serve: Callable[..., ServerProcess]) -> None:
    server = serve(VIEWER)
    pre = _preflight(server, VIEWER)
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == VIEWER
    assert pre.headers["Access-Control-Allow-Credentials"] == "true"
    assert "authorization" in pre.headers["Access-Control-Allow-Headers"].lower()
    assert "GET" in pre.headers["Access-Control-Allow-Methods"]
    assert "Origin" in pre.headers["Vary"]
    got = requests.get(f"{server.base_url}/studies", headers={"Origin": VIEWER}, timeout=10)
    assert got.headers["Access-Control-Allow-Origin"] == VIEWER
    assert "Warning" in got.headers["Access-Control-Expose-Headers"]
    assert got.headers["Cross-Origin-Resource-Policy"] == "cross-origin"

    other = requests.get(f"{server.base_url}/studies", headers={"Origin": EVIL}, timeout=10)
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Access-Control-Allow-Credentials" not in other.headers
    assert "Origin" in other.headers["Vary"]  # a cache must not serve VIEWER's answer to EVIL
    assert _preflight(server, EVIL).status_code == 403
    # A look-alike origin is not the listed one.
    assert _preflight(server, VIEWER + ".evil.example").status_code == 403
    assert _preflight(server, "null").status_code == 403
    refused = _preflight(server, VIEWER, method="PATCH")
    assert refused.status_code == 403 and "PATCH" in refused.json()["error"]


def test_any_origin_never_with_credentials(serve: Callable[..., ServerProcess]) -> None:
    server = serve("*")
    pre = _preflight(server, EVIL)
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in pre.headers
    got = requests.get(f"{server.base_url}/studies", headers={"Origin": EVIL}, timeout=10)
    assert got.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in got.headers


def test_a_preflight_never_reaches_a_view(serve: Callable[..., ServerProcess]) -> None:
    server = serve(VIEWER)
    # An OPTIONS on the service root without Access-Control-Request-Method is the
    # capabilities request; with it, it is a preflight and gets no WADL body.
    pre = requests.options(
        server.base_url,
        headers={"Origin": VIEWER, "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    assert pre.status_code == 204 and pre.content == b""
    assert requests.options(server.base_url, timeout=10).status_code == 200


@pytest.mark.parametrize(
    "origins",
    [("*", VIEWER), ("https://viewer.example.org/",), ("viewer.example.org",), ("ftp://x",)],
)
def test_origins_no_browser_sends_are_a_configuration_error(origins: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError, match="cors_origins"):
        HttpSettings(cors_origins=origins)


def test_default_and_environment(tmp_path: Path) -> None:
    empty = tmp_path / "config.toml"
    empty.write_text("")
    assert config.load(empty, environ={}).http.cors_origins == ()
    env = {"OMIPACS_HTTP_CORS_ORIGINS": f"{VIEWER}, http://[::1]:3000"}
    assert config.load(empty, environ=env).http.cors_origins == (VIEWER, "http://[::1]:3000")
