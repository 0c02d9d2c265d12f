"""Absolute URLs through a running server: the request's Host by default, forwarded
headers only when trusted and only from the configured number of proxies, a pinned
``public_url`` above both."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
import requests

from omipacs.config import HttpSettings, Settings, clean_url_path
from omipacs.deid.keys import load_keys
from omipacs.deid.pseudonyms import remap_uid
from omipacs.demo import factory
from omipacs.errors import ConfigurationError
from tests.conftest import ServerProcess, start_server

pytestmark = pytest.mark.slow

HOSTILE = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Prefix": "/../../evil",
    "Forwarded": 'proto=https;host="evil.example"',
}


@pytest.fixture
def serve(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start a server with the given [http] settings; stopped after the test."""
    started: list[ServerProcess] = []

    def run(**http: object) -> ServerProcess:
        srv = start_server(replace(settings, http=replace(settings.http, **http)), tmp_path)  # type: ignore[arg-type]
        started.append(srv)
        return srv

    yield run
    for srv in started:
        srv.stop()


def _stow(server: ServerProcess) -> tuple[str, dict[str, object]]:
    """Store one instance; its metadata URL and the STOW response."""
    ds = pydicom.dcmread(io.BytesIO(factory.to_bytes(factory.make_mammo(rows=32, columns=32))))
    body = factory.to_bytes(ds)
    r = requests.post(
        f"{server.base_url}/studies",
        data=b"--b\r\nContent-Type: application/dicom\r\n\r\n" + body + b"\r\n--b--\r\n",
        headers={
            "Content-Type": 'multipart/related; type="application/dicom"; boundary=b',
            "Accept": "application/dicom+json",
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    keys = load_keys(server.settings.deid)  # STOW-RS de-identifies: UIDs are remapped
    study, series, sop = (
        remap_uid(keys, str(ds.get(k)))
        for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    )
    url = f"{server.base_url}/studies/{study}/series/{series}/instances/{sop}/metadata"
    return url, r.json()


def _bulk_uri(url: str, headers: dict[str, str] | None = None) -> str:
    r = requests.get(url, headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    uri: str = r.json()[0]["7FE00010"]["BulkDataURI"]
    return uri


def test_forwarded_headers_are_ignored_by_default(server: ServerProcess) -> None:
    url, _ = _stow(server)
    direct = f"http://127.0.0.1:{server.settings.http.port}/dicom-web/studies/"
    assert _bulk_uri(url).startswith(direct)
    assert _bulk_uri(url, HOSTILE).startswith(direct)


def test_trusted_proxy_values_are_the_right_most(serve: Callable[..., ServerProcess]) -> None:
    server = serve(trust_proxy_headers=True, trusted_proxies=1)
    url, _ = _stow(server)
    one_proxy = {
        # The client sent the left values; our one proxy appended the right-most.
        "X-Forwarded-Proto": "http, https",
        "X-Forwarded-Host": "evil.example, pacs.example.org",
        "X-Forwarded-Prefix": "/evil, /archive",
    }
    assert _bulk_uri(url, one_proxy).startswith("https://pacs.example.org/archive/dicom-web/")
    # X-Forwarded-Port rides along with the host.
    assert _bulk_uri(
        url, {"X-Forwarded-Host": "pacs.example.org", "X-Forwarded-Port": "8443"}
    ).startswith("http://pacs.example.org:8443/dicom-web/")
    # RFC 7239 Forwarded is not read: one header format, the one ProxyFix checks.
    assert _bulk_uri(url, {"Forwarded": 'host="evil.example"'}).startswith(
        f"http://127.0.0.1:{server.settings.http.port}/"
    )


def test_two_proxies(serve: Callable[..., ServerProcess]) -> None:
    server = serve(trust_proxy_headers=True, trusted_proxies=2)
    url, _ = _stow(server)
    chain = {"X-Forwarded-Host": "evil.example, pacs.example.org, lb.internal"}
    assert _bulk_uri(url, chain).startswith("http://pacs.example.org/dicom-web/")
    # Fewer values than proxies: the request did not come through our chain.
    short = _bulk_uri(url, {"X-Forwarded-Host": "evil.example"})
    assert short.startswith(f"http://127.0.0.1:{server.settings.http.port}/")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Prefix": "/../../evil"},
        {"X-Forwarded-Prefix": "/a/./b"},
        {"X-Forwarded-Prefix": "//evil.example/x"},
        {"X-Forwarded-Prefix": "/%2e%2e/evil"},
        {"X-Forwarded-Prefix": "archive"},
        {"X-Forwarded-Proto": "javascript"},
        {"X-Forwarded-Host": "evil.example/path"},
        {"X-Forwarded-Host": "a b"},
        {"X-Forwarded-Host": "pacs.example.org", "X-Forwarded-Port": "x"},
    ],
)
def test_bad_forwarded_values_are_400(
    serve: Callable[..., ServerProcess], headers: dict[str, str]
) -> None:
    server = serve(trust_proxy_headers=True)
    r = requests.get(f"{server.base_url}/studies", headers=headers, timeout=10)
    assert r.status_code == 400, r.text
    assert "X-Forwarded" in r.json()["error"]


def test_public_url_wins_over_every_header(serve: Callable[..., ServerProcess]) -> None:
    server = serve(public_url="https://pacs.example.org/archive/", trust_proxy_headers=True)
    url, stowed = _stow(server)
    public = "https://pacs.example.org/archive/dicom-web/studies/"
    assert _bulk_uri(url).startswith(public)
    assert _bulk_uri(url, {"X-Forwarded-Host": "other.example"}).startswith(public)
    assert _bulk_uri(url, {"Host": "other.example"}).startswith(public)
    (reference,) = stowed["00081199"]["Value"]  # type: ignore[index]
    retrieve = reference["00081190"]["Value"][0]
    assert retrieve.startswith("https://pacs.example.org/archive/dicom-web/studies/")
    wadl = requests.options(server.base_url, timeout=10).text
    assert 'base="https://pacs.example.org/archive/dicom-web' in wadl


@pytest.mark.parametrize(
    "url",
    ["pacs.example.org", "ftp://pacs.example.org", "https://u:p@pacs.example.org",
     "https://pacs.example.org/../x", "https://pacs.example.org/a?b=c", "https://h:99999999"],
)
def test_bad_public_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="public_url"):
        HttpSettings(public_url=url)


def test_clean_url_path() -> None:
    assert clean_url_path("") and clean_url_path("/archive") and clean_url_path("/a/b-c_d.e")
    for bad in ("/", "//x", "/a//b", "/..", "/a/../b", "/./a", "a", "/%2e", "/a b", "/a\\b"):
        assert not clean_url_path(bad), bad
