"""An archive to release from: images, an expert-mark SR, clinical rows, licences.

Data: the query fixture's four studies (``tests.query.archive``: FFDM for presentation
and for processing, a DBT, a secondary capture), an expert-mark SR on image 1.1.1,
clinical rows (outcome, an episode, a density measurement) for the two clients of
cohort ``C`` (studies 1 and 2: clients ``P001`` and ``' OR 1=1--``).

Licences on cohort C: ``full`` (every scope) and ``2d`` (FFDM for presentation only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select

from omipacs.access import admin
from omipacs.bootstrap import open_archive
from omipacs.clinical.models import Client, Density, Episode
from omipacs.cohorts.models import Cohort, CohortMember
from omipacs.config import Settings
from omipacs.services import Services
from tests.conftest import make_settings
from tests.query.archive import populate, uid
from tests.web.access_fixture import _mark_sr


@dataclass
class ReleaseArchive:
    settings: Settings
    services: Services
    licences: dict[str, int]
    sr_sop: str
    workdir: Path


def build(root: Path, db_url: str = "") -> ReleaseArchive:
    """Ingest the data and make the licences (the caller closes ``services``)."""
    settings = make_settings(root, db_url)
    services = open_archive(settings)
    populate(services, root)
    _sr_series, sr_sop = _mark_sr(services, root).split("|")
    with services.write_sessions.begin() as s:
        for cid, outcome in (("P001", "M"), ("' OR 1=1--", "B"), ("X_1", "N")):
            client = s.scalar(select(Client).where(Client.client_id == cid))
            if client is None:
                client = Client(client_id=cid)
                s.add(client)
            client.outcome, client.has_clinical = outcome, True
            s.flush()
            s.add(Episode(client_pk=client.pk, nbss_episode_id=f"E-{outcome}", type="RC",
                          raw={"VolparaDensityGrade": "3", "Note": "kept"}))
            s.add(Density(client_pk=client.pk, side="L", algorithm="volpara",
                          vbd_pct=12.5, density_grade="3"))
        c = Cohort(name="C", version=1, definition={}, definition_sha256="d" * 64,
                   members_sha256="m" * 64, client_count=2, study_count=2)
        s.add(c)
        s.flush()
        for client_id, study in (("P001", "1"), ("' OR 1=1--", "2")):
            s.add(CohortMember(cohort_pk=c.pk, client_id=client_id,
                               study_instance_uid=uid(study)))
        ends = date.today() + timedelta(days=365)
        licences = {}
        for name, scopes in (("full", "2d,for-processing,3d,marks,clinical,density"),
                             ("2d", "2d")):
            lic = admin.create_licence(s, title=name, cohort_id=c.pk, scopes=scopes, ends=ends)
            licences[name] = lic.id
    return ReleaseArchive(settings, services, licences, sr_sop, root)


def add_image(services: Services, workdir: Path, study: str, series: str, sop: str,
              patient: int | None = None) -> None:
    """Ingest one more FFDM image of the query fixture's patient of ``study`` (or of
    fixture study ``patient``'s patient, for a new study)."""
    from omipacs.demo import factory
    from tests.query.archive import _PATIENTS, ORIGIN, _study_date

    who = int(study) if patient is None else patient
    ds = factory.make_mammo(
        laterality="L", view="CC", vendor="HOLOGIC", rows=32, columns=32, rng=9,
        study_uid=uid(study), series_uid=uid(f"{study}.{series}"),
        sop_uid=uid(f"{study}.{series}.{sop}"), study_date=_study_date(who),
        **{**_PATIENTS[who], "SeriesNumber": int(series)},
    )
    path = workdir / f"extra-{study}.{series}.{sop}.dcm"
    factory.save(ds, path)
    result = services.pipeline.ingest_file(path, ORIGIN)
    assert result.outcome.value == "stored", result


def delete_instances(services: Services, sops: list[str]) -> None:
    """Take instances out of the index as the archive does (with their change events)."""
    from omipacs.index.models import Instance
    from omipacs.index.repository import delete_instance

    with services.write_sessions.begin() as s:
        for pk in list(s.scalars(select(Instance.pk).where(Instance.sop_instance_uid.in_(sops)))):
            delete_instance(s, pk)


def delete_behind_the_feed(services: Services, sops: list[str]) -> None:
    """Delete index rows directly, leaving no change event (a repair by hand, say)."""
    from sqlalchemy import delete

    from omipacs.index.models import Instance, InstanceMetadata

    with services.write_sessions.begin() as s:
        pks = list(s.scalars(select(Instance.pk).where(Instance.sop_instance_uid.in_(sops))))
        s.execute(delete(InstanceMetadata).where(InstanceMetadata.instance_pk.in_(pks)))
        s.execute(delete(Instance).where(Instance.pk.in_(pks)))


def new_version(services: Services, name: str, members: list[tuple[str, str]]) -> int:
    """Save a newer version of cohort ``name`` with ``members`` (client, study label)."""
    from sqlalchemy import func

    with services.write_sessions.begin() as s:
        version = s.scalar(select(func.max(Cohort.version)).where(Cohort.name == name)) or 0
        c = Cohort(name=name, version=version + 1, definition={}, definition_sha256="d" * 64,
                   members_sha256=f"{version + 1}" * 64, client_count=len({m for m, _ in members}),
                   study_count=len(members))
        s.add(c)
        s.flush()
        for client_id, study in members:
            s.add(CohortMember(cohort_pk=c.pk, client_id=client_id,
                               study_instance_uid=uid(study)))
        return c.pk
