"""Cohort filters on SQLite and PostgreSQL, saved cohorts and the DICOMweb restriction."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from omipacs.clinical.codes import CaseOutcome
from omipacs.clinical.imaging import sync_imaging
from omipacs.clinical.importer import import_records
from omipacs.clinical.tally import set_marked
from omipacs.cohorts import (
    CohortFilters,
    PathologyFilter,
    StudyScope,
    cohort_query,
    cohort_restriction,
    get_cohort,
    list_cohorts,
    members_hash,
    resolve_members,
    save_cohort,
)
from omipacs.cohorts import filters as cohort_filters
from omipacs.cohorts import query as cohort_paging
from omipacs.demo.clinical import clinical_records_for, planned_outcomes
from omipacs.demo.generate import DemoClient, DemoManifest, DemoStudy, plan_demo
from omipacs.demo.vendors import VENDORS
from omipacs.errors import BadRequest, NotFound
from omipacs.index.models import Study
from omipacs.index.visibility import Visibility
from omipacs.retrieve.locate import locate
from omipacs.services import Services
from tests.clinical import synth
from tests.clinical.conftest import KEYS
from tests.conftest import make_settings
from tests.pg import create_database

SEED = 8
WEIGHTS = {CaseOutcome.NORMAL: 10, CaseOutcome.BENIGN: 5, CaseOutcome.MALIGNANT: 10,
           CaseOutcome.INTERVAL_CANCER: 3, CaseOutcome.UNKNOWN: 2}
"""Many cancers, so that pathology filters have something to find."""
Members = set[tuple[str, str]]


@dataclass
class Archive:
    services: Services
    manifest: DemoManifest
    records: list[dict[str, Any]]
    plan: dict[int, CaseOutcome]

    def cid(self, client: DemoClient) -> str:
        return synth.client_id(KEYS, client)

    def members(self, keep_client: Callable[[DemoClient, dict[str, Any]], bool],
                keep_study: Callable[[DemoClient, DemoStudy], bool] = lambda c, s: True,
                ) -> Members:
        """The expected members, computed here from the manifest and the records."""
        out: Members = set()
        for client in self.manifest.clients:
            if not keep_client(client, self.records[client.index]):
                continue
            for study in client.studies:
                if keep_study(client, study):
                    out.add((self.cid(client), synth.study_uid(KEYS, study)))
        return out


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def archive(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    root = tmp_path_factory.mktemp("cohorts")
    url = "" if request.param == "sqlite" else create_database(request.getfixturevalue("postgres"))
    svc = Services.create(make_settings(root, url))
    manifest = plan_demo(root, clients=30, seed=SEED, dbt_fraction=0.3,
                         sites=("SITE_A", "SITE_B", "SITE_C"))
    records = clinical_records_for(manifest, SEED, WEIGHTS)
    with svc.write_sessions() as s:
        synth.index_manifest(s, manifest, KEYS)
        sync_imaging(s)
        s.commit()
        assert import_records(s, records, KEYS).ok
    yield Archive(svc, manifest, records, planned_outcomes(manifest, SEED, WEIGHTS))
    svc.close()


def _findings(record: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for episode in record.values():
        if isinstance(episode, dict):
            for block in ("BIOPSYWIDE", "SURGERY"):
                for side in ("L", "R"):
                    out += list(episode.get(block, {}).get(side, {}).values())
    return out


def _lesions(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [lesion for ep in record.values() if isinstance(ep, dict)
            for side in ep.get("LESION", {}).values() for lesion in side.values()]


def _age(client: DemoClient, study: DemoStudy) -> int:
    birth = client.patient.birth_date
    on = study.date
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _episode_outcome_studies(a: Archive, outcome: str) -> Members:
    """Screens before a cancer: the round before the M round, or the last round before a CI."""
    out: Members = set()
    for client in a.manifest.clients:
        screens = [s for s in client.studies if s.kind == "screening"]
        planned = a.plan[client.index]
        if outcome == "CIP" and planned is CaseOutcome.INTERVAL_CANCER:
            out.add((a.cid(client), synth.study_uid(KEYS, screens[-1])))
        if outcome == "MP" and planned is CaseOutcome.MALIGNANT and len(screens) > 1:
            out.add((a.cid(client), synth.study_uid(KEYS, screens[-2])))
    return out


def _shifted(client: DemoClient, study: DemoStudy) -> date:
    return synth.shifted(KEYS, client, study.date)


DATE_FROM, DATE_TO = date(2008, 1, 1), date(2013, 12, 31)

CASES: list[tuple[str, CohortFilters, Callable[[Archive], Members]]] = [
    ("malignant", CohortFilters(outcomes=("M",)),
     lambda a: a.members(lambda c, r: a.plan[c.index] is CaseOutcome.MALIGNANT)),
    ("malignant with 3D, matching studies", CohortFilters(outcomes=("M",), dimensions=("3D",)),
     lambda a: a.members(lambda c, r: a.plan[c.index] is CaseOutcome.MALIGNANT,
                         lambda c, s: s.kind == "assessment")),
    ("malignant with 3D, all studies",
     CohortFilters(outcomes=("M",), dimensions=("3D",), scope=StudyScope.ALL),
     lambda a: a.members(lambda c, r: a.plan[c.index] is CaseOutcome.MALIGNANT
                         and any(s.kind == "assessment" for s in c.studies))),
    ("interval or unknown", CohortFilters(outcomes=("CI", "U")),
     lambda a: a.members(lambda c, r: a.plan[c.index] in (CaseOutcome.INTERVAL_CANCER,
                                                          CaseOutcome.UNKNOWN))),
    ("manufacturer prefix, any case", CohortFilters(manufacturers=("ge",)),
     lambda a: a.members(lambda c, r: VENDORS[c.vendor].manufacturer.startswith("GE"))),
    ("two manufacturers", CohortFilters(manufacturers=("hologic", "Siemens")),
     lambda a: a.members(lambda c, r: c.vendor in ("HOLOGIC", "SIEMENS"))),
    ("unprocessed MLO", CohortFilters(processed=False, views=("MLO",)),
     lambda a: a.members(lambda c, r: True, lambda c, s: s.kind == "screening")),
    ("processed 2D", CohortFilters(processed=True, dimensions=("2D",)),
     lambda a: a.members(lambda c, r: True, lambda c, s: s.kind == "screening")),
    ("left DBT", CohortFilters(dimensions=("3D",), lateralities=("L",)),
     lambda a: a.members(lambda c, r: True,
                         lambda c, s: s.kind == "assessment" and s.lateralities == ("L",))),
    ("invasive grade 3, HER2 positive",
     CohortFilters(pathology=PathologyFilter(invasive=True, grades=("G3",), her2_positive=True)),
     lambda a: a.members(lambda c, r: any(
         f.get("DiseaseGrade") == "G3" and f.get("HER2ReceptorStatus") == "RP"
         for f in _findings(r)))),
    ("in situ, graded DCIS",
     CohortFilters(pathology=PathologyFilter(invasive=False,
                                             dcis_grades=("NDH", "NDI", "NDL"))),
     lambda a: a.members(lambda c, r: any(
         f.get("MalignancyType") == "a" and f.get("DcisGrade") in ("NDH", "NDI", "NDL")
         for f in _findings(r)))),
    ("ER negative", CohortFilters(pathology=PathologyFilter(er_positive=False)),
     lambda a: a.members(lambda c, r: any(f.get("HormoneERStatus") == "RN"
                                          for f in _findings(r)))),
    ("tumours of 10-20 mm", CohortFilters(pathology=PathologyFilter(min_size_mm=10,
                                                                    max_size_mm=20)),
     lambda a: a.members(lambda c, r: any(10 <= f.get("WholeSizeOfTumour", -1) <= 20
                                          for f in _findings(r)))),
    ("mass lesions", CohortFilters(lesion_types=("MA",)),
     lambda a: a.members(lambda c, r: any(x["LesionDescription"] == "MA"
                                          for x in _lesions(r)))),
    ("ethnicity and deprivation", CohortFilters(ethnicities=("A",), imd_min=1, imd_max=5),
     lambda a: a.members(lambda c, r: r["Ethnicity"] == "A" and 1 <= r["IMDDecile"] <= 5)),
    ("dense breasts", CohortFilters(density_grades=("3", "4")),
     lambda a: a.members(lambda c, r: any(x["VolparaDensityGrade"] >= 3
                                          for x in r["DENSITY"]))),
    ("density range", CohortFilters(vbd_min=6.0, vbd_max=9.0),
     lambda a: a.members(lambda c, r: any(6.0 <= x["VolumetricBreastDensity"] <= 9.0
                                          for x in r["DENSITY"]))),
    ("microcalcifications", CohortFilters(features=("microcalcifications",)),
     lambda a: a.members(lambda c, r: any(f["Feature"] == "microcalcifications"
                                          for f in r.get("IMAGEFEATURES", [])))),
    ("priors of interval cancers", CohortFilters(episode_outcomes=("CIP",)),
     lambda a: _episode_outcome_studies(a, "CIP")),
    ("priors of screen-detected cancers", CohortFilters(episode_outcomes=("MP",)),
     lambda a: _episode_outcome_studies(a, "MP")),
    ("aged 55 to 60", CohortFilters(age_min=55, age_max=60),
     lambda a: a.members(lambda c, r: True, lambda c, s: 55 <= _age(c, s) <= 60)),
    ("shifted date range", CohortFilters(date_from=DATE_FROM, date_to=DATE_TO),
     lambda a: a.members(lambda c, r: True,
                         lambda c, s: DATE_FROM <= _shifted(c, s) <= DATE_TO)),
    ("marked", CohortFilters(marked=True), lambda a: set()),
    ("unmarked normal 2D",
     CohortFilters(outcomes=("N",), marked=False, dimensions=("2D",)),
     lambda a: a.members(lambda c, r: a.plan[c.index] is CaseOutcome.NORMAL,
                         lambda c, s: s.kind == "screening")),
]
MAY_BE_EMPTY = {"marked"}


@pytest.mark.parametrize(("name", "filters", "expected"), CASES, ids=[c[0] for c in CASES])
def test_cohort_filters(archive: Archive, name: str, filters: CohortFilters,
                        expected: Callable[[Archive], Members]) -> None:
    wanted = expected(archive)
    assert wanted or name in MAY_BE_EMPTY
    with archive.services.sessions() as s:
        members = resolve_members(s, filters)
        assert set(members) == wanted
        page = cohort_query(s, filters, limit=3)
    assert page.client_count == len({c for c, _ in wanted})
    assert page.study_count == len(wanted)
    first = sorted({c for c, _ in wanted})[:3]
    assert [c.client_id for c in page.clients] == first
    for client in page.clients:
        assert set(client.studies) == {u for c, u in wanted if c == client.client_id}


@pytest.mark.parametrize("walk", [(2, 20), (1, 0)], ids=["stretches", "budget-spent"])
@pytest.mark.parametrize(("name", "filters", "expected"), CASES, ids=[c[0] for c in CASES])
def test_pages_walked_in_short_stretches_equal_the_sorted_members(
    archive: Archive, name: str, filters: CohortFilters,
    expected: Callable[[Archive], Members], walk: tuple[int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page is found by walking clients in stretches, then (past a budget) by one
    query for the rest. With stretches of one or two clients (instead of hundreds) every
    page of 30 clients takes many stretches, and with no budget the rest is fetched
    after eight clients; either way a page must be exactly that slice of the sorted
    member list."""
    monkeypatch.setattr(cohort_paging, "_FIRST_STRIDE", walk[0])
    monkeypatch.setattr(cohort_paging, "_WALK_BUDGET", walk[1])
    wanted = expected(archive)
    ordered = sorted({c for c, _ in wanted})
    with archive.services.sessions() as s:
        for limit, offset in [(1, 0), (2, 0), (3, 4), (5, 10), (4, max(len(ordered) - 2, 0)),
                              (50, 0), (3, 40)]:
            page = cohort_query(s, filters, limit=limit, offset=offset, count=False)
            assert [c.client_id for c in page.clients] == ordered[offset:offset + limit]
            for client in page.clients:
                assert set(client.studies) == {u for c, u in wanted if c == client.client_id}
        # Keyset paging: each page starts after the last one's final client.
        seen: list[str] = []
        after: str | None = None
        for _ in range(len(ordered) + 1):  # a walk that never ends fails below
            page = cohort_query(s, filters, limit=4, count=False, after=after)
            seen += [c.client_id for c in page.clients]
            if page.next_after is None:
                break
            assert page.next_after == seen[-1]
            after = page.next_after
        else:
            raise AssertionError("paging did not end")
        assert seen == ordered
        if ordered:
            rest = cohort_query(s, filters, limit=None, count=False, after=ordered[0]).clients
            assert [c.client_id for c in rest] == ordered[1:]


