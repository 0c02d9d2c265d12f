"""QIDO-RS parameter parsing: every bad parameter is a 400 with a reason, never a 500."""

from __future__ import annotations

from datetime import date

import pytest

from omipacs.errors import InvalidQuery
from omipacs.query.attributes import BY_KEYWORD, Level
from omipacs.query.params import (
    MAX_OFFSET,
    Between,
    Equals,
    Wildcard,
    parse_qido,
)

Params = list[tuple[str, str]]
UID1 = "1.2.826.0.1.3680043.10.1"


def _keywords(params: Params, level: Level = "study", **kw: object) -> set[str]:
    query = parse_qido(params, level, **kw)  # type: ignore[arg-type]
    return {a.keyword for a in query.fields}


BAD: list[tuple[str, Params, Level]] = [
    ("unknown keyword", [("Foo", "x")], "study"),
    ("invalid name", [("../etc", "x")], "study"),
    ("name too long", [("A" * 300, "x")], "study"),
    ("vendor parameter", [("orderby", "StudyDate")], "study"),
    ("invalid month", [("StudyDate", "20231301")], "study"),
    ("iso date", [("StudyDate", "2023-01-01")], "study"),
    ("reversed range", [("StudyDate", "20231231-20230101")], "study"),
    ("empty range", [("StudyDate", "-")], "study"),
    ("two dashes", [("StudyDate", "20230101-20230201-20230301")], "study"),
    ("wildcard date", [("StudyDate", "2023*")], "study"),
    ("bad hour", [("StudyTime", "2500")], "study"),
    ("colon time", [("StudyTime", "12:00")], "study"),
    ("reversed time", [("StudyTime", "1500-0900")], "study"),
    ("negative limit", [("limit", "-1")], "study"),
    ("text limit", [("limit", "abc")], "study"),
    ("empty limit", [("limit", "")], "study"),
    ("fraction limit", [("limit", "1.5")], "study"),
    ("negative offset", [("offset", "-5")], "study"),
    ("text offset", [("offset", "ten")], "study"),
    ("limit twice", [("limit", "1"), ("limit", "2")], "study"),
    ("fuzzy not boolean", [("fuzzymatching", "maybe")], "study"),
    ("includefield path", [("includefield", "../")], "study"),
    ("includefield unknown", [("includefield", "Foo")], "study"),
    ("value over 1 KB", [("PatientID", "x" * 1025)], "study"),
    ("includefield over 1 KB", [("includefield", "PatientID," * 120)], "study"),
    ("parameter repeated 1000 times", [("PatientID", "a")] * 1000, "study"),
    ("key repeated", [("PatientID", "a"), ("PatientID", "b")], "study"),
    ("key by keyword and tag", [("PatientID", "a"), ("00100020", "a")], "study"),
    ("nul byte", [("PatientID", "a\x00b")], "study"),
    ("newline", [("AccessionNumber", "a\nb")], "study"),
    ("traversal uid", [("StudyInstanceUID", "../../x")], "study"),
    ("wildcard uid", [("StudyInstanceUID", "1.2.*")], "study"),
    ("uid in list invalid", [("StudyInstanceUID", f"{UID1}\\1.02")], "study"),
    ("uid too long", [("StudyInstanceUID", "1." + "2" * 70)], "study"),
    ("too many uids", [("StudyInstanceUID", "\\".join(["1.2.3"] * 1001))], "study"),
    ("lower-level unique key", [("SeriesInstanceUID", UID1)], "study"),
    ("instance uid on series", [("SOPInstanceUID", UID1)], "series"),
    ("series count at study", [("NumberOfSeriesRelatedInstances", "2")], "study"),
    ("text integer", [("NumberOfFrames", "abc")], "instance"),
    ("fraction integer", [("NumberOfFrames", "1.5")], "instance"),
    ("huge integer", [("NumberOfFrames", "9" * 40)], "instance"),
    ("exponent decimal", [("BodyPartThickness", "1e5")], "instance"),
    ("reversed numbers", [("BodyPartThickness", "60-40")], "instance"),
    ("return-only key", [("ImagerPixelSpacing", "0.07")], "instance"),
    ("constant key", [("InstanceAvailability", "ONLINE")], "instance"),
    ("sequence itself", [("ViewCodeSequence", "399162004")], "instance"),
    ("unknown item", [("ViewCodeSequence.Foo", "1")], "instance"),
    ("item of plain attribute", [("PatientID.CodeValue", "1")], "instance"),
    ("path too deep", [("A.B.C.D.E", "1")], "instance"),
]


@pytest.mark.parametrize(("case", "params", "level"), BAD, ids=[b[0] for b in BAD])
def test_bad_parameters_are_invalid_queries(case: str, params: Params, level: Level) -> None:
    with pytest.raises(InvalidQuery) as info:
        parse_qido(params, level)
    assert info.value.http_status == 400
    assert info.value.reason


