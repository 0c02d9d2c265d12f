"""Hostile inputs against every HTTP route of a running server: never a 500.

The routes come from the app's own URL map, so a route added later is covered without
touching this file. Each route is called with its placeholders filled with real values
(one stored instance, one saved cohort) and with hostile ones, with hostile query
strings, ``Accept`` headers and bodies. Every answer must be below 500, and every error
must carry a reason.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests

from omipacs.config import Settings
from omipacs.demo import factory
from omipacs.services import Services
from omipacs.web.app import create_app
from tests.conftest import ServerProcess, make_settings, start_server

pytestmark = pytest.mark.slow

HOSTILE_SEGMENTS = (
    "0",
    str(2**70),
    "-1",
    "1.2.3",
    "..",
    "%2e%2e%2f%2e%2e",
    "x" * 5000,
    "1,2,99999999999999999999",
    "x'OR'1'='1",
    "\u0663",
    "%00",
    "1e400",
    "NaN",
)
HOSTILE_QUERIES: tuple[dict[str, str], ...] = (
    {"limit": "-1", "offset": "1e400", "count": "maybe", "after": "\x00"},
    {"limit": "99999999999999999999999", "offset": str(2**70), "members": "nope"},
    {"includefield": "../", "StudyDate": "20231301", "PatientID": "' OR 1=1--"},
    {"window": "abc", "viewport": "0,0", "quality": "1000", "marks": "maybe"},
    {"outcome": "ZZZ", "grade": "x", "her2": "maybe", "age": "-1..1e400", "dim": "4D"},
    {"format": "xml", "client": "\x00", "study": "x" * 5000, "lesion_type": "%"},
    {"accept": "text/html", "charset": "x", "annotation": "x", "frame": "0"},
    {"StudyInstanceUID": "1." * 2000, "SOPClassUID": "\\" * 50, "00100010": "*?*?" * 100},
)
HOSTILE_ACCEPTS = (
    "text/html",
    ";;;=",
    'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.3',
    'multipart/related; type="application/dicom"; transfer-syntax=*;q=x',
    "image/jpeg; q=2",
)
DEEP = 100_000
JSON_BODIES: tuple[bytes, ...] = (
    b"[" * DEEP + b"]" * DEEP,
    b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b"{not json",
    b"",
    b"null",
    b"[]",
    b"{}",
    b"1e400",
    b'"\\ud800"',
    b'{"name": 1}',
    b'{"name": "x", "filters": []}',
    b'{"name": "x", "filters": {"age": "x"}}',
    b'{"name": "x", "filters": {"pathology": "x"}}',
    b'{"name": "x", "filters": {"outcome": [[[]]]}}',
    b'{"name": "' + b"x" * 10000 + b'", "filters": {}}',
    b'{"records": 5, "source_uids": "x"}',
    b'[{"x": 1}, 2, "three", null]',
    b'{"client_id": {"$gt": ""}}',
)
OTHER_BODIES: tuple[tuple[str, bytes], ...] = (
    ('multipart/related; type="application/dicom"; boundary=b', b"--b\r\n\r\ngarbage\r\n--b--"),
    ('multipart/related; type="application/dicom"; boundary=b', b"--b\r\n" * 5000),
    ('multipart/related; type="application/dicom+json"; boundary=b', b"--b\r\n\r\n[" * 50),
    ("multipart/related", b"x"),
    ("text/plain", b"\x00\xff" * 100),
    ("application/json; charset=utf-32", b"\xff\xfe{}"),
)


@dataclass
class Archive:
    server: ServerProcess
    values: dict[str, str]
    rules: list[tuple[str, frozenset[str]]]


def _settings(root: Path) -> Settings:
    settings = make_settings(root)
    auth = getattr(settings, "auth", None)
    if auth is not None and hasattr(auth, "mode"):
        # Without authentication every route is reachable: the point is what lies behind.
        settings = dataclasses.replace(settings, auth=dataclasses.replace(auth, mode="none"))
    return settings


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    root = tmp_path_factory.mktemp("hostile")
    settings = _settings(root)
    services = Services.create(settings)
    try:
        app = create_app(services)
        rules = [
            (rule.rule, frozenset(rule.methods or ()) - {"HEAD", "OPTIONS"})
            for rule in app.url_map.iter_rules()
        ]
    finally:
        services.close()
    server = start_server(settings, root)
    try:
        ds = pydicom.dcmread(io.BytesIO(factory.to_bytes(factory.make_dbt(frames=3, rows=64,
                                                                          columns=64))))
        r = requests.post(
            f"{server.base_url}/studies",
            data=b"--b\r\nContent-Type: application/dicom\r\n\r\n"
            + factory.to_bytes(ds)
            + b"\r\n--b--\r\n",
            headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        api = server.base_url.replace(server.settings.http.base_path, "/api/v1")
        cohort = requests.post(
            f"{api}/cohorts", json={"name": "all", "filters": {}}, timeout=30
        )
        assert cohort.status_code == 201, cohort.text
        values = {
            "study": ds.StudyInstanceUID,
            "series": ds.SeriesInstanceUID,
            "instance": ds.SOPInstanceUID,
            "cohort_id": str(cohort.json()["id"]),
            "frame_list": "1,3",
            "frame": "2",
            "tag_path": "7FE00010",
            "client_id": "CLIENT",
            "filename": "x",
        }
        yield Archive(server, values, rules)
    finally:
        server.stop()


def _fill(rule: str, values: dict[str, str], hostile: tuple[str, str] | None = None) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[-1]
        if hostile and hostile[0] == name:
            return hostile[1]
        return values.get(name, "x")

    return re.sub(r"<([^>]+)>", one, rule)


def _placeholders(rule: str) -> list[str]:
    return [p.split(":")[-1] for p in re.findall(r"<([^>]+)>", rule)]


def _check(response: requests.Response, what: str, problems: list[str]) -> None:
    """No 5xx; every 4xx says why (the error shape, a STOW failure list, a report)."""
    if response.status_code >= 500:
        problems.append(f"{response.status_code} {what}: {response.text[:200]}")
    elif response.status_code >= 400 and not response.content.strip():
        problems.append(f"{response.status_code} without a reason: {what}")
    elif response.headers.get("Content-Type", "").startswith("application/json"):
        doc: Any = response.json() if response.status_code >= 400 else None
        if isinstance(doc, dict) and "error" in doc and not doc["error"]:
            problems.append(f"{response.status_code} with an empty reason: {what}")


def _call(
    archive: Archive, method: str, path: str, problems: list[str], **kwargs: Any
) -> None:
    url = f"http://127.0.0.1:{archive.server.settings.http.port}{path}"
    try:
        r = requests.request(method, url, timeout=60, **kwargs)
    except requests.ConnectionError as exc:
        problems.append(f"connection error {method} {path[:120]}: {exc}")
        return
    _check(r, f"{method} {path[:120]} {str(kwargs)[:160]}", problems)


def test_the_route_table_is_covered(archive: Archive) -> None:
    rules = {rule for rule, _ in archive.rules}
    assert "/api/v1/cohorts/<int:cohort_id>" in rules
    assert any(r.startswith("/cohorts/<int:cohort_id>/dicom-web") for r in rules)
    assert any(r.endswith("/frames/<frame_list>") for r in rules)


def test_hostile_path_segments(archive: Archive) -> None:
    problems: list[str] = []
    for rule, methods in archive.rules:
        for name in _placeholders(rule):
            for value in HOSTILE_SEGMENTS:
                path = _fill(rule, archive.values, (name, value))
                for method in methods & {"GET", "DELETE"}:
                    _call(archive, method, path, problems)
    assert not problems, "\n".join(problems[:40])


def test_hostile_queries_and_accept_headers(archive: Archive) -> None:
    problems: list[str] = []
    for rule, methods in archive.rules:
        path = _fill(rule, archive.values)
        for method in sorted(methods & {"GET", "DELETE"}) or ["GET"]:
            for params in HOSTILE_QUERIES:
                _call(archive, method, path, problems, params=params)
            for accept in HOSTILE_ACCEPTS:
                _call(archive, method, path, problems, headers={"Accept": accept})
    assert not problems, "\n".join(problems[:40])


def test_hostile_bodies(archive: Archive) -> None:
    problems: list[str] = []
    for rule, _methods in archive.rules:
        path = _fill(rule, archive.values)
        for method in ("POST", "PUT", "PATCH"):
            for body in JSON_BODIES:
                _call(
                    archive, method, path, problems,
                    data=body, headers={"Content-Type": "application/json"},
                )
            for content_type, body in OTHER_BODIES:
                _call(archive, method, path, problems,
                      data=body, headers={"Content-Type": content_type})
    assert not problems, "\n".join(problems[:40])


def test_a_huge_cohort_id_is_404(archive: Archive) -> None:
    api = archive.server.base_url.replace(archive.server.settings.http.base_path, "/api/v1")
    r = requests.get(f"{api}/cohorts/{2**70}", timeout=10)
    assert r.status_code == 404 and r.json()["error"]
    root = archive.server.base_url.replace("/dicom-web", f"/cohorts/{2**70}/dicom-web")
    assert requests.get(f"{root}/studies", timeout=10).status_code == 404


def test_a_deeply_nested_body_is_refused_with_a_reason(archive: Archive) -> None:
    api = archive.server.base_url.replace(archive.server.settings.http.base_path, "/api/v1")
    r = requests.post(
        f"{api}/cohorts",
        data=b"[" * DEEP + b"]" * DEEP,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 400
    assert "nested" in r.json()["error"]