def test_the_fixture_has_every_kind_of_case(archive: Archive) -> None:
    assert set(archive.plan.values()) == set(CaseOutcome)
    assert any(_findings(r) for r in archive.records)


def test_pages_cover_every_member_once(archive: Archive) -> None:
    filters = CohortFilters(dimensions=("2D",))
    with archive.services.sessions() as s:
        total = cohort_query(s, filters, limit=None).client_count
        seen = [c.client_id for off in range(0, total, 7)
                for c in cohort_query(s, filters, limit=7, offset=off).clients]
    assert len(seen) == total == len(set(seen)) == 30


def test_saved_cohort_members_hash_and_restriction(archive: Archive) -> None:
    filters = CohortFilters(outcomes=("M", "B"), scope=StudyScope.ALL)
    expected = archive.members(lambda c, r: archive.plan[c.index] in (
        CaseOutcome.MALIGNANT, CaseOutcome.BENIGN))
    name = f"mb-{archive.services.engine.dialect.name}"
    with archive.services.write_sessions() as s:
        first = save_cohort(s, name, filters, description="malignant and benign")
        second = save_cohort(s, name, filters)
        s.commit()
    assert (first.version, second.version) == (1, 2)
    assert first.members_sha256 == second.members_sha256 == members_hash(expected)
    assert first.definition_sha256 == second.definition_sha256 == filters.sha256()
    assert first.client_count == len({c for c, _ in expected})
    assert first.study_count == len(expected)

    with archive.services.sessions() as s:
        saved = get_cohort(s, first.id)
        assert set(saved.members) == expected and list(saved.members) == sorted(expected)
        assert saved.summary.filters == filters
        assert saved.summary.description == "malignant and benign"
        assert [c.id for c in list_cohorts(s, name)] == [second.id, first.id]
        visible = set(s.scalars(select(Study.study_instance_uid).where(
            cohort_restriction(first.id))))
        assert visible == {u for _, u in expected}
        member_uid = sorted(visible)[0]
        assert locate(s, member_uid, restrict=Visibility(study=cohort_restriction(first.id)))
        outsider = next(u for u in s.scalars(select(Study.study_instance_uid))
                        if u not in visible)
        assert locate(s, outsider)  # the study exists...
        with pytest.raises(NotFound):  # ...but not through the cohort's root
            locate(s, outsider, restrict=Visibility(study=cohort_restriction(first.id)))
        with pytest.raises(NotFound):
            get_cohort(s, 10_000)