@pytest.mark.parametrize(
    "value", ["Mary O'Brien", "x" * 1025, "\x00secret"], ids=["name", "long", "nul"]
)
def test_reasons_never_echo_values(value: str) -> None:
    with pytest.raises(InvalidQuery) as info:
        parse_qido([("StudyDate", value)], "study")
    assert value not in info.value.reason


@pytest.mark.parametrize(
    ("kw", "level"),
    [
        ({"study_uid": "../x"}, "series"),
        ({"study_uid": UID1, "series_uid": "1.2.3'"}, "instance"),
    ],
)
def test_invalid_url_uids(kw: dict[str, str], level: Level) -> None:
    with pytest.raises(InvalidQuery):
        parse_qido([], level, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("params", "limit", "offset", "clamped"),
    [
        ([], 100, 0, False),
        ([("limit", "10"), ("offset", "20")], 10, 20, False),
        ([("limit", "1000")], 1000, 0, False),
        ([("limit", "1000000000")], 1000, 0, True),
        ([("limit", "9" * 100)], 1000, 0, True),
        ([("limit", "0")], 1000, 0, False),
        ([("offset", "9" * 40)], 100, MAX_OFFSET, False),
    ],
)
def test_limit_and_offset(params: Params, limit: int, offset: int, clamped: bool) -> None:
    query = parse_qido(params, "study")
    assert (query.limit, query.offset, query.limit_clamped) == (limit, offset, clamped)


def test_default_limit_is_capped_by_maximum() -> None:
    assert parse_qido([], "study", default_limit=5, max_limit=5).limit == 5
    with pytest.raises(ValueError):
        parse_qido([], "study", default_limit=50, max_limit=5)


@pytest.mark.parametrize(("value", "fuzzy"), [("true", True), ("false", False), ("TRUE", True)])
def test_fuzzymatching(value: str, fuzzy: bool) -> None:
    assert parse_qido([("fuzzymatching", value)], "study").fuzzymatching is fuzzy


def test_cache_buster_and_negotiation_parameters_are_ignored() -> None:
    query = parse_qido([("_", "1699999999"), ("accept", "application/dicom+json")], "study")
    assert query.filters == ()


@pytest.mark.parametrize(
    ("params", "term"),
    [
        ([("PatientID", "A*")], Wildcard("A*")),
        ([("PatientID", "A?C")], Wildcard("A?C")),
        ([("PatientID", "A%_")], Equals("A%_")),
        ([("00100020", "A")], Equals("A")),
        ([("StudyDate", "20200101")], Equals(date(2020, 1, 1))),
        ([("StudyDate", "20200101-20201231")], Between(date(2020, 1, 1), date(2020, 12, 31))),
        ([("StudyDate", "-20201231")], Between(None, date(2020, 12, 31))),
        ([("StudyDate", "20200101-")], Between(date(2020, 1, 1), None)),
        ([("StudyTime", "0830")], Between("083000", "083059.999999")),
        ([("StudyTime", "08-10")], Between("080000", "105959.999999")),
        ([("StudyTime", "141500.000")], Between("141500", "141500.000999")),
        ([("StudyTime", "141500.25-")], Between("141500.25", None)),
        ([("NumberOfStudyRelatedInstances", "4")], Equals(4)),
        ([("BodyPartThickness", "40.5-")], Between(40.5, None)),
    ],
)
def test_terms(params: Params, term: object) -> None:
    (f,) = parse_qido(params, "instance").filters
    assert f.terms == (term,)


@pytest.mark.parametrize(
    ("value", "uids"),
    [
        (f"{UID1}", (UID1,)),
        (f"{UID1}\\1.2.3", (UID1, "1.2.3")),
        (f"{UID1},1.2.3", (UID1, "1.2.3")),
        (f"{UID1}\\{UID1}", (UID1,)),
    ],
)
def test_uid_lists(value: str, uids: tuple[str, ...]) -> None:
    (f,) = parse_qido([("StudyInstanceUID", value)], "study").filters
    assert f.uids == uids and f.terms == ()


def test_uid_list_of_a_thousand_is_accepted() -> None:
    uids = [f"1.2.3.{i}" for i in range(1000)]
    (f,) = parse_qido([("SOPInstanceUID", "\\".join(uids))], "instance").filters
    assert len(f.uids) == 1000


@pytest.mark.parametrize("value", ["", "*", "**"])
def test_universal_matching(value: str) -> None:
    (f,) = parse_qido([("PatientName", value)], "study").filters
    assert f.is_universal


