"""JSON bodies are bounded in size and depth before parsing, through a running server."""

from __future__ import annotations

import json

import pytest
import requests

from omipacs.web.jsonbody import MAX_DEPTH, nesting_depth
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow


def _api(server: ServerProcess) -> str:
    return server.base_url.replace(server.settings.http.base_path, "/api/v1")


def test_nesting_depth_ignores_brackets_in_strings() -> None:
    assert nesting_depth('{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert nesting_depth('"\\"[[["') == 0
    assert nesting_depth("[" * 100_000 + "]" * 100_000) == 100_000
    assert nesting_depth("") == 0


def test_limits_through_the_server(server: ServerProcess) -> None:
    url = f"{_api(server)}/cohorts"
    json_type = {"Content-Type": "application/json"}
    ok_depth = {"name": "deep but fine", "filters": {}, "description": "[" * 1000}
    r = requests.post(url, data=json.dumps(ok_depth), headers=json_type, timeout=30)
    assert r.status_code == 201, r.text
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    r = requests.post(url, data=deep, headers=json_type, timeout=30)
    assert r.status_code == 400 and "nested deeper" in r.json()["error"]
    r = requests.post(url, data=b'{"name": "\xff"}', headers=json_type, timeout=30)
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]
    r = requests.post(url, data="{}", headers={"Content-Type": "text/plain"}, timeout=30)
    assert r.status_code == 415
    too_big = server.settings.http.max_json_bytes + 1
    r = requests.post(url, data=b" " * too_big, headers=json_type, timeout=60)
    assert r.status_code == 413 and "larger than" in r.json()["error"]

