"""STOW-RS statuses (PS3.18 Table 10.5.3-1), table-driven."""

from __future__ import annotations

import json

import pydicom
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from omipacs.demo import factory
from omipacs.index.models import Instance
from omipacs.services import Services

BOUNDARY = "omipacs-test-boundary"
CT = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def body(*parts: bytes, part_type: str = "application/dicom", close: bool = True) -> bytes:
    out = b""
    for p in parts:
        out += f"--{BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n".encode() + p + b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def good() -> bytes:
    return factory.to_bytes(factory.make_mammo(rows=32, columns=32))


def bad_uid() -> bytes:
    ds = factory.make_mammo(rows=32, columns=32)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.03"
    return factory.to_bytes(ds)


def count(services: Services) -> int:
    with services.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Instance)) or 0)


def post(
    web: FlaskClient, data: bytes, url: str = "/dicom-web/studies", ct: str = CT, **headers: str
) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = web.post(url, data=data, headers={"Content-Type": ct, **headers})
    return r.status_code, (json.loads(r.data) if r.data else {})


def test_all_stored_200(web: FlaskClient, services: Services) -> None:
    status, doc = post(web, body(good(), good(), good(), good()))
    assert status == 200
    assert len(doc["00081199"]["Value"]) == 4 and "00081198" not in doc
    assert count(services) == 4


def test_some_failed_202(web: FlaskClient, services: Services) -> None:
    status, doc = post(web, body(good(), good(), good(), b"not dicom at all" * 20))
    assert status == 202
    assert len(doc["00081199"]["Value"]) == 3
    failed = doc["00081198"]["Value"]
    assert len(failed) == 1 and failed[0]["00081197"]["Value"] == [0xC000]
    assert count(services) == 3


def test_all_failed_409(web: FlaskClient, services: Services) -> None:
    status, doc = post(web, body(bad_uid(), b"junk" * 100))
    assert status == 409
    reasons = sorted(f["00081197"]["Value"][0] for f in doc["00081198"]["Value"])
    assert reasons == [0xA900, 0xC000]
    assert count(services) == 0


def test_study_mismatch_0110_409(web: FlaskClient, services: Services) -> None:
    status, doc = post(web, body(good()), url="/dicom-web/studies/1.2.3.4")
    assert status == 409
    assert doc["00081198"]["Value"][0]["00081197"]["Value"] == [0x0110]
    assert doc["00081190"]["Value"][0].endswith("/dicom-web/studies/1.2.3.4")


def test_matching_study_url_200(web: FlaskClient) -> None:
    ds = factory.make_mammo(rows=32, columns=32)
    status, _ = post(
        web, body(factory.to_bytes(ds)), url=f"/dicom-web/studies/{ds.StudyInstanceUID}"
    )
    assert status == 200


def test_duplicate_conflict_0111(web: FlaskClient, services: Services) -> None:
    ds = factory.make_mammo(rows=32, columns=32)
    assert post(web, body(factory.to_bytes(ds)))[0] == 200
    assert post(web, body(factory.to_bytes(ds)))[0] == 200  # identical: idempotent
    ds.StudyDescription = "other"
    status, doc = post(web, body(factory.to_bytes(ds)))
    assert status == 409 and doc["00081198"]["Value"][0]["00081197"]["Value"] == [0x0111]
    assert count(services) == 1


def test_unsupported_sop_class_0122(web: FlaskClient) -> None:
    ds = factory.make_mammo(rows=32, columns=32)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    status, doc = post(web, body(factory.to_bytes(ds)))
    assert status == 409 and doc["00081198"]["Value"][0]["00081197"]["Value"] == [0x0122]


def test_empty_multipart_204(web: FlaskClient) -> None:
    assert (
        web.post(
            "/dicom-web/studies", data=f"--{BOUNDARY}--\r\n", headers={"Content-Type": CT}
        ).status_code
        == 204
    )


@pytest.mark.parametrize(
    ("data", "ct", "headers", "expected"),
    [
        (b"{}", "application/json", {}, 415),
        (b"x", 'multipart/related; type="application/dicom+json"; boundary=b', {}, 415),
        (b"x", CT, {"Content-Encoding": "gzip"}, 415),
        (b"x", 'multipart/related; type="application/dicom"', {}, 400),  # no boundary
        (b"x", "multipart/related; boundary=" + "b" * 71, {}, 400),  # boundary > 70 chars
        (body(b"abc", close=False), CT, {}, 400),  # no closing delimiter
        (
            f"--{BOUNDARY}\r\nX-Long: {'a' * 9000}\r\n\r\nabc\r\n--{BOUNDARY}--\r\n".encode(),
            CT,
            {},
            400,
        ),  # part headers over 8 KiB
    ],
)
def test_malformed_requests(
    web: FlaskClient,
    services: Services,
    data: bytes,
    ct: str,
    headers: dict[str, str],
    expected: int,
) -> None:
    r = web.post("/dicom-web/studies", data=data, headers={"Content-Type": ct, **headers})
    assert r.status_code == expected, r.data
    assert "error" in json.loads(r.data)
    assert count(services) == 0
    assert not list(services.spool.dir.iterdir())


def test_too_many_parts_400(web: FlaskClient, services: Services) -> None:
    many = body(*[b"x"] * (services.settings.http.max_parts + 1))
    assert (
        web.post("/dicom-web/studies", data=many, headers={"Content-Type": CT}).status_code == 400
    )


def test_preamble_is_zeroed_on_stow(web: FlaskClient, services: Services) -> None:
    raw = bytearray(good())
    raw[:2] = b"MZ"
    assert post(web, body(bytes(raw)))[0] == 200
    with services.sessions() as s:
        key = s.scalars(select(Instance.blob_key)).one()
    path = services.blobs.local_path(key)
    assert path is not None and path.read_bytes()[:128] == bytes(128)


def test_quoted_and_unquoted_type_parameter(web: FlaskClient) -> None:
    ds = factory.to_bytes(factory.make_mammo(rows=32, columns=32))
    ct = f"multipart/related;type=application/dicom;boundary={BOUNDARY}"
    assert (
        web.post("/dicom-web/studies", data=body(ds), headers={"Content-Type": ct}).status_code
        == 200
    )
    _ = pydicom
