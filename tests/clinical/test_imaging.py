"""Folding stored images into clients: flags, watermark, idempotence."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from omipacs.clinical.imaging import pending_imaging, rebuild_imaging, sync_imaging
from omipacs.clinical.models import Client, StudyLink
from omipacs.clinical.tally import count_clients, nonzero, read_tally
from omipacs.demo.generate import plan_demo
from omipacs.index.models import Instance
from omipacs.services import Services
from tests.clinical import synth
from tests.clinical.conftest import KEYS


def test_sync_is_incremental_and_idempotent(deid_services: Services, tmp_path: Path) -> None:
    manifest = plan_demo(tmp_path, clients=6, seed=13, dbt_fraction=0.5)
    first, later = list(manifest.clients[:4]), list(manifest.clients[4:])
    with deid_services.write_sessions() as s:
        assert sync_imaging(s).instances == 0
        synth.index_manifest(s, manifest, KEYS, clients=first)
        report = sync_imaging(s)
        newest = s.scalar(select(func.max(Instance.pk)))
        assert (report.clients_created, report.watermark) == (4, newest)
        assert report.instances == sum(len(st.instances) for c in first for st in c.studies)
        assert pending_imaging(s, report.watermark) == []
        flags = {c.client_id: (c.has_2d, c.has_3d, c.outcome, c.linked)
                 for c in s.scalars(select(Client))}
        assert flags == {
            synth.client_id(KEYS, c): (True, any(st.kind == "assessment" for st in c.studies),
                                       "U", None)
            for c in first
        }
        again = sync_imaging(s)
        assert (again.instances, again.clients_created, again.studies_linked) == (0, 0, 0)

        synth.index_manifest(s, manifest, KEYS, clients=later)
        report = sync_imaging(s)
        assert report.clients_created == 2
        assert report.instances == sum(len(st.instances) for c in later for st in c.studies)
        # without clinical records the studies have links to no episode
        assert s.scalar(select(func.count()).select_from(StudyLink)) == len(manifest.studies)
        _, tally = read_tally(s)
        assert nonzero(tally.items()) == count_clients(s)


def test_rebuild_makes_clients_for_every_patient(deid_services: Services,
                                                 tmp_path: Path) -> None:
    manifest = plan_demo(tmp_path, clients=3, seed=13, dbt_fraction=0.34)
    with deid_services.write_sessions() as s:
        synth.index_manifest(s, manifest, KEYS)
        rebuild_imaging(s)
        s.commit()
        clients = s.scalars(select(Client)).all()
        assert {c.client_id for c in clients} == {synth.client_id(KEYS, c)
                                                  for c in manifest.clients}
        assert all(c.patient_pk is not None and c.has_2d for c in clients)
        assert sum(c.has_3d for c in clients) == 1
        watermark, tally = read_tally(s)
        assert watermark == s.scalar(select(func.max(Instance.pk)))
        assert nonzero(tally.items()) == count_clients(s)
        assert sync_imaging(s).instances == 0
