"""Marks over HTTP: import, search, per-study list, rendered with boxes, cohort filter."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from PIL import Image

from omipacs.bootstrap import open_archive
from omipacs.demo.load import load_demo
from omipacs.services import Services
from omipacs.web.app import create_app
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlaskClient, Services]]:
    settings = make_settings(tmp_path_factory.mktemp("marks"))
    load_demo(settings, clients=20, seed=3)
    services = open_archive(settings)
    yield create_app(services).test_client(), services
    services.close()


def test_demo_marks_are_searchable_and_drawn(archive: tuple[FlaskClient, Services]) -> None:
    client, _ = archive
    marks = json.loads(client.get("/api/v1/marks?limit=1000").data)
    assert marks, "the demo marks malignant and benign cases"
    first = marks[0]
    per_study = json.loads(client.get(f"/api/v1/studies/{first['study_uid']}/marks").data)
    assert first["id"] in {m["id"] for m in per_study}
    assert json.loads(client.get("/api/v1/marks?lesion_type=NOSUCH").data)["error"]
    url = (
        f"/dicom-web/studies/{first['study_uid']}/series/{first['series_uid']}/instances/"
        f"{first['sop_uid']}"
        # A DBT mark is on one frame; it is drawn on that frame's rendering.
        + (f"/frames/{first['frame']}" if first["frame"] else "")
        + "/rendered"
    )
    plain = Image.open(io.BytesIO(client.get(url, headers={"Accept": "image/png"}).data))
    marked = Image.open(
        io.BytesIO(client.get(url + "?marks=true", headers={"Accept": "image/png"}).data)
    )
    assert plain.size == marked.size
    # Box corners are drawn at the nearest pixel (the rendered image is full size here).
    corner = (round(first["box"][0]), round(first["box"][1]))
    assert marked.convert("RGB").getpixel(corner) != plain.convert("RGB").getpixel(corner)
    # The SR holding them is an ordinary instance of the study.
    srs = json.loads(
        client.get(
            f"/dicom-web/studies/{first['study_uid']}/instances"
            "?SOPClassUID=1.2.840.10008.5.1.4.1.1.88.34"
        ).data
    )
    assert first["sr_uid"] in {i["00080018"]["Value"][0] for i in srs}


def test_cohort_filter_has_marks(archive: tuple[FlaskClient, Services]) -> None:
    client, _ = archive
    marked = json.loads(client.get("/api/v1/cohorts/query?mark_type=any").data)
    marks = json.loads(client.get("/api/v1/marks?limit=1000").data)
    assert {c["client_id"] for c in marked["clients"]} == {m["client_id"] for m in marks}
    stats = json.loads(client.get("/api/v1/stats").data)
    assert stats["tables"]["marked"]["total"] == len({m["client_id"] for m in marks})


def test_cohort_filter_by_conspicuity_and_mark_type(
    archive: tuple[FlaskClient, Services],
) -> None:
    """A conspicuity, alone or with a mark type, selects the clients with one mark of it
    (both on the same mark), as the marks search finds them."""
    client, _ = archive
    marks = json.loads(client.get("/api/v1/marks?limit=1000").data)
    seen = {m["conspicuity"] for m in marks if m["conspicuity"]}
    assert seen, "the demo marks carry a conspicuity"
    for value in seen:
        found = json.loads(
            client.get(f"/api/v1/cohorts/query?conspicuity={value.lower()}").data
        )
        assert {c["client_id"] for c in found["clients"]} == {
            m["client_id"] for m in marks if m["conspicuity"] == value
        }
        kind = next(m["finding_kind"] for m in marks if m["conspicuity"] == value)
        both = json.loads(
            client.get(f"/api/v1/cohorts/query?conspicuity={value}&mark_type={kind}").data
        )
        assert {c["client_id"] for c in both["clients"]} == {
            m["client_id"] for m in marks
            if m["conspicuity"] == value and m["finding_kind"] == kind
        }
    bad = client.get("/api/v1/cohorts/query?conspicuity=faint")
    assert bad.status_code == 400 and "conspicuity" in json.loads(bad.data)["error"]


def test_import_over_http_rejects_with_reasons(archive: tuple[FlaskClient, Services]) -> None:
    client, _ = archive
    r = client.post(
        "/api/v1/marks", json=[{"X1": 1, "Y1": 1, "X2": 5, "Y2": 5, "SOPInstanceUID": "1.2.3"}]
    )
    assert r.status_code == 422
    doc = json.loads(r.data)
    assert doc["rejected"] and doc["rejected"][0]["reason"]
