"""Images through the de-identifying pipeline and their NBSS records land together.

The demo files carry real-looking identity and true dates; the pipeline de-identifies
them with the archive's keys and the importer de-identifies the matching records with
the same keys. The client IDs, study UIDs and every date must then agree exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from omipacs.clinical.importer import import_records
from omipacs.clinical.models import Client, Episode, Event, StudyLink
from omipacs.deid.engine import Deidentifier
from omipacs.deid.pseudonyms import date_offset_days, episode_pseudonym
from omipacs.demo.clinical import clinical_records_for
from omipacs.demo.generate import DemoManifest, generate_demo
from omipacs.index.models import Instance, Patient, Series, Study
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.ingest.result import IngestOutcome
from omipacs.services import Services
from tests.clinical import synth
from tests.clinical.conftest import KEYS
from tests.conftest import make_settings

SEED = 11


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, DemoManifest]]:
    root = tmp_path_factory.mktemp("consistency")
    svc = Services.create(make_settings(root), cleaner=Deidentifier(KEYS, None))
    manifest = generate_demo(root / "demo", clients=4, seed=SEED, dbt_fraction=0.5)
    for inst in manifest.instances:
        origin = IngestOrigin(OriginKind.DEMO, ae_title=inst.site, deidentify=True)
        assert svc.pipeline.ingest_file(inst.path, origin).outcome is IngestOutcome.STORED
    with svc.write_sessions() as s:
        assert import_records(s, clinical_records_for(manifest, SEED), KEYS).ok
    yield svc, manifest
    svc.close()


def test_records_land_on_the_clients_of_the_images(
    archive: tuple[Services, DemoManifest],
) -> None:
    svc, manifest = archive
    with svc.sessions() as s:
        for client in manifest.clients:
            cid = synth.client_id(KEYS, client)
            row = s.scalars(select(Client).where(Client.client_id == cid)).one()
            patient = s.get(Patient, row.patient_pk)
            assert patient is not None and patient.patient_id == cid
            uids = set(s.scalars(select(Study.study_instance_uid).where(
                Study.patient_pk == patient.pk)))
            assert uids == {synth.study_uid(KEYS, st) for st in client.studies}


def test_study_dates_and_episode_dates_match_exactly(
    archive: tuple[Services, DemoManifest],
) -> None:
    svc, manifest = archive
    with svc.sessions() as s:
        for client in manifest.clients:
            offset = timedelta(days=date_offset_days(KEYS, synth.client_id(KEYS, client)))
            for study in client.studies:
                row = s.scalars(select(Study).where(
                    Study.study_instance_uid == synth.study_uid(KEYS, study))).one()
                assert row.study_date == study.date + offset
                link = s.get(StudyLink, row.pk)
                assert link is not None and link.method == "episode_id"
                episode = s.get(Episode, link.episode_pk)
                assert episode is not None and episode.nbss_episode_id == episode_pseudonym(
                    KEYS, synth.client_id(KEYS, client), str(study.episode))
                kind = "screening" if study.kind == "screening" else "assessment"
                assert link.event_kinds == [kind]
                event = s.scalars(select(Event).where(
                    Event.episode_pk == episode.pk, Event.kind == kind)).one()
                assert event.date_performed == row.study_date
                if study.kind == "screening":
                    assert episode.opened_date == row.study_date


def test_intervals_between_visits_are_exact(archive: tuple[Services, DemoManifest]) -> None:
    svc, manifest = archive
    with svc.sessions() as s:
        for client in manifest.clients:
            stored = [s.scalar(select(Study.study_date).where(
                Study.study_instance_uid == synth.study_uid(KEYS, st))) for st in client.studies]
            true = [st.date for st in client.studies]
            assert all(d is not None for d in stored)
            gaps = [(b - a) for a, b in zip(stored, stored[1:], strict=False)]  # type: ignore[operator]
            assert gaps == [(b - a) for a, b in zip(true, true[1:], strict=False)]


def _index_facts(s: Session) -> set[tuple[object, ...]]:
    rows = s.execute(
        select(Patient.patient_id, Study.study_instance_uid, Study.study_date,
               Study.patient_age, Series.series_instance_uid, Instance.sop_instance_uid,
               Instance.sop_class_uid, Instance.laterality, Instance.view_position,
               Instance.presentation_intent_type, Instance.manufacturer)
        .join(Study, Study.patient_pk == Patient.pk)
        .join(Series, Series.study_pk == Study.pk)
        .join(Instance, Instance.series_pk == Series.pk)
    ).all()
    return {tuple(r) for r in rows}


def test_synthetic_index_rows_match_the_pipeline(
    archive: tuple[Services, DemoManifest], tmp_path: Path,
) -> None:
    # The statistics and cohort tests write index rows directly; they must be what the
    # pipeline writes for the same files.
    svc, manifest = archive
    other = Services.create(make_settings(tmp_path))
    try:
        with other.write_sessions.begin() as s:
            synth.index_manifest(s, manifest, KEYS)
        with svc.sessions() as a, other.sessions() as b:
            assert _index_facts(a) == _index_facts(b)
    finally:
        other.close()
