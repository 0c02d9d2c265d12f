from __future__ import annotations

from collections import Counter
from pathlib import Path

import pydicom
import pytest

from omipacs.demo.generate import (
    SCREENING_INTERVAL,
    DemoManifest,
    generate_demo,
    iter_demo,
    plan_demo,
)
from omipacs.demo.names import is_valid_nhs_number

FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
TOMOSYNTHESIS = "1.2.840.10008.5.1.4.1.1.13.1.3"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    out = tmp_path_factory.mktemp("demo")
    return generate_demo(
        out, clients=6, seed=1, dbt_fraction=0.5, sites=("SITE_A", "SITE_B", "SITE_C")
    )


def test_every_planned_file_is_written_and_nothing_else(demo: DemoManifest) -> None:
    written = sorted(p for p in demo.out_dir.rglob("*") if p.is_file())
    assert written == sorted(i.path for i in demo.instances)
    assert len(demo.clients) == 6


def test_headers_match_the_manifest(demo: DemoManifest) -> None:
    for client in demo.clients:
        assert is_valid_nhs_number(client.nhs_number)
        for study in client.studies:
            for instance in study.instances:
                ds = pydicom.dcmread(instance.path, stop_before_pixels=True)
                assert ds.StudyInstanceUID == study.study_uid
                assert ds.SOPInstanceUID == instance.sop_uid
                assert ds.SOPClassUID == instance.sop_class_uid
                assert ds.StudyDate == f"{study.date:%Y%m%d}"
                assert ds.AccessionNumber == study.accession_number
                assert ds.OtherPatientIDs == client.nhs_number
                assert ds.PatientID == client.patient.local_id
                assert 50 <= int(ds.PatientAge[:3]) <= 70


def test_screening_studies_hold_four_views_in_both_forms(demo: DemoManifest) -> None:
    screening = [s for s in demo.studies if s.kind == "screening"]
    assert screening
    for study in screening:
        forms = Counter((i.laterality, i.view, i.sop_class_uid) for i in study.instances)
        assert len(study.instances) == 8
        assert set(forms) == {
            (lat, view, cls)
            for lat in "LR"
            for view in ("CC", "MLO")
            for cls in (FOR_PRESENTATION, FOR_PROCESSING)
        }
        assert len({i.series_uid for i in study.instances}) == 8


def test_processed_images_reference_their_raw_source(demo: DemoManifest) -> None:
    study = demo.clients[0].studies[0]
    raw = {i.acquisition: i.sop_uid for i in study.instances if not i.processed}
    for instance in (i for i in study.instances if i.processed):
        ds = pydicom.dcmread(instance.path, stop_before_pixels=True)
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == raw[instance.acquisition]


def test_episodes_are_three_years_apart_on_working_days(demo: DemoManifest) -> None:
    for client in demo.clients:
        dates = [s.date for s in client.studies if s.kind == "screening"]
        assert 1 <= len(dates) <= 4
        assert all(b - a == SCREENING_INTERVAL for a, b in zip(dates, dates[1:], strict=False))
        assert SCREENING_INTERVAL.days in (1092, 1095, 1096)
        assert all(s.date.weekday() < 5 for s in client.studies)
        assert [s.episode for s in client.studies if s.kind == "screening"] == list(
            range(1, len(dates) + 1)
        )


def test_recalled_clients_get_a_single_breast_dbt_assessment(demo: DemoManifest) -> None:
    recalled = [c for c in demo.clients if c.studies[-1].kind == "assessment"]
    assert len(recalled) == 3  # round(0.5 * 6)
    for client in recalled:
        last_screen, assessment = client.studies[-2], client.studies[-1]
        assert 14 <= (assessment.date - last_screen.date).days <= 28
        assert 1 <= len(assessment.instances) <= 2
        assert len(assessment.lateralities) == 1
        for instance in assessment.instances:
            ds = pydicom.dcmread(instance.path)
            assert ds.SOPClassUID == TOMOSYNTHESIS
            assert ds.NumberOfFrames == instance.frames == 10
            anatomy = ds.SharedFunctionalGroupsSequence[0].FrameAnatomySequence[0]
            assert anatomy.FrameLaterality == instance.laterality
            assert ds.pixel_array.shape == (10, 128, 104)


def test_each_site_has_one_vendor(demo: DemoManifest) -> None:
    makers: dict[str, set[str]] = {}
    for client in demo.clients:
        ds = pydicom.dcmread(client.studies[0].paths[0], stop_before_pixels=True)
        makers.setdefault(client.site, set()).add(ds.Manufacturer)
    assert set(makers) == {"SITE_A", "SITE_B", "SITE_C"}
    assert all(len(m) == 1 for m in makers.values())
    assert len({m.pop() for m in makers.values()}) == 3


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    one = generate_demo(tmp_path / "one", clients=2, seed=5, dbt_fraction=0.5)
    two = generate_demo(tmp_path / "two", clients=2, seed=5, dbt_fraction=0.5)
    other = plan_demo(tmp_path / "other", clients=2, seed=6)
    for a, b in zip(one.instances, two.instances, strict=True):
        assert a.path.relative_to(one.out_dir) == b.path.relative_to(two.out_dir)
        assert a.path.read_bytes() == b.path.read_bytes()
    assert {c.nhs_number for c in one.clients}.isdisjoint(c.nhs_number for c in other.clients)
    assert one.studies[0].study_uid != other.studies[0].study_uid


def test_plan_writes_nothing_and_more_clients_keep_the_first_ones(tmp_path: Path) -> None:
    small = plan_demo(tmp_path / "x", clients=3, seed=2, dbt_fraction=0.0)
    large = plan_demo(tmp_path / "x", clients=5, seed=2, dbt_fraction=0.0)
    assert not (tmp_path / "x").exists()
    assert large.clients[:3] == small.clients


def test_iter_demo_yields_each_file_once_it_exists(tmp_path: Path) -> None:
    plan = plan_demo(tmp_path, clients=1, seed=3, dbt_fraction=1.0)
    seen = []
    for path, instance in iter_demo(tmp_path, clients=1, seed=3, dbt_fraction=1.0):
        assert path.is_file() and path == instance.path
        assert not list(tmp_path.rglob("*.part"))
        seen.append(instance)
    assert tuple(seen) == plan.instances


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dbt_fraction": 1.5},
        {"clients": -1},
        {"sites": ()},
        {"sites": ("A", "A")},
    ],
)
def test_bad_arguments_are_rejected(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        plan_demo(tmp_path, **kwargs)  # type: ignore[arg-type]