def test_a_saved_cohort_does_not_change_when_data_arrives(any_db_services: Services,
                                                          tmp_path: Path) -> None:
    manifest = plan_demo(tmp_path, clients=8, seed=3, dbt_fraction=0.5)
    first, later = manifest.clients[:5], manifest.clients[5:]
    records = clinical_records_for(manifest, 3)
    filters = CohortFilters(dimensions=("2D",), scope=StudyScope.ALL)
    with any_db_services.write_sessions() as s:
        synth.index_manifest(s, manifest, KEYS, clients=list(first))
        sync_imaging(s)
        import_records(s, records[:5], KEYS)
        saved = save_cohort(s, "all-2d", filters)
        s.commit()
        synth.index_manifest(s, manifest, KEYS, clients=list(later))
        sync_imaging(s)
        import_records(s, records[5:], KEYS)
        set_marked(s, synth.client_id(KEYS, first[0]))
        s.commit()
        again = get_cohort(s, saved.id)
        assert again.summary.members_sha256 == saved.members_sha256
        assert members_hash(again.members) == saved.members_sha256
        assert len(again.client_ids) == 5
        assert len(resolve_members(s, filters)) > len(again.members)
        newer = save_cohort(s, "all-2d", filters)
        assert newer.version == 2 and newer.client_count == 8
        assert newer.members_sha256 != saved.members_sha256
        marked = resolve_members(s, CohortFilters(marked=True))
        assert {c for c, _ in marked} == {synth.client_id(KEYS, first[0])}


