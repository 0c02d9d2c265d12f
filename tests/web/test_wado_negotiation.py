"""WADO-RS Accept negotiation and CORS, in process over real services."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pydicom
import pytest
from flask.testing import FlaskClient

from omipacs.demo import factory
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.services import Services
from omipacs.web.app import create_app


@pytest.fixture
def stored(services: Services, tmp_path: Path) -> pydicom.Dataset:
    ds = factory.compress(factory.make_mammo(rows=64, columns=64), pydicom.uid.RLELossless)
    path = tmp_path / "a.dcm"
    factory.save(ds, path)
    services.pipeline.ingest_file(path, IngestOrigin(OriginKind.IMPORT, deidentify=False))
    return ds


def url(ds: pydicom.Dataset) -> str:
    return (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


@pytest.mark.parametrize(
    ("accept", "status", "content_type"),
    [
        ("application/dicom", 200, "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"),
        (
            "application/dicom; transfer-syntax=*",
            200,
            "application/dicom; transfer-syntax=1.2.840.10008.1.2.5",
        ),
        (
            'multipart/related; type="application/dicom"; transfer-syntax=*',
            200,
            'multipart/related; type="application/dicom"',
        ),
        (
            'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90',
            200,
            'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90',
        ),
        (
            'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50',
            406,
            "application/json",
        ),
        ("image/png", 406, "application/json"),
    ],
)
def test_instance_accept(
    web: FlaskClient, stored: pydicom.Dataset, accept: str, status: int, content_type: str
) -> None:
    r = web.get(url(stored), headers={"Accept": accept})
    assert r.status_code == status
    assert r.content_type.startswith(content_type)
    if status == 200 and not r.content_type.startswith("multipart"):
        got = pydicom.dcmread(__import__("io").BytesIO(r.data))
        assert got.SOPInstanceUID == stored.SOPInstanceUID


@pytest.mark.parametrize(
    ("accept", "part_type"),
    [
        (
            "multipart/related; type=application/octet-stream; transfer-syntax=*",
            "image/x-dicom-rle; transfer-syntax=1.2.840.10008.1.2.5",
        ),
        (
            'multipart/related; type="application/octet-stream"',
            "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
        ),
        (
            'multipart/related; type="image/jp2"',
            "image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90",
        ),
    ],
)
def test_frame_accept(
    web: FlaskClient, stored: pydicom.Dataset, accept: str, part_type: str
) -> None:
    r = web.get(url(stored) + "/frames/1", headers={"Accept": accept})
    assert r.status_code == 200
    assert f"Content-Type: {part_type}".encode() in r.data


def test_listed_origins_are_echoed_with_credentials(services: Services) -> None:
    settings = dataclasses.replace(
        services.settings,
        http=dataclasses.replace(services.settings.http, cors_origins=("https://viewer.example",)),
    )
    app = create_app(dataclasses.replace(services, settings=settings)).test_client()
    ok = app.get("/dicom-web/studies", headers={"Origin": "https://viewer.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://viewer.example"
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    other = app.get("/dicom-web/studies", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_qido_paging_sets_warning_299(web: FlaskClient, services: Services, tmp_path: Path) -> None:
    for i in range(3):
        path = tmp_path / f"{i}.dcm"
        factory.save(factory.make_mammo(rows=32, columns=32, rng=i), path)
        services.pipeline.ingest_file(path, IngestOrigin(OriginKind.IMPORT, deidentify=False))
    cut = web.get("/dicom-web/studies?limit=2")
    assert cut.status_code == 200 and len(cut.json) == 2  # type: ignore[arg-type]
    assert cut.headers["Warning"].startswith("299 ")
    rest = web.get("/dicom-web/studies?limit=2&offset=2")
    assert len(rest.json) == 1 and "Warning" not in rest.headers  # type: ignore[arg-type]
