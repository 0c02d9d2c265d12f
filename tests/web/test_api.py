"""The JSON API (stats, cohorts, clinical import) and cohort DICOMweb roots."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from omipacs.bootstrap import open_archive
from omipacs.clinical.models import Client
from omipacs.demo.load import load_demo
from omipacs.index.models import Study
from omipacs.services import Services
from omipacs.web.app import create_app
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlaskClient, Services]]:
    settings = make_settings(tmp_path_factory.mktemp("api"))
    load_demo(settings, clients=20, seed=3)
    services = open_archive(settings)
    yield create_app(services).test_client(), services
    services.close()


def _get(client: FlaskClient, url: str, status: int = 200) -> object:
    r = client.get(url)
    assert r.status_code == status, (url, r.data[:300])
    return json.loads(r.data)


def test_stats_json_and_csv(archive: tuple[FlaskClient, Services]) -> None:
    client, services = archive
    doc = _get(client, "/api/v1/stats")
    assert isinstance(doc, dict)
    with services.sessions() as s:
        clients = s.scalar(select(func.count()).select_from(Client))
    assert doc["clients"] == clients == 20
    assert doc["tables"]["2d"]["total"] == 20
    csv = client.get("/api/v1/stats?format=csv")
    assert csv.content_type.startswith("text/csv") and b"outcome" in csv.data.splitlines()[0]


def _uids(client: FlaskClient, root: str) -> set[str]:
    studies = _get(client, f"{root}/studies?limit=1000")
    assert isinstance(studies, list)
    return {s["0020000D"]["Value"][0] for s in studies}


def test_cohort_root_never_returns_non_members(archive: tuple[FlaskClient, Services]) -> None:
    client, services = archive
    query = _get(client, "/api/v1/cohorts/query?outcome=M&outcome=B")
    assert isinstance(query, dict) and query["client_count"] >= 2
    r = client.post(
        "/api/v1/cohorts", json={"name": "cancers", "filters": {"outcomes": ["M", "B"]}}
    )
    assert r.status_code == 201
    saved = json.loads(r.data)
    root = f"/cohorts/{saved['id']}/dicom-web"
    detail = _get(client, f"/api/v1/cohorts/{saved['id']}")
    assert isinstance(detail, dict)
    members = {m["study_uid"] for m in detail["members"]}
    everything = _uids(client, "/dicom-web")
    outside = everything - members
    assert members and outside
    assert _uids(client, root) == members
    # Every way of reaching a non-member through the cohort root is "not found".
    other = sorted(outside)[0]
    series = _get(client, f"/dicom-web/studies/{other}/series")
    assert isinstance(series, list)
    se = series[0]["0020000E"]["Value"][0]
    inst = _get(client, f"/dicom-web/studies/{other}/series/{se}/instances")
    assert isinstance(inst, list)
    sop = inst[0]["00080018"]["Value"][0]
    base = f"{root}/studies/{other}/series/{se}/instances/{sop}"
    for url in (
        f"{root}/studies/{other}",
        f"{root}/studies/{other}/metadata",
        f"{root}/studies/{other}/series/{se}/metadata",
        base,
        f"{base}/metadata",
        f"{base}/frames/1",
        f"{base}/rendered",
        f"{base}/thumbnail",
        f"{base}/bulkdata/7FE00010",
    ):
        assert client.get(url).status_code == 404, url
    assert _get(client, f"{root}/studies/{other}/series") == []
    assert _get(client, f"{root}/instances?StudyInstanceUID={other}") == []
    assert _get(client, f"{root}/series?limit=1000") != []
    # And members are served in full.
    member = sorted(members)[0]
    assert client.get(f"{root}/studies/{member}/metadata").status_code == 200
    # The cohort root is read-only (no STOW there); unknown cohorts are not found.
    assert (
        client.post(
            f"{root}/studies",
            data=b"",
            headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
        ).status_code
        == 405
    )
    assert client.get("/cohorts/999999/dicom-web/studies").status_code == 404
    with services.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Study)) == len(everything)


def test_cohort_pages_follow_next_after(archive: tuple[FlaskClient, Services]) -> None:
    client, _ = archive
    everyone = _get(client, "/api/v1/cohorts/query?dim=2D&limit=1000")
    assert isinstance(everyone, dict) and everyone["next_after"] is None
    expected = [c["client_id"] for c in everyone["clients"]]
    assert len(expected) == everyone["client_count"] == 20
    seen: list[str] = []
    url = "/api/v1/cohorts/query?dim=2D&limit=6&count=false"
    page = _get(client, url)
    for _ in range(len(expected) + 1):  # a page that never ends the walk fails below
        assert isinstance(page, dict)
        seen += [c["client_id"] for c in page["clients"]]
        if page["next_after"] is None:
            break
        assert page["next_after"] == seen[-1]
        page = _get(client, f"{url}&after={page['next_after']}")
    else:
        raise AssertionError("paging did not end")
    assert seen == expected


def test_bad_cohort_parameters_are_400(archive: tuple[FlaskClient, Services]) -> None:
    client, _ = archive
    for url in (
        "/api/v1/cohorts/query?outcome=XYZ",
        "/api/v1/cohorts/query?nosuch=1",
        "/api/v1/cohorts/query?age_min=abc",
        "/api/v1/cohorts/query?after=OPTM%27%20OR%201=1",
        "/api/v1/cohorts/query?after=",
    ):
        assert client.get(url).status_code == 400, url
    assert client.post("/api/v1/cohorts", json={"filters": {}}).status_code == 400


def test_clinical_import_endpoint_and_timeline(archive: tuple[FlaskClient, Services]) -> None:
    client, services = archive
    with services.sessions() as s:
        client_id = s.scalars(select(Client.client_id)).first()
    timeline = _get(client, f"/api/v1/clients/{client_id}/timeline")
    assert isinstance(timeline, dict) and timeline["client_id"] == client_id
    assert client.get("/api/v1/clients/NOPE/timeline").status_code == 404
    bad = client.post("/api/v1/clinical", json={"not": "a record"})
    assert bad.status_code == 422
    assert json.loads(bad.data)["rejected"] == 1
    assert (
        client.post(
            "/api/v1/clinical", data=b"x", headers={"Content-Type": "text/plain"}
        ).status_code
        == 415
    )
