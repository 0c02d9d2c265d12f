"""Conditional and partial retrieval of an instance as stored: ETag, 304, Range, 416.

A research download of a 500 MB DBT object that breaks off can be resumed where it
stopped, and a viewer that has an instance can revalidate it without fetching it again.
In process over real services; the same responses go out through gunicorn (see
test_sendfile.py for the socket side).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pydicom
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from omipacs.demo import factory
from omipacs.index.models import Instance
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.services import Services
from omipacs.web.app import create_app

AS_STORED = "application/dicom; transfer-syntax=*"


@pytest.fixture
def stored(services: Services, tmp_path: Path) -> tuple[FlaskClient, str, bytes]:
    ds = factory.compress(factory.make_mammo(rows=64, columns=64), pydicom.uid.RLELossless)
    path = tmp_path / "a.dcm"
    factory.save(ds, path)
    services.pipeline.ingest_file(path, IngestOrigin(OriginKind.IMPORT, deidentify=False))
    with services.sessions() as s:
        key = s.scalars(select(Instance.blob_key)).one()
    with services.blobs.open(key) as f:
        blob = f.read()
    url = (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    return create_app(services).test_client(), url, blob


def test_as_stored_carries_a_strong_etag_and_accepts_ranges(
    stored: tuple[FlaskClient, str, bytes],
) -> None:
    web, url, blob = stored
    r = web.get(url, headers={"Accept": AS_STORED})
    assert r.status_code == 200
    assert r.headers["ETag"] == f'"{hashlib.sha256(blob).hexdigest()}"'
    assert r.headers["Accept-Ranges"] == "bytes"
    assert int(r.headers["Content-Length"]) == len(blob) and r.data == blob


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [("{etag}", 304), ("W/{etag}", 304), ('"other", {etag}', 304), ("*", 304), ('"other"', 200)],
)
def test_if_none_match(stored: tuple[FlaskClient, str, bytes], if_none_match: str,
                       status: int) -> None:
    web, url, blob = stored
    etag = web.get(url, headers={"Accept": AS_STORED}).headers["ETag"]
    r = web.get(url, headers={"Accept": AS_STORED,
                              "If-None-Match": if_none_match.format(etag=etag)})
    assert r.status_code == status
    assert r.data == (b"" if status == 304 else blob)
    assert r.headers["ETag"] == etag


def test_byte_ranges(stored: tuple[FlaskClient, str, bytes]) -> None:
    web, url, blob = stored
    size = len(blob)
    for spec, start, end in [("100-199", 100, 200), ("-50", size - 50, size),
                             (f"{size - 10}-", size - 10, size), ("0-", 0, size)]:
        r = web.get(url, headers={"Accept": AS_STORED, "Range": f"bytes={spec}"})
        assert r.status_code == 206, spec
        assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
        assert r.data == blob[start:end]
        assert int(r.headers["Content-Length"]) == end - start


def test_range_errors(stored: tuple[FlaskClient, str, bytes]) -> None:
    web, url, blob = stored
    beyond = web.get(url, headers={"Accept": AS_STORED, "Range": f"bytes={len(blob)}-"})
    assert beyond.status_code == 416
    several = web.get(url, headers={"Accept": AS_STORED, "Range": "bytes=0-1,5-6"})
    assert several.status_code == 400
    malformed = web.get(url, headers={"Accept": AS_STORED, "Range": "bytes=abc"})
    assert malformed.status_code == 200 and malformed.data == blob  # ignored, as HTTP says


def test_if_range_resumes_only_the_same_object(stored: tuple[FlaskClient, str, bytes]) -> None:
    web, url, blob = stored
    etag = web.get(url, headers={"Accept": AS_STORED}).headers["ETag"]
    same = web.get(url, headers={"Accept": AS_STORED, "Range": "bytes=10-", "If-Range": etag})
    assert same.status_code == 206 and same.data == blob[10:]
    for other in ('"0000"', "Tue, 01 Jan 2030 00:00:00 GMT"):
        r = web.get(url, headers={"Accept": AS_STORED, "Range": "bytes=10-", "If-Range": other})
        assert r.status_code == 200 and r.data == blob


def test_a_transcoded_instance_is_sent_whole_without_an_etag(
    stored: tuple[FlaskClient, str, bytes],
) -> None:
    web, url, _ = stored
    r = web.get(url, headers={"Accept": "application/dicom", "Range": "bytes=0-9"})
    assert r.status_code == 200
    assert "ETag" not in r.headers
    assert pydicom.dcmread(io.BytesIO(r.data)).file_meta.TransferSyntaxUID == (
        pydicom.uid.ExplicitVRLittleEndian
    )


def test_metadata_revalidates_with_its_etag(stored: tuple[FlaskClient, str, bytes]) -> None:
    web, url, _ = stored
    series = url.rsplit("/instances/", 1)[0]
    for path in (f"{url}/metadata", f"{series}/metadata"):
        first = web.get(path)
        assert first.status_code == 200
        etag = first.headers["ETag"]
        assert etag == f'"{hashlib.sha256(first.data).hexdigest()}"'
        again = web.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.data == b""
        assert web.get(path, headers={"If-None-Match": '"other"'}).data == first.data
    # BulkDataURIs are absolute, so the tag differs with the base URL a client used.
    other_host = web.get(f"{url}/metadata", headers={"Host": "pacs.example"})
    assert other_host.headers["ETag"] != web.get(f"{url}/metadata").headers["ETag"]
