"""The synthetic NBSS records of the demo: proportions, determinism, plausibility."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from omipacs.clinical.codes import CaseOutcome
from omipacs.clinical.importer import import_records
from omipacs.clinical.models import Client, Episode, Lesion, LesionFinding
from omipacs.clinical.nbss import parse_record
from omipacs.demo.clinical import (
    SEED_2D_CASES,
    allocate,
    clinical_records_for,
    planned_outcomes,
)
from omipacs.demo.generate import plan_demo
from omipacs.services import Services
from tests.clinical import synth
from tests.clinical.conftest import KEYS

N, B, M, CI, U = (CaseOutcome.NORMAL, CaseOutcome.BENIGN, CaseOutcome.MALIGNANT,
                  CaseOutcome.INTERVAL_CANCER, CaseOutcome.UNKNOWN)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, (0, 0, 0, 0, 0)),
        (1, (1, 0, 0, 0, 0)),
        (10, (9, 0, 0, 0, 1)),  # quotas 9.04 N, 0.34 U, 0.33 M: the remainder goes to U
        (19, (17, 0, 1, 0, 1)),  # below 20: largest remainder only
        (20, (16, 1, 1, 1, 1)),  # from 20: one of each, taken from the normal ones
        (100, (91, 2, 3, 1, 3)),  # remainders CI 0.61 and N 0.41 win
        (1000, (904, 23, 33, 6, 34)),
        (469_359, (424_339, 11_029, 15_404, 2_860, 15_727)),  # the brochure exactly
    ],
)
def test_allocation(n: int, expected: tuple[int, ...]) -> None:
    counts = allocate(n)
    assert tuple(counts[o] for o in (N, B, M, CI, U)) == expected
    assert sum(counts.values()) == n


def test_allocation_follows_the_seed_proportions_at_scale() -> None:
    counts = allocate(47_000)
    total = sum(SEED_2D_CASES.values())
    for outcome, cases in SEED_2D_CASES.items():
        assert abs(counts[outcome] - 47_000 * cases / total) < 1


def test_malignant_and_benign_prefer_the_recalled(tmp_path: Path) -> None:
    manifest = plan_demo(tmp_path, clients=60, seed=2, dbt_fraction=0.2)
    plan = planned_outcomes(manifest, 2)
    recalled = {c.index for c in manifest.clients if any(s.kind == "assessment"
                                                         for s in c.studies)}
    cancers = {i for i, o in plan.items() if o in (M, B)}
    assert len(cancers) == 4 and cancers <= recalled
    interval = {i for i, o in plan.items() if o is CI}
    assert interval and not interval & recalled


def test_records_are_deterministic_and_match_the_manifest(tmp_path: Path) -> None:
    manifest = plan_demo(tmp_path, clients=25, seed=4, dbt_fraction=0.3)
    records = clinical_records_for(manifest, 4)
    assert records == clinical_records_for(manifest, 4)
    assert records != clinical_records_for(manifest, 5)
    plan = planned_outcomes(manifest, 4)
    for client, record in zip(manifest.clients, records, strict=True):
        assert record["NHSNumber"] == client.nhs_number
        assert record["LocalID"] == client.patient.local_id
        screens = [s for s in client.studies if s.kind == "screening"]
        episodes = {k: v for k, v in record.items() if isinstance(v, dict)}
        extra = 1 if plan[client.index] is CI else 0
        assert len(episodes) == len(screens) + extra
        listed = {u for e in episodes.values() for u in e.get("StudyList", [])}
        assert listed == {s.study_uid for s in client.studies}
        for n, screen in enumerate(screens, start=1):
            assert episodes[str(n)]["SCREENING"]["L"]["DateTaken"] == screen.date.isoformat()
        parsed = parse_record(record, KEYS)
        assert parsed.client_id == synth.client_id(KEYS, client)
        assert parsed.dropped_fields >= (1 if plan[client.index] in (M, B) else 0)


def test_imported_records_have_the_planned_outcomes_and_pathology(deid_services: Services,
                                                                  tmp_path: Path) -> None:
    manifest = plan_demo(tmp_path, clients=60, seed=9, dbt_fraction=0.2)
    plan = planned_outcomes(manifest, 9)
    with deid_services.write_sessions() as s:
        report = import_records(s, clinical_records_for(manifest, 9), KEYS)
        assert report.ok
        assert [r.outcome for r in report.results] == [plan[c.index].value
                                                       for c in manifest.clients]
        malignant = [synth.client_id(KEYS, c) for c in manifest.clients if plan[c.index] is M]
        for cid in malignant:
            grades = s.execute(
                select(LesionFinding.disease_grade, LesionFinding.dcis_grade,
                       LesionFinding.malignancy_type)
                .join(Lesion, LesionFinding.lesion_pk == Lesion.pk)
                .join(Episode, Lesion.episode_pk == Episode.pk)
                .join(Client, Episode.client_pk == Client.pk)
                .where(Client.client_id == cid)
            ).all()
            assert any(m in ("a", "b") and (g or d) for g, d, m in grades)
        unknown = s.scalars(select(Client.outcome_reason).where(Client.outcome == "U")).all()
        assert unknown and set(unknown) == {"episode without status"}