def test_filters_from_query_parameters() -> None:
    params = {"outcome": ["M", "b"], "dim": "3d", "grade": "3,G2", "her2": "positive",
              "manufacturer": "Hologic", "age_min": "50", "date_from": "2010-01-01",
              "marked": "false", "scope": "all", "density": ["3", "4"], "nodes": "negative",
              "conspicuity": "very_subtle,Obvious"}
    assert CohortFilters.from_params(params) == CohortFilters(
        outcomes=("M", "B"), dimensions=("3D",), manufacturers=("Hologic",), age_min=50,
        date_from=date(2010, 1, 1), marked=False, scope=StudyScope.ALL,
        density_grades=("3", "4"), conspicuities=("Very_subtle", "Obvious"),
        pathology=PathologyFilter(grades=("G3", "G2"), her2_positive=True,
                                  nodes_positive=False),
    )


@pytest.mark.parametrize(
    "params",
    [{"outcome": "X"}, {"colour": "red"}, {"dim": "4D"}, {"age_min": "old"},
     {"age_min": "70", "age_max": "50"}, {"marked": "perhaps"}, {"grade": "7"},
     {"date_from": "yesterday"}, {"scope": "some"}, {"age_min": ["50", "60"]},
     {"lesion": "XX"}, {"density": "5"}, {"conspicuity": "faint"}],
)
def test_bad_query_parameters(params: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        CohortFilters.from_params(params)


def test_definition_round_trip() -> None:
    filters = CohortFilters(
        outcomes=("CI",), episode_outcomes=("CIP",), dimensions=("2D",), processed=True,
        views=("CC",), date_to=date(2012, 5, 1), vbd_max=12.5,
        pathology=PathologyFilter(grades=("G1",), min_size_mm=5.0), scope=StudyScope.ALL,
    )
    definition = filters.definition()
    assert definition["schema"] == 1 and definition["date_to"] == "2012-05-01"
    assert CohortFilters.from_dict(definition) == filters
    assert CohortFilters.from_dict(definition).sha256() == filters.sha256()
    with pytest.raises(BadRequest):
        CohortFilters.from_dict({"outcomes": ["M"], "unknown": 1})
    with pytest.raises(BadRequest):
        CohortFilters.from_dict({"pathology": {"grade": "G1"}})
    with pytest.raises(BadRequest):
        CohortFilters(manufacturers=(" ",))
    # A field added after schema 1 is written only when set: earlier definitions and
    # their hashes do not change.
    assert "conspicuities" not in definition
    subtle = dataclasses.replace(filters, conspicuities=("Subtle",))
    assert subtle.definition()["conspicuities"] == ["Subtle"]
    assert CohortFilters.from_dict(subtle.definition()) == subtle
    with pytest.raises(BadRequest):
        CohortFilters(conspicuities=("Faint",))


def test_a_cohort_needs_a_name(deid_services: Services) -> None:
    with deid_services.write_sessions() as s, pytest.raises(BadRequest):
        save_cohort(s, "  ", CohortFilters())


def test_every_filter_is_reachable_from_parameters() -> None:
    # a guard: a filter added without a query parameter fails here
    names = set(CohortFilters.__dataclass_fields__) - {"pathology"}
    assert {target for target, _ in cohort_filters._PARAMS.values()} == names
    pathology = set(PathologyFilter.__dataclass_fields__)
    assert {target for target, _ in cohort_filters._PATHOLOGY_PARAMS.values()} == pathology
