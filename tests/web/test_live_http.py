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


def test_forwarded_headers_make_absolute_urls(server: ServerProcess) -> None:
    import io

    from dicomweb_client.api import DICOMwebClient
    from pydicom import dcmread  # noqa: F401  (data comes from STOW below)

    from omipacs.demo import factory

    ds = dcmread(io.BytesIO(factory.to_bytes(factory.make_mammo(rows=32, columns=32))))
    DICOMwebClient(server.base_url).store_instances([ds])
    url = (
        f"{server.base_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/metadata"
    )
    r = requests.get(
        url,
        headers={
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "pacs.example.org",
            "X-Forwarded-Prefix": "/archive",
        },
        timeout=10,
    )
    uri = r.json()[0]["7FE00010"]["BulkDataURI"]
    assert uri.startswith("https://pacs.example.org/archive/dicom-web/studies/")
    r = requests.get(url, headers={"Forwarded": 'proto=https;host="h.example:8443"'}, timeout=10)
    assert r.json()[0]["7FE00010"]["BulkDataURI"].startswith("https://h.example:8443/dicom-web/")