def test_multiple_values_match_any() -> None:
    (f,) = parse_qido([("ModalitiesInStudy", "MG\\SR,OT")], "study").filters
    assert f.terms == (Equals("MG"), Equals("SR"), Equals("OT"))


@pytest.mark.parametrize(
    "name",
    ["ViewCodeSequence.CodeValue", "00540220.00080100", "ViewCode", "00540220.CodeValue"],
)
def test_sequence_paths(name: str) -> None:
    (f,) = parse_qido([(name, "399162004")], "instance").filters
    assert [a.keyword for a in f.path] == ["ViewCodeSequence", "CodeValue"]
    assert f.attribute.column is not None and f.attribute.column.key == "view_code"


def test_nested_sequence_path() -> None:
    (f,) = parse_qido(
        [("ViewCodeSequence.ViewModifierCodeSequence.CodeValue", "399055006")], "instance"
    ).filters
    assert f.attribute.column.key == "view_modifier_codes"


STUDY_DEFAULTS = {
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDescription",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
}
SERIES_DEFAULTS = {
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
    "SeriesInstanceUID",
    "NumberOfSeriesRelatedInstances",
}
INSTANCE_DEFAULTS = {
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceAvailability",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
    "InstanceNumber",
}


@pytest.mark.parametrize(
    ("level", "kw", "expected"),
    [
        ("study", {}, STUDY_DEFAULTS),
        ("series", {"study_uid": UID1}, SERIES_DEFAULTS | {"StudyInstanceUID"}),
        ("series", {}, SERIES_DEFAULTS | STUDY_DEFAULTS),
        (
            "instance",
            {"study_uid": UID1, "series_uid": "1.2.3"},
            INSTANCE_DEFAULTS | {"StudyInstanceUID", "SeriesInstanceUID"},
        ),
        (
            "instance",
            {"study_uid": UID1},
            INSTANCE_DEFAULTS | SERIES_DEFAULTS | {"StudyInstanceUID"},
        ),
        ("instance", {}, INSTANCE_DEFAULTS | SERIES_DEFAULTS | STUDY_DEFAULTS),
    ],
)
def test_default_fields(level: Level, kw: dict[str, str], expected: set[str]) -> None:
    assert _keywords([], level, **kw) == expected


@pytest.mark.parametrize(
    ("params", "added"),
    [
        ([("includefield", "PatientAge")], {"PatientAge"}),
        ([("includefield", "00101010")], {"PatientAge"}),
        ([("includefield", "00081030,00080060,00080090,00100030")], {"Modality"}),
        (
            [("includefield", "PatientAge"), ("includefield", "IssuerOfPatientID")],
            {"PatientAge", "IssuerOfPatientID"},
        ),
        ([("includefield", "PatientAge, SOPClassesInStudy")], {"PatientAge", "SOPClassesInStudy"}),
        ([("includefield", "")], set()),
        ([("PatientAge", "")], {"PatientAge"}),
        ([("ImageLaterality", "L")], {"ImageLaterality"}),
        ([("includefield", "ViewCodeSequence")], set()),
    ],
)
def test_includefield_and_matching_keys_are_returned(params: Params, added: set[str]) -> None:
    assert _keywords(params) == STUDY_DEFAULTS | added


def test_includefield_all() -> None:
    study = _keywords([("includefield", "all")])
    assert {"PatientAge", "IssuerOfPatientID", "SOPClassesInStudy", "InstanceAvailability"} <= study
    assert not study & {"Modality", "SeriesInstanceUID", "SOPInstanceUID"}
    instance = _keywords([("includefield", "all")], "instance")
    assert {"ViewCodeSequence", "ImageLaterality", "FrameLaterality", "Manufacturer"} <= instance


def test_includefield_of_unindexed_dicom_attributes_is_ignored_and_reported() -> None:
    query = parse_qido(
        [("includefield", "PatientWeight,00091001"), ("includefield", "SOPInstanceUID")], "study"
    )
    assert query.ignored_fields == ("PatientWeight", "00091001", "SOPInstanceUID")
    assert {a.keyword for a in query.fields} == STUDY_DEFAULTS


def test_fields_are_in_tag_order() -> None:
    tags = [a.tag for a in parse_qido([("includefield", "all")], "instance").fields]
    assert tags == sorted(tags) and len(tags) == len(set(tags))


def test_lower_level_attributes_at_study_level() -> None:
    (f,) = parse_qido([("ImageLaterality", "L")], "study").filters
    assert f.attribute is BY_KEYWORD["ImageLaterality"]


def test_attributes_not_indexed_are_ignored_and_reported() -> None:
    query = parse_qido([("PatientWeight", "70"), ("00091001", "x"), ("PatientID", "P1")], "study")
    assert query.ignored_keys == ("PatientWeight", "00091001")
    assert [f.attribute.keyword for f in query.filters] == ["PatientID"]
