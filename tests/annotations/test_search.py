"""Mark searches and the "has marks" facts, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select

from omipacs.annotations.importer import import_marks
from omipacs.annotations.models import Mark
from omipacs.annotations.search import (
    client_has_marks,
    clients_with_marks,
    is_marked,
    marks_for_image,
    marks_for_study,
    refresh_marked,
    search_marks,
)
from omipacs.clinical.models import Client
from omipacs.clinical.tally import change_client, count_clients, ensure_client, nonzero, read_tally
from omipacs.demo import factory
from omipacs.errors import BadRequest
from omipacs.index.models import Patient, Series, Study
from omipacs.services import Services
from tests.annotations.builders import StoredImage, patient, record, store_image, with_indexer


def client_of(services: Services, image: StoredImage) -> str:
    with services.sessions() as s:
        return str(s.scalar(
            select(Patient.patient_id).join(Study).join(Series)
            .where(Series.series_instance_uid == image.series_uid)
        ))


@pytest.fixture
def marked(any_db_services: Services) -> tuple[Services, dict[str, Any]]:
    """Two clients: A (malignant) with a mass and calcifications, B (no record) with a
    distortion and, superseded, an old mass."""
    services = with_indexer(any_db_services)
    a_cc = store_image(services, seed=71, who=patient(71), study_uid=factory.new_uid())
    a_mlo = store_image(services, seed=72, who=patient(71), study_uid=a_cc.study_uid,
                        view="MLO")
    b = store_image(services, seed=73, who=patient(73), laterality="R")
    report = import_marks(services, [
        record(a_cc, MarkID=1, Conspicuity="Obvious"),
        record(a_mlo, MarkID=2, Mass=None, MassClassification=None,
               SuspiciousCalcifications=1, Conspicuity="Subtle"),
        record(b, MarkID=3, Mass=None, MassClassification=None, Conspicuity="Very_subtle",
               ArchitecturalDistortion=1),
    ])
    assert report.ok
    import_marks(services, [record(b, MarkID=3, Mass=None, MassClassification=None,
                                   Conspicuity="Very_subtle", ArchitecturalDistortion=1,
                                   X2=21)])
    ids = {"A": client_of(services, a_cc), "B": client_of(services, b)}
    with services.write_sessions.begin() as s:
        change_client(s, ensure_client(s, ids["A"]), outcome="M")
        # B has a client row (made when her first marks arrived) with outcome U
    return services, {"ids": ids, "a_cc": a_cc, "a_mlo": a_mlo, "b": b}


SEARCHES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, ["1", "2", "3"]),
    ({"client": "A"}, ["1", "2"]),
    ({"study_uid": "b"}, ["3"]),
    ({"sop_uid": "a_mlo"}, ["2"]),
    ({"lesion_type": "mass"}, ["1"]),
    ({"lesion_type": "MA"}, ["1"]),
    ({"lesion_type": "CA"}, ["2"]),
    ({"lesion_type": ["DS", "mass"]}, ["1", "3"]),
    ({"lesion_type": "calcification_cluster,architectural-distortion"}, ["2", "3"]),
    ({"conspicuity": "subtle"}, ["2"]),
    ({"conspicuity": "Obvious,VERY_SUBTLE"}, ["1", "3"]),
    ({"outcome": "M"}, ["1", "2"]),
    ({"outcome": "u"}, ["3"]),
    ({"outcome": ["B", "CI"]}, []),
    ({"outcome": "M", "lesion_type": "CA", "conspicuity": "Subtle"}, ["2"]),
    ({"current": None}, ["1", "2", "3", "3"]),
]
"""Filters (client and UIDs named by fixture keys) and the marks (by MarkID) they find."""


def test_search_filters(marked: tuple[Services, dict[str, Any]]) -> None:
    services, facts = marked
    with services.sessions() as s:
        for filters, expected in SEARCHES:
            named = dict(filters)
            if "client" in named:
                named["client"] = facts["ids"][named["client"]]
            if "study_uid" in named:
                named["study_uid"] = facts[named["study_uid"]].study_uid
            if "sop_uid" in named:
                named["sop_uid"] = facts[named["sop_uid"]].sop_uid
            found = sorted(str(m.omidb_mark_id) for m in search_marks(s, **named))
            assert found == expected, filters
        everything = search_marks(s)
        pages = search_marks(s, limit=2) + search_marks(s, limit=2, offset=2)
    assert [m.id for m in pages] == [m.id for m in everything]
    assert [m.id for m in everything] == sorted(m.id for m in everything)


def test_records_carry_their_image_and_client(marked: tuple[Services, dict[str, Any]]) -> None:
    services, facts = marked
    with services.sessions() as s:
        (mark,) = search_marks(s, sop_uid=facts["b"].sop_uid)
        study = marks_for_study(s, facts["a_cc"].study_uid)
        boxes = marks_for_image(s, facts["b"].sop_uid)
    assert mark.client_id == facts["ids"]["B"] and mark.client_outcome == "U"
    assert (mark.study_uid, mark.series_uid) == (facts["b"].study_uid, facts["b"].series_uid)
    assert mark.laterality == "R" and mark.view_position == "CC"
    assert mark.box == (5.0, 6.0, 21.0, 30.0) and mark.current
    assert mark.features == ("architectural_distortion",) and mark.lesion_numbers == ("1",)
    assert mark.to_dict()["box"] == [5.0, 6.0, 21.0, 30.0]
    assert sorted(str(m.omidb_mark_id) for m in study) == ["1", "2"]
    assert boxes == [(5.0, 6.0, 21.0, 30.0)]


@pytest.mark.parametrize(
    ("filters", "message"),
    [({"lesion_type": "lump"}, "unknown lesion type"),
     ({"conspicuity": "loud"}, "unknown conspicuity"),
     ({"outcome": "X"}, "unknown outcome"),
     ({"limit": 0}, "limit must be"),
     ({"offset": -1}, "offset must not be negative")],
)
def test_bad_search_parameters(services: Services, filters: dict[str, Any],
                               message: str) -> None:
    with services.sessions() as s, pytest.raises(BadRequest, match=message):
        search_marks(s, **filters)


def test_cohort_and_statistics_facts(marked: tuple[Services, dict[str, Any]]) -> None:
    services, facts = marked
    ids = facts["ids"]
    with services.sessions() as s:
        by_mass = set(s.scalars(select(Patient.patient_id).where(
            Patient.pk.in_(clients_with_marks("mass")))))
        by_any = set(s.scalars(select(Patient.patient_id).where(
            Patient.pk.in_(clients_with_marks()))))
        distorted = set(s.scalars(select(Client.client_id).where(client_has_marks("DS"))))
        flags = {c: m for c, m in s.execute(select(Client.client_id, Client.is_marked))}
        assert is_marked(s, ids["A"]) and is_marked(s, ids["B"])
        assert not is_marked(s, "NOBODY")
    assert by_mass == {ids["A"]} and by_any == {ids["A"], ids["B"]}
    assert distorted == {ids["B"]}
    assert flags == {ids["A"]: True, ids["B"]: True}

    # B's marks go away (as if her SR were deleted): the flag follows via the tally hook
    with services.write_sessions.begin() as s:
        s.execute(delete(Mark).where(Mark.sop_instance_uid == facts["b"].sop_uid))
    with services.write_sessions.begin() as s:
        assert refresh_marked(s) == 1
        assert refresh_marked(s) == 0
    with services.sessions() as s:
        flags = {c: m for c, m in s.execute(select(Client.client_id, Client.is_marked))}
        assert not is_marked(s, ids["B"])
        assert nonzero(read_tally(s)[1].items()) == count_clients(s)
    assert flags == {ids["A"]: True, ids["B"]: False}
