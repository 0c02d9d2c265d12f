"""The ``density`` scope: breast density exists for a licence holder only with it.

Through the real server, on SQLite and PostgreSQL. Client P001 (a member of every
licence below) has density measurements, and a saved cohort ``dense`` is defined by a
density grade, so its members' density is implied by its definition. Two licences on
that cohort, both with ``clinical``: ``LD`` without ``density``, ``LDD`` with it. Without
the scope, density is absent from every answer: the cohort's definition (and its hash,
from which the few possible criteria could be recovered), the dashboard's density
chart (404, as for any data a licence lacks), the timeline, the statistics; the
archive-wide cohort builder, where density is a filter, is not open to researchers at
all (403).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select

from omipacs.access import admin
from omipacs.clinical.models import Client, Density
from omipacs.cohorts.filters import CohortFilters
from omipacs.cohorts.saved import save_cohort
from tests.web.access_fixture import AccessArchive, build_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AccessArchive]:
    for a in build_for(request, tmp_path_factory, "density"):
        with a.services.write_sessions.begin() as s:
            client = s.scalar(select(Client).where(Client.client_id == "P001"))
            assert client is not None
            for side, vbd, grade in (("L", 12.5, "3"), ("R", 11.0, "3")):
                s.add(Density(client_pk=client.pk, side=side, algorithm="volpara",
                              vbd_pct=vbd, fgv_cm3=80.0, breast_vol_cm3=700.0,
                              density_grade=grade, raw={"VolumetricBreastDensity": vbd}))
        with a.services.write_sessions.begin() as s:
            dense = save_cohort(s, "dense", CohortFilters(density_grades=("3",)))
            assert dense.client_count == 1
            a.cohorts["dense"] = dense.id
            ends = date.today() + timedelta(days=30)
            for name, scopes in (("LD", "2d,clinical"), ("LDD", "2d,clinical,density")):
                lic = admin.create_licence(s, title=name, cohort_id=dense.id, scopes=scopes,
                                           ends=ends, members=["r2@lab.example"])
                a.licences[name] = lic.id
                a.tokens[name] = admin.create_token(s, "r2@lab.example", licence_id=lic.id)[0]
        yield a


def _get(a: AccessArchive, who: str, path: str, **params: str) -> requests.Response:
    return requests.get(a.base + path, headers=a.headers(who), params=params, timeout=60)


def _ui(a: AccessArchive, who: str, path: str) -> requests.Response:
    """A dashboard page, with the token as the session cookie (GET needs no CSRF)."""
    return requests.get(a.base + path, cookies={"omipacs_session": a.tokens[who]},
                        allow_redirects=False, timeout=60)


def _keys(doc: Any) -> set[str]:
    """Every key anywhere in a JSON document."""
    if isinstance(doc, dict):
        return set(doc) | {k for v in doc.values() for k in _keys(v)}
    if isinstance(doc, list):
        return {k for v in doc for k in _keys(v)}
    return set()


def _mentions_density(doc: Any) -> bool:
    text = json.dumps(doc).lower()
    return any(w in text for w in ("density", "vbd", "volpara", "fgv"))


def test_a_density_defined_cohort_keeps_its_criteria_from_a_licence_without_density(
    archive: AccessArchive,
) -> None:
    a = archive
    cohort = a.cohorts["dense"]
    without = _get(a, "LD", f"/api/v1/cohorts/{cohort}")
    assert without.status_code == 200
    doc = without.json()
    assert {m["client_id"] for m in doc["members"]} == {"P001"}
    assert "definition_sha256" not in doc
    assert not _mentions_density(doc["definition"])
    listed = _get(a, "LD", "/api/v1/cohorts").json()
    assert [c["id"] for c in listed] == [cohort]
    assert not _mentions_density(listed[0]["definition"]) and "definition_sha256" not in listed[0]

    with_density = _get(a, "LDD", f"/api/v1/cohorts/{cohort}").json()
    assert with_density["definition"]["density_grades"] == ["3"]
    assert with_density["definition_sha256"] == _get(
        a, "admin", f"/api/v1/cohorts/{cohort}").json()["definition_sha256"]


def test_the_density_chart_does_not_exist_without_density(archive: AccessArchive) -> None:
    a = archive
    assert _ui(a, "LD", "/ui/charts/density").status_code == 404
    assert _ui(a, "LD", "/ui/charts/density.csv").status_code == 404
    shown = _ui(a, "LDD", "/ui/charts/density.csv")
    assert shown.status_code == 200
    (row,) = shown.text.splitlines()[1:]
    assert row.startswith("3") and row.endswith(",1")  # grade 3: one client
    overview = _ui(a, "LD", "/ui/")
    assert overview.status_code == 200 and "charts/density" not in overview.text
    assert "charts/density" in _ui(a, "LDD", "/ui/").text


def test_timeline_and_statistics_carry_no_density_without_the_scope(
    archive: AccessArchive,
) -> None:
    a = archive
    timeline = _get(a, "LD", "/api/v1/clients/P001/timeline")
    assert timeline.status_code == 200 and timeline.json()["client_id"] == "P001"
    assert not _mentions_density(timeline.json())
    stats = _get(a, "LD", "/api/v1/stats")
    assert stats.status_code == 200
    assert not _mentions_density(stats.json())
    assert not _keys(stats.json()["tables"]) & {"density"}


def test_researchers_cannot_filter_the_archive_by_density(archive: AccessArchive) -> None:
    a = archive
    for who in ("LD", "LDD"):
        refused = _get(a, who, "/api/v1/cohorts/query", density="3")
        assert refused.status_code == 403, who
        assert not _mentions_density(refused.json())
    found = _get(a, "admin", "/api/v1/cohorts/query", density="3").json()
    assert [c["client_id"] for c in found["clients"]] == ["P001"]
