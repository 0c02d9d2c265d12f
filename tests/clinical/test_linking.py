"""Linking studies to episodes: the rules, and either order of arrival."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from omipacs.clinical.imaging import sync_imaging
from omipacs.clinical.importer import import_records
from omipacs.clinical.linking import EpisodeWindow, Link, choose_episode
from omipacs.clinical.models import Episode, StudyLink
from omipacs.deid.pseudonyms import episode_pseudonym
from omipacs.demo.clinical import clinical_records_for
from omipacs.demo.generate import DemoManifest, plan_demo
from omipacs.index.models import Study
from omipacs.services import Services
from tests.clinical import synth
from tests.clinical.conftest import KEYS

D = date(2020, 3, 2)


def window(pk: int, *, uids: tuple[str, ...] = (), events: dict[int, tuple[str, ...]] | None = None,
           start: int | None = None, end: int | None = None) -> EpisodeWindow:
    return EpisodeWindow(
        pk=pk,
        study_uids=frozenset(uids),
        event_dates={D + timedelta(days=k): frozenset(v) for k, v in (events or {}).items()},
        start=None if start is None else D + timedelta(days=start),
        end=None if end is None else D + timedelta(days=end),
    )


CASES = [
    ("listed by the source", "1.1", 0,
     [window(1, events={0: ("screening",)}, start=0, end=90), window(2, uids=("1.1",))],
     Link(2, "episode_id", ())),
    ("listed, with events on its date", "1.1", 21,
     [window(1, uids=("1.1",), events={0: ("screening",), 21: ("assessment",)}, start=0,
             end=111)],
     Link(1, "episode_id", ("assessment",))),
    ("an event on the study date", "9.9", 21,
     [window(1, events={0: ("screening",)}, start=0, end=90),
      window(2, events={21: ("assessment", "clinical")}, start=21, end=120)],
     Link(2, "event_date", ("assessment", "clinical"))),
    ("inside one window", "9.9", 30, [window(1, events={0: ("screening",)}, start=0, end=90)],
     Link(1, "window", ())),
    ("inside two windows: the later one", "9.9", 30,
     [window(1, start=0, end=90), window(2, start=20, end=60)], Link(2, "window", ())),
    ("outside every window", "9.9", 200, [window(1, start=0, end=90)], Link(None, "", ())),
    ("no date and not listed", "9.9", None, [window(1, start=0, end=90)], Link(None, "", ())),
    ("no episodes", "9.9", 0, [], Link(None, "", ())),
]


@pytest.mark.parametrize(("name", "uid", "day", "windows", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_choose_episode(name: str, uid: str, day: int | None, windows: list[EpisodeWindow],
                        expected: Link) -> None:
    study_date = None if day is None else D + timedelta(days=day)
    assert choose_episode(uid, study_date, windows) == expected


def _links(s: Session) -> dict[str, tuple[str | None, str, tuple[str, ...]]]:
    rows = s.execute(
        select(Study.study_instance_uid, Episode.nbss_episode_id, StudyLink.method,
               StudyLink.event_kinds)
        .join(StudyLink, StudyLink.study_pk == Study.pk)
        .outerjoin(Episode, Episode.pk == StudyLink.episode_pk)
    ).all()
    return {uid: (ep, method, tuple(kinds or ())) for uid, ep, method, kinds in rows}


def _manifest(tmp_path: Path) -> DemoManifest:
    return plan_demo(tmp_path, clients=6, seed=21, dbt_fraction=0.5)


def _without_study_lists(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for record in records:
        for value in record.values():
            if isinstance(value, dict):
                value.pop("StudyList", None)
    return records


def _expected(manifest: DemoManifest, method: str) -> dict[str, tuple[str | None, str,
                                                                      tuple[str, ...]]]:
    return {
        synth.study_uid(KEYS, st): (episode_pseudonym(KEYS, synth.client_id(KEYS, c),
                                                      str(st.episode)), method,
                                    ("screening",) if st.kind == "screening" else ("assessment",))
        for c in manifest.clients for st in c.studies
    }


@pytest.mark.parametrize("images_first", [True, False])
def test_links_do_not_depend_on_arrival_order(any_db_services: Services, tmp_path: Path,
                                              images_first: bool) -> None:
    manifest = _manifest(tmp_path)
    records = clinical_records_for(manifest, 21)
    with any_db_services.write_sessions() as s:
        if images_first:
            synth.index_manifest(s, manifest, KEYS)
            sync_imaging(s)
            s.commit()
            assert import_records(s, records, KEYS).ok
        else:
            assert import_records(s, records, KEYS).ok
            synth.index_manifest(s, manifest, KEYS)
            s.commit()
            assert _links(s) == {}  # nothing knows of the images yet
            sync_imaging(s)
            s.commit()
        assert _links(s) == _expected(manifest, "episode_id")


def test_without_study_lists_studies_link_by_event_date(any_db_services: Services,
                                                        tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    with any_db_services.write_sessions() as s:
        synth.index_manifest(s, manifest, KEYS)
        sync_imaging(s)
        assert import_records(s, _without_study_lists(clinical_records_for(manifest, 21)),
                              KEYS).ok
        assert _links(s) == _expected(manifest, "event_date")


def test_two_studies_on_one_date_lose_their_event_links(deid_services: Services,
                                                        tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    client = manifest.clients[0]
    with deid_services.write_sessions() as s:
        synth.index_manifest(s, manifest, KEYS, clients=[client])
        first = client.studies[0]
        twin = synth.study_uid(KEYS, first)
        # a second study of the same visit (another UID, same date and patient)
        original = s.scalars(select(Study).where(Study.study_instance_uid == twin)).one()
        s.add(Study(study_instance_uid="2.25.1", patient_pk=original.patient_pk,
                    study_date=original.study_date))
        sync_imaging(s)
        record = _without_study_lists(clinical_records_for(manifest, 21))[0]
        assert import_records(s, [record], KEYS).ok
        links = _links(s)
        first_episode = episode_pseudonym(KEYS, synth.client_id(KEYS, client), "1")
        assert links[twin] == (first_episode, "event_date", ())
        assert links["2.25.1"] == (first_episode, "event_date", ())
