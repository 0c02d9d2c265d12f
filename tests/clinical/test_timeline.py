"""A client's timeline with its images, and the priors of cancers."""

from __future__ import annotations

from pathlib import Path

import pytest

from omipacs.clinical.codes import CaseOutcome
from omipacs.clinical.imaging import sync_imaging
from omipacs.clinical.importer import import_records
from omipacs.clinical.timeline import client_timeline, find_priors
from omipacs.deid.pseudonyms import episode_pseudonym
from omipacs.demo.clinical import clinical_records_for, planned_outcomes
from omipacs.demo.generate import DemoClient, DemoManifest, plan_demo
from omipacs.errors import NotFound
from omipacs.services import Services
from tests.clinical import synth
from tests.clinical.conftest import KEYS

SEED = 6
WEIGHTS = {CaseOutcome.NORMAL: 4, CaseOutcome.MALIGNANT: 4, CaseOutcome.INTERVAL_CANCER: 2}


def _load(services: Services, tmp_path: Path) -> tuple[DemoManifest, dict[int, CaseOutcome]]:
    manifest = plan_demo(tmp_path, clients=10, seed=SEED, dbt_fraction=0.4)
    with services.write_sessions() as s:
        synth.index_manifest(s, manifest, KEYS)
        sync_imaging(s)
        assert import_records(s, clinical_records_for(manifest, SEED, WEIGHTS), KEYS).ok
        s.commit()
    return manifest, planned_outcomes(manifest, SEED, WEIGHTS)


def _pick(manifest: DemoManifest, plan: dict[int, CaseOutcome], outcome: CaseOutcome,
          *, rounds: int = 2, recalled: bool | None = None) -> DemoClient:
    for client in manifest.clients:
        screens = [s for s in client.studies if s.kind == "screening"]
        has_dbt = any(s.kind == "assessment" for s in client.studies)
        if plan[client.index] is outcome and len(screens) >= rounds and (
            recalled is None or has_dbt == recalled
        ):
            return client
    raise AssertionError("the demo plan has no such client")


def test_timeline_shows_screen_assessment_dbt_and_outcome(deid_services: Services,
                                                          tmp_path: Path) -> None:
    manifest, plan = _load(deid_services, tmp_path)
    client = _pick(manifest, plan, CaseOutcome.MALIGNANT, recalled=True)
    with deid_services.sessions() as s:
        timeline = client_timeline(s, synth.client_id(KEYS, client))
    assert timeline.outcome == "M" and timeline.unlinked_studies == ()
    last = timeline.episodes[-1]
    assert (last.status, last.outcome) == ("M", "M")
    assert [e.kind for e in last.events][:2] == ["screening", "assessment"]
    assert {"biopsy_wide", "surgery"} <= {e.kind for e in last.events}
    screen, dbt = last.studies
    assert (screen.event_kinds, screen.has_2d, screen.has_3d, screen.instances) == (
        ("screening",), True, False, 8)
    assert (dbt.event_kinds, dbt.has_2d, dbt.has_3d) == (("assessment",), False, True)
    assert dbt.date is not None and screen.date is not None
    assert 14 <= (dbt.date - screen.date).days <= 28
    prior = timeline.episodes[-2]
    assert (prior.outcome, prior.outcome_ref_episode_id) == ("MP", last.nbss_episode_id)
    data = timeline.to_dict()
    assert data["episodes"][-1]["studies"][1]["date"] == dbt.date.isoformat()


def test_priors_of_interval_cancers_and_malignancies(deid_services: Services,
                                                     tmp_path: Path) -> None:
    manifest, plan = _load(deid_services, tmp_path)
    interval = _pick(manifest, plan, CaseOutcome.INTERVAL_CANCER, rounds=1)
    cancer = _pick(manifest, plan, CaseOutcome.MALIGNANT)
    with deid_services.sessions() as s:
        (ci_prior,) = find_priors(s, synth.client_id(KEYS, interval))
        screens = [st for st in interval.studies if st.kind == "screening"]
        assert ci_prior.prior_outcome == "CIP"
        ci_client = synth.client_id(KEYS, interval)
        assert ci_prior.prior_episode_id == episode_pseudonym(KEYS, ci_client, str(len(screens)))
        assert ci_prior.cancer_episode_id == episode_pseudonym(
            KEYS, ci_client, str(len(screens) + 1))
        assert ci_prior.study_uids == (synth.study_uid(KEYS, screens[-1]),)
        assert ci_prior.cancer_date and ci_prior.prior_date
        assert 60 <= (ci_prior.cancer_date - ci_prior.prior_date).days <= 900

        (m_prior,) = find_priors(s, synth.client_id(KEYS, cancer))
        cancer_screens = [st for st in cancer.studies if st.kind == "screening"]
        assert (m_prior.prior_outcome, m_prior.cancer_episode_id) == (
            "MP", episode_pseudonym(KEYS, synth.client_id(KEYS, cancer), str(len(cancer_screens))))
        assert m_prior.study_uids == (synth.study_uid(KEYS, cancer_screens[-2]),)

        everyone = find_priors(s)
        wanted_ci = sum(1 for c in manifest.clients if plan[c.index] is CaseOutcome.INTERVAL_CANCER)
        assert sum(1 for p in everyone if p.prior_outcome == "CIP") == wanted_ci
        with pytest.raises(NotFound):
            client_timeline(s, "OPTMNOSUCHCLIENT")
