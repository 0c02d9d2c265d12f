"""HTTP behaviour that needs a real server on a real socket."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow


def test_huge_declared_body_is_refused_at_once(server: ServerProcess) -> None:
    port = server.settings.http.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(
            b"POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: multipart/related; type="application/dicom"; boundary=b\r\n'
            b"Content-Length: 68719476736\r\n\r\n--b\r\n"
        )
        reply = sock.recv(4096)
        assert time.monotonic() - start < 5
    assert reply.startswith(b"HTTP/1.1 413"), reply[:100]


def test_capabilities_describe_the_service(server: ServerProcess) -> None:
    r = requests.options(server.base_url, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/vnd.sun.wadl+xml")
    for path in (
        "/studies",
        "/studies/{study}/series/{series}/instances/{instance}/frames/{frame_list}",
        "/studies/{study}/metadata",
    ):
        assert f'path="{path}"' in r.text


def test_server_error_carries_no_internals(server: ServerProcess) -> None:
    r = requests.get(
        f"{server.base_url}/studies/1.2.3/series/4.5.6/instances/7.8.9/bulkdata/zz", timeout=10
    )
    assert r.status_code == 404
    assert "Traceback" not in r.text


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "-1"},
        {"StudyDate": "20231301"},
        {"NoSuchAttribute": "x"},
        {"offset": "abc"},
        {"PatientID": "x" * 5000},
    ],
)
def test_bad_qido_parameters_are_400_never_500(
    server: ServerProcess, params: dict[str, str]
) -> None:
    r = requests.get(f"{server.base_url}/studies", params=params, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["error"]
