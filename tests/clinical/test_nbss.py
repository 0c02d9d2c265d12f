"""Parsing and de-identifying one NBSS record (no database)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from omipacs.clinical.classify import EpisodeStatus, episode_status
from omipacs.clinical.codes import EventKind, SideOpinion
from omipacs.clinical.nbss import parse_record, pseudonym_for, reader_pseudonym
from omipacs.clinical.sanitize import Sanitizer, looks_like_free_text, parse_date
from omipacs.deid.engine import Deidentifier
from omipacs.deid.keys import DeidKeys
from omipacs.deid.pseudonyms import date_offset_days
from tests.clinical.conftest import KEYS, episode_id
from tests.clinical.records import NHS_NUMBER, full_record, minimal_record


def header(patient_id: str, issuer: str, nhs: str | None) -> Dataset:
    ds = Dataset()
    ds.PatientID = patient_id
    ds.IssuerOfPatientID = issuer
    ds.StudyInstanceUID = "1.2.3"
    if nhs is not None:
        other = Dataset()
        other.PatientID = nhs
        other.IssuerOfPatientID = "NHS"
        ds.OtherPatientIDsSequence = Sequence([other])
    return ds


@pytest.mark.parametrize(
    ("nhs", "site", "issuer", "local"),
    [
        (NHS_NUMBER, "SITE_A", "PAS_SITE_A", "H1"),  # linked: site and local ID ignored
        ("999 000 0018", "SITE_B", "PAS", "H2"),  # printed with spaces
        (None, "SITE_A", "PAS_SITE_A", "H1"),  # unlinked: site, issuer and local ID
        ("9990000019", "SITE_A", "PAS", "H3"),  # invalid check digit: unlinked
    ],
)
def test_record_gets_the_pseudonym_its_images_get(nhs: str | None, site: str, issuer: str,
                                                  local: str) -> None:
    image = Deidentifier(KEYS).client_for(header(local, issuer, nhs), site=site)
    record = pseudonym_for(KEYS, nhs or "", site, issuer, local)
    assert record == image


def test_no_identifier_gives_no_pseudonym() -> None:
    assert pseudonym_for(KEYS, "", "SITE_A", "PAS", "") is None
    assert pseudonym_for(KEYS, "123", "", "", "H1") is None


@pytest.mark.parametrize(
    "value",
    ["2015-05-11", "20150511", 20150511, "11/05/2015", "2015/05/11", "2015-05-11T10:22:00",
     "2015-05-11 10:22", "11.05.2015", date(2015, 5, 11)],
)
def test_date_formats(value: Any) -> None:
    assert parse_date(value) == date(2015, 5, 11)


@pytest.mark.parametrize("value", ["31/02/2016", "yesterday", "2015", "", None, 3.5, True,
                                   "2015-05-11junk"])
def test_not_dates(value: Any) -> None:
    assert parse_date(value) is None


def test_every_date_moves_by_the_client_offset() -> None:
    parsed = parse_record(minimal_record(day="2016-01-11"), KEYS)
    offset = date_offset_days(KEYS, parsed.client_id)
    assert -4014 <= offset <= -365
    episode = parsed.episodes[0]
    assert episode.opened_date == date(2016, 1, 11) + timedelta(days=offset)
    assert episode.events[0].dates == (date(2016, 1, 11) + timedelta(days=offset),)


def test_other_keys_give_other_pseudonyms_and_offsets() -> None:
    other = DeidKeys.from_secret(bytes(range(2, 34)))
    one, two = parse_record(minimal_record(), KEYS), parse_record(minimal_record(), other)
    assert one.client_id != two.client_id
    assert one.episodes[0].opened_date != two.episodes[0].opened_date


def test_parsed_events_feed_the_classifier() -> None:
    parsed = parse_record(full_record(), KEYS)
    episodes = {e.nbss_id: e for e in parsed.episodes}
    facts = episodes[episode_id("2")].facts()
    wide = next(e for e in facts.events if e.kind is EventKind.BIOPSY_WIDE)
    assert (wide.left_opinion, wide.right_opinion) == (SideOpinion.OM, None)
    assert episode_status(facts) is EpisodeStatus.M
    assert episode_status(episodes[episode_id("3")].facts()) is EpisodeStatus.CI


def test_content_hash_is_stable_and_tracks_content() -> None:
    first = parse_record(full_record(), KEYS).sha256()
    assert parse_record(full_record(), KEYS).sha256() == first
    changed = full_record()
    changed["2"]["SURGERY"]["L"]["1"]["WholeSizeOfTumour"] = 19
    assert parse_record(changed, KEYS).sha256() != first
    noted = full_record()
    noted["CaseNotes"] = "another note"  # dropped, so the stored content is the same
    assert parse_record(noted, KEYS).sha256() == first


def test_readers_become_keyed_pseudonyms() -> None:
    assert reader_pseudonym(KEYS, "R101") == reader_pseudonym(KEYS, " R101 ")
    assert reader_pseudonym(KEYS, "R101") != reader_pseudonym(KEYS, "R102")
    other = DeidKeys.from_secret(bytes(range(2, 34)))
    assert reader_pseudonym(KEYS, "R101") != reader_pseudonym(other, "R101")


SHIFT = timedelta(days=-1000)
ALLOWED = frozenset({"NeedleSpecimenType", "RecommendedActions", "Appearance", "Count", "Flag",
                     "Empty", "ReviewDate", "Anything", "ReviewYear", "LesionNotes", "ReportText",
                     "GPPractice", "ConsultantCode", "Telephone", "Outcome", "Code", "Reference",
                     "Nested", "Grade", "Comment", "Codes"})
"""Every key of the table below: the rules that follow the allow-list are tested here."""


@pytest.mark.parametrize(
    ("key", "value", "kept", "cleaned"),
    [
        ("NeedleSpecimenType", "C", True, "C"),
        ("RecommendedActions", ["RR", "FV"], True, ["RR", "FV"]),
        ("Appearance", "SPIC", True, "SPIC"),
        ("Count", 3, True, 3),
        ("Flag", True, True, True),
        ("Empty", None, True, None),
        ("ReviewDate", "2015-05-11", True, (date(2015, 5, 11) + SHIFT).isoformat()),
        ("Anything", "20150511", True, (date(2015, 5, 11) + SHIFT).isoformat()),
        ("ReviewDate", "not a date", False, None),
        ("ReviewYear", 2015, False, None),
        ("LesionNotes", "C", False, None),
        ("ReportText", "ok", False, None),
        ("GPPractice", "G1", False, None),
        ("ConsultantCode", "C123", False, None),
        ("Telephone", "x", False, None),
        ("Outcome", "seen in clinic and reassured today", False, None),
        ("Code", "a" * 40, False, None),
        ("Reference", "9990000018", False, None),
        ("Nested", {"Grade": "G2", "Comment": "x"}, True, {"Grade": "G2"}),
        ("Codes", ["A1", "long free text value with many words"], True, ["A1"]),
    ],
)
def test_unmodelled_fields_are_sanitised(key: str, value: Any, kept: bool,
                                         cleaned: Any) -> None:
    sanitizer = Sanitizer(lambda d: d + SHIFT, ALLOWED)
    assert sanitizer.value(key, value) == (kept, cleaned)


def test_fields_off_the_allow_list_are_dropped_whatever_they_hold() -> None:
    sanitizer = Sanitizer(lambda d: d + SHIFT, frozenset({"NeedleSpecimenType"}))
    assert sanitizer.value("NeedleSpecimenType", "C") == (True, "C")
    assert sanitizer.value("Radiographer", "B") == (False, None)  # a name, unexpected key
    assert sanitizer.mapping({"NeedleSpecimenType": "C", "Place": "Guildford",
                              "Surgery": {"NeedleSpecimenType": "C"}}) == {
        "NeedleSpecimenType": "C"}
    assert sanitizer.dropped == 3


def test_episode_ids_are_pseudonymised() -> None:
    record = minimal_record()
    record["9990000018-2016"] = record.pop("1")  # an episode ID that embeds the NHS number
    parsed = parse_record(record, KEYS)
    (episode,) = parsed.episodes
    assert episode.nbss_id == episode_id("9990000018-2016")
    assert episode.nbss_id.startswith("EP") and "9990000018" not in episode.nbss_id
    assert "9990000018" not in json.dumps(parsed.raw) + repr(parsed.episodes)


@pytest.mark.parametrize(
    ("value", "free"),
    [("C", False), ("WLE", False), ("two words", False), ("one two three four", True),
     ("x" * 33, True), ("ref 1234567", True)],
)
def test_free_text_heuristic(value: str, free: bool) -> None:
    assert looks_like_free_text(value) is free
