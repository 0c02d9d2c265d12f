"""Mark records are read into typed marks, or refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from omipacs.annotations.codes import BenignClass, Conspicuity, FindingKind, MassClass
from omipacs.annotations.records import (
    load_mark_file,
    parse_mark_record,
    records_from_imagedb,
)
from omipacs.errors import InvalidRecord
from tests.annotations.builders import READER

STUDY, SERIES, SOP = "2.25.1", "2.25.2", "2.25.3"
BASE: dict[str, Any] = {
    "StudyInstanceUID": STUDY, "SeriesInstanceUID": SERIES, "SOPInstanceUID": SOP,
    "X1": "756", "Y1": "1733", "X2": "1183", "Y2": "1487",
}
OMIDB_FIXTURE: dict[str, Any] = {
    # the omidb test fixture of _parse_mark, with the image added
    **BASE,
    "ArchitecturalDistortion": "ArchitecturalDistortion",
    "BenignClassification": "coarse_or_popcorn-like",
    "Conspicuity": "Subtle",
    "Dystrophic": "Dystrophic",
    "FatNecrosis": "FatNecrosis",
    "FocalAsymmetry": "FocalAsymmetry",
    "Height": "240",
    "LesionID": 6711,
    "LinkedNBSSLesionNumber": "1,2",
    "MarkID": 10241,
    "Mass": 1,
    "MassClassification": "spiculated",
    "MilkOfCalcium": "MilkOfCalcium",
    "OtherBenignCluster": "OtherBenignCluster",
    "PlasmaCellMastitis": "PlasmaCellMastitis",
    "Skin": "Skin",
    "SuspiciousCalcifications": "SuspiciousCalcifications",
    "SutureCalcification": "SutureCalcification",
    "Vascular": "Vascular",
    "Width": "327",
    "WithCalcification": "WithCalcification",
}


def test_the_omidb_fixture_reads_like_omidb() -> None:
    mark = parse_mark_record(OMIDB_FIXTURE)
    assert mark.box == (756.0, 1487.0, 1183.0, 1733.0)  # normalised to min/max
    assert mark.mark_id == "10241"
    assert mark.conspicuity is Conspicuity.SUBTLE
    assert mark.mass_class is MassClass.SPICULATED
    assert mark.benign_class is BenignClass.COARSE
    assert mark.lesion_numbers == ("1", "2")
    assert len(mark.features) == 13
    assert mark.finding_kind is FindingKind.MASS_WITH_CALCIFICATION
    assert (mark.study_uid, mark.series_uid, mark.sop_uid) == (STUDY, SERIES, SOP)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"SOPInstanceUID": "1.2.03"}, "SOPInstanceUID is missing or not a UID"),
        ({"StudyInstanceUID": None}, "StudyInstanceUID is missing"),
        ({"X1": "abc"}, "X1 is not a number"),
        ({"Y2": None}, "Y2 is missing"),
        ({"X2": True}, "X2 is missing or not a number"),
        ({"X1": -3}, "X1 is negative"),
        ({"Y1": "nan"}, "Y1 is not a finite number"),
        ({"X2": "756"}, "the box has no area"),
        ({"Conspicuity": "Loud"}, "Conspicuity is not one of"),
        ({"MassClassification": 3}, "MassClassification is not text"),
        ({"BenignClassification": "square"}, "BenignClassification is not one of"),
        ({"Mass": [1]}, "Mass is not a flag"),
        ({"LinkedNBSSLesionNumber": "1,x"}, "not a lesion number"),
        ({"LinkedNBSSLesionNumber": {"1": 1}}, "not a list of lesion numbers"),
        ({"FrameNumber": 0}, "FrameNumber is not a positive whole number"),
        ({"FrameNumber": "two"}, "FrameNumber is not a positive whole number"),
        ({"MarkID": "x" * 33}, "MarkID must be 1 to 32"),
        ({"Reader": "R07"}, "Reader is not a reader pseudonym"),
        ({"Conspicuty": "Subtle"}, "unknown field Conspicuty"),
    ],
)
def test_bad_values_are_refused_with_a_reason(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRecord) as err:
        parse_mark_record({**BASE, **fields})
    assert reason in err.value.reason
    assert err.value.http_status == 400


def test_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidRecord, match="not a JSON object"):
        parse_mark_record(["X1", 1])


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Mass", True), (1, True), (True, True), ("Y", True), ("", False), (None, False),
     (0, False), ("0", False), ("N", False), ("false", False), (False, False)],
)
def test_flags_follow_omidb(value: Any, expected: bool) -> None:
    mark = parse_mark_record({**BASE, "Mass": value})
    assert ("mass" in mark.features) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1,2", ("1", "2")), ("2, 01 ,2", ("1", "2")), (3, ("3",)), (["4", 2], ("2", "4")),
     ("", ()), (None, ())],
)
def test_lesion_numbers_are_plain_sorted_integers(value: Any, expected: tuple[str, ...]) -> None:
    assert parse_mark_record({**BASE, "LinkedNBSSLesionNumber": value}).lesion_numbers == expected


@pytest.mark.parametrize(
    ("given", "stored"),
    [("very_subtle", Conspicuity.VERY_SUBTLE), ("OBVIOUS", Conspicuity.OBVIOUS),
     ("Not Recalled", Conspicuity.NOT_RECALLED), ("", None)],
)
def test_enumerations_are_case_insensitive(given: str, stored: Conspicuity | None) -> None:
    assert parse_mark_record({**BASE, "Conspicuity": given}).conspicuity is stored


def test_coordinates_are_rounded_to_what_sr_can_hold() -> None:
    mark = parse_mark_record({**BASE, "X1": 10.1, "X2": "20.25"})
    assert mark.col_min == pytest.approx(10.1) and mark.col_min != 10.1  # float32
    assert mark.col_max == 20.25


def test_reader_codes_are_pseudonymised_when_a_map_is_given() -> None:
    assert parse_mark_record({**BASE, "Reader": READER}).reader == READER
    mapped = parse_mark_record({**BASE, "Reader": "R07"}, reader_map=lambda c: f"RDR<{c}>")
    assert mapped.reader == "RDR<R07>"
    remapped = parse_mark_record(BASE, uid_map=lambda uid: uid + ".9")
    assert remapped.sop_uid == SOP + ".9" and remapped.study_uid == STUDY + ".9"


def test_imagedb_documents_flatten_to_records() -> None:
    document = {
        "Site": "jarv",
        "STUDIES": {
            STUDY: {
                "StudyDate": "20170102", "EpisodeID": "3",
                SERIES: {SOP: {"m1": {"X1": 1, "Y1": 2, "X2": 3, "Y2": 4, "MarkID": 1},
                               "m2": {"X1": 5, "Y1": 6, "X2": 7, "Y2": 8, "MarkID": 2}}},
            }
        },
    }
    records = list(records_from_imagedb(document, reader="R07"))
    assert [r["MarkID"] for r in records] == [1, 2]
    assert all(r["SOPInstanceUID"] == SOP and r["Reader"] == "R07" for r in records)
    assert parse_mark_record(records[0], reader_map=str.lower).box == (1, 2, 3, 4)


@pytest.mark.parametrize(
    ("name", "content", "count", "source_uids"),
    [
        ("list.json", json.dumps([BASE, BASE]), 2, False),
        ("one.json", json.dumps(BASE), 1, False),
        ("wrapped.json", json.dumps({"records": [BASE], "source_uids": True}), 1, True),
        ("IMAGEDB_demd1.json", json.dumps(
            {"STUDIES": {STUDY: {SERIES: {SOP: {"1": {"X1": 1, "Y1": 1, "X2": 2, "Y2": 2}}}}}}),
         1, True),
        ("lines.jsonl", json.dumps(BASE) + "\n\n" + json.dumps(BASE) + "\n", 2, False),
    ],
)
def test_mark_files_in_every_layout(tmp_path: Path, name: str, content: str, count: int,
                                    source_uids: bool) -> None:
    path = tmp_path / name
    path.write_text(content)
    loaded = load_mark_file(path)
    assert len(loaded.records) == count and loaded.source_uids is source_uids
    assert all(parse_mark_record(r).sop_uid == SOP for r in loaded.records)


@pytest.mark.parametrize("content", ["{not json", "42"])
def test_files_without_records_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InvalidRecord):
        load_mark_file(path)
