"""Every matching rule of PS3.4 C.2.2.2, on SQLite and PostgreSQL, against real ingests.

Each case names the level, the parameters and the labels (see conftest) of what must
match: exactly those, no more.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from omipacs.query.attributes import Level
from omipacs.query.params import parse_qido
from omipacs.query.search import search
from tests.query.archive import BTO, MG_PROCESSING, Archive, label, uid

Params = list[tuple[str, str]]
UNIQUE = {"study": "0020000D", "series": "0020000E", "instance": "00080018"}
ALL_STUDIES = {"1", "2", "3", "4"}
MG_SERIES = {"1.1", "1.2", "1.3", "1.4", "2.1", "2.2", "3.1", "4.1"}
S2 = {"2.1.1", "2.2.1", "2.2.2", "2.3.1"}


def matches(
    archive: Archive, level: Level, params: Params, *, study: str | None = None
) -> set[str]:
    query = parse_qido(params, level, study_uid=uid(study) if study else None, max_limit=1000)
    with archive.services.sessions() as session:
        result = search(session, query)
    assert not result.truncated
    return {label(item[UNIQUE[level]]["Value"][0]) for item in result.items}


CASES: list[tuple[str, Level, Params, set[str]]] = [
    # Universal and single value matching; by keyword or by tag
    ("everything", "study", [], ALL_STUDIES),
    ("single value", "study", [("PatientID", "P001")], {"1"}),
    ("by tag", "study", [("00100020", "P001")], {"1"}),
    ("by lower-case hex tag", "study", [("0020000d", uid("4"))], {"4"}),
    ("case-sensitive LO", "study", [("PatientID", "p001")], set()),
    ("empty value is universal", "study", [("PatientID", "")], ALL_STUDIES),
    ("star alone is universal", "study", [("AccessionNumber", "*")], ALL_STUDIES),
    # Wild cards: * and ? only; % and _ are literal; SQL text is only text
    ("injection matches literally", "study", [("PatientID", "' OR 1=1--")], {"2"}),
    ("injection finds nothing else", "study", [("PatientID", "' OR 1=1")], set()),
    ("underscore literal", "study", [("PatientID", "X_1")], {"3"}),
    ("question mark wild", "study", [("PatientID", "X?1")], {"3", "4"}),
    ("star wild", "study", [("PatientID", "X*")], {"3", "4"}),
    ("percent alone literal", "study", [("PatientID", "%")], set()),
    ("percent literal", "study", [("AccessionNumber", "ACC%1")], {"1"}),
    ("percent then star", "study", [("AccessionNumber", "ACC%*")], {"1"}),
    ("prefix", "study", [("AccessionNumber", "ACC*")], {"1", "2"}),
    ("wild card case-sensitive", "study", [("AccessionNumber", "acc*")], set()),
    ("underscore in text", "study", [("StudyDescription", "Screening_2020")], {"1"}),
    ("underscore is not a wild card", "study", [("StudyDescription", "Screening_202?")], {"1"}),
    ("question for underscore", "study", [("StudyDescription", "Screening?2020")], {"1"}),
    ("percent is not a wild card", "study", [("StudyDescription", "Screening%")], set()),
    ("bracket literal", "study", [("StudyDescription", "[S]*")], set()),
    ("list of values", "study", [("PatientID", "P001\\XA1")], {"1", "4"}),
    ("list with wild card", "study", [("PatientID", "P0*\\X_1")], {"1", "3"}),
    # Person names: case-insensitive, wild cards, fuzzy
    ("name exact any case", "study", [("PatientName", "o'brien^MARY")], {"1"}),
    ("name wild card", "study", [("PatientName", "*brien*")], {"1"}),
    ("name prefix", "study", [("PatientName", "ng*")], {"3", "4"}),
    ("name exact short", "study", [("PatientName", "NG^ANN")], {"3"}),
    ("name not a prefix match", "study", [("PatientName", "Smith")], set()),
    ("fuzzy family", "study", [("PatientName", "smi"), ("fuzzymatching", "true")], {"2"}),
    ("fuzzy given", "study", [("PatientName", "jo"), ("fuzzymatching", "true")], {"2"}),
    ("fuzzy two words", "study", [("PatientName", "an ng"), ("fuzzymatching", "true")], {"3", "4"}),
    ("fuzzy mid-word no", "study", [("PatientName", "mith"), ("fuzzymatching", "true")], set()),
    ("fuzzy false is exact", "study", [("PatientName", "smi"), ("fuzzymatching", "false")], set()),
    ("referring physician", "study", [("ReferringPhysicianName", "who*")], {"1", "4"}),
    ("referring exact", "study", [("ReferringPhysicianName", "WHO^DOCTOR")], {"1"}),
    # Dates and times
    ("date", "study", [("StudyDate", "20200301")], {"1", "4"}),
    ("date range", "study", [("StudyDate", "20200101-20201231")], {"1", "4"}),
    ("date open start", "study", [("StudyDate", "-20201231")], {"1", "4"}),
    ("date open end", "study", [("StudyDate", "20210101-")], {"2"}),
    ("date range inclusive", "study", [("StudyDate", "20200302-20210615")], {"2"}),
    ("birth date range", "study", [("PatientBirthDate", "19500101-19651231")], {"1", "4"}),
    ("time hour", "study", [("StudyTime", "09")], {"1"}),
    ("time minute", "study", [("StudyTime", "0930")], {"1"}),
    ("time fraction", "study", [("StudyTime", "141500.000")], {"2"}),
    ("time range", "study", [("StudyTime", "1000-1500")], {"2", "4"}),
    ("time open start skips empty", "study", [("StudyTime", "-1000")], {"1"}),
    ("time open end", "study", [("StudyTime", "12-")], {"2", "4"}),
    # UIDs
    ("uid", "study", [("StudyInstanceUID", uid("3"))], {"3"}),
    ("uid list", "study", [("StudyInstanceUID", f"{uid('1')}\\{uid('3')}")], {"1", "3"}),
    ("uid list comma", "study", [("StudyInstanceUID", f"{uid('1')},{uid('3')}")], {"1", "3"}),
    ("uid unknown", "study", [("StudyInstanceUID", "1.2.3")], set()),
    # Computed study attributes
    ("modalities in study", "study", [("ModalitiesInStudy", "OT")], {"2"}),
    ("modalities all", "study", [("ModalitiesInStudy", "MG")], ALL_STUDIES),
    ("modalities list", "study", [("ModalitiesInStudy", "OT\\XX")], {"2"}),
    ("modalities wild card", "study", [("ModalitiesInStudy", "O?")], {"2"}),
    ("sop classes in study", "study", [("SOPClassesInStudy", BTO)], {"2"}),
    ("instances in study", "study", [("NumberOfStudyRelatedInstances", "4")], {"1", "2"}),
    ("one instance", "study", [("NumberOfStudyRelatedInstances", "1")], {"3", "4"}),
    ("series in study", "study", [("NumberOfStudyRelatedSeries", "3")], {"2"}),
    ("series count range", "study", [("NumberOfStudyRelatedSeries", "2-")], {"1", "2"}),
    # Lower-level keys at study level: one child must match them all
    ("modality at study level", "study", [("Modality", "OT")], {"2"}),
    ("left MLO in one image", "study", [("ImageLaterality", "L"), ("ViewPosition", "MLO")], {"1"}),
    ("unprocessed", "study", [("PresentationIntentType", "FOR PROCESSING")], {"1"}),
    ("manufacturer", "study", [("Manufacturer", "GE*")], {"2"}),
    ("tomosynthesis", "study", [("SOPClassUID", BTO)], {"2"}),
    # Series level, relational (/series) and within a study
    ("series modality", "series", [("Modality", "MG")], MG_SERIES),
    ("series laterality", "series", [("ImageLaterality", "L")], {"1.1", "1.2", "2.1", "3.1"}),
    ("frame laterality alias", "series", [("FrameLaterality", "L")], {"1.1", "1.2", "2.1", "3.1"}),
    ("series number", "series", [("SeriesNumber", "2")], {"1.2", "2.2"}),
    ("series intent", "series", [("PresentationIntentType", "FOR PROCESSING")], {"1.2"}),
    ("series sop class", "series", [("SOPClassUID", MG_PROCESSING)], {"1.2"}),
    ("series thickness", "series", [("BodyPartThickness", "50-70")], {"2.2"}),
    ("series count", "series", [("NumberOfSeriesRelatedInstances", "2")], {"2.2"}),
    ("series by patient", "series", [("PatientName", "ng*")], {"3.1", "4.1"}),
    ("series modalities in study", "series", [("ModalitiesInStudy", "OT")], {"2.1", "2.2", "2.3"}),
    (
        "cc by path",
        "series",
        [("ViewCodeSequence.CodeValue", "399162004")],
        {"1.1", "1.3", "2.1", "3.1", "4.1"},
    ),
    ("mlo by tag path", "series", [("00540220.00080100", "399368009")], {"1.2", "1.4", "2.2"}),
    ("mlo by alias", "series", [("ViewCode", "399368009")], {"1.2", "1.4", "2.2"}),
    ("view meaning", "series", [("ViewCodeSequence.CodeMeaning", "medio*")], {"1.2", "1.4", "2.2"}),
    ("hologic", "series", [("Manufacturer", "HOLOGIC*")], {"1.1", "1.2", "1.3", "1.4", "4.1"}),
    (
        "series uid list",
        "series",
        [("SeriesInstanceUID", f"{uid('1.1')}\\{uid('2.2')}")],
        {"1.1", "2.2"},
    ),
    # Instance level
    (
        "left MLO raw hologic",
        "instance",
        [
            ("ImageLaterality", "L"),
            ("ViewPosition", "MLO"),
            ("PresentationIntentType", "FOR PROCESSING"),
            ("Manufacturer", "HOLOGIC*"),
        ],
        {"1.2.1"},
    ),
    (
        "right MLO",
        "instance",
        [("ImageLaterality", "R"), ("ViewPosition", "MLO")],
        {"1.4.1", "2.2.1", "2.2.2"},
    ),
    ("frames", "instance", [("NumberOfFrames", "3")], {"2.1.1"}),
    ("multi-frame", "instance", [("NumberOfFrames", "2-")], {"2.1.1"}),
    ("thickness range", "instance", [("BodyPartThickness", "50-70")], {"2.2.2"}),
    (
        "thickness upper",
        "instance",
        [("BodyPartThickness", "-40")],
        {"1.1.1", "1.2.1", "1.3.1", "1.4.1", "2.2.1", "3.1.1", "4.1.1"},
    ),
    ("thickness exact", "instance", [("BodyPartThickness", "40")], {"2.2.1"}),
    ("implant", "instance", [("BreastImplantPresent", "YES")], {"1.4.1"}),
    ("instance number", "instance", [("InstanceNumber", "2")], {"2.2.1"}),
    ("rows", "instance", [("Rows", "64")], {"2.3.1"}),
    ("image type any value", "instance", [("ImageType", "ORIGINAL")], {"1.2.1", "2.1.1"}),
    ("image type third value", "instance", [("ImageType", "TOMO*")], {"2.1.1"}),
    ("image type second value", "instance", [("ImageType", "SECONDARY")], {"2.3.1"}),
    ("content date", "instance", [("ContentDate", "20210615")], S2),
    ("instance patient id", "instance", [("PatientID", "X_1")], {"3.1.1"}),
    ("instance modalities", "instance", [("ModalitiesInStudy", "OT")], S2),
    (
        "instance series count",
        "instance",
        [("NumberOfSeriesRelatedInstances", "2")],
        {"2.2.1", "2.2.2"},
    ),
    (
        "instance uid list",
        "instance",
        [("SOPInstanceUID", f"{uid('2.2.2')}\\{uid('4.1.1')}")],
        {"2.2.2", "4.1.1"},
    ),
    ("model", "instance", [("ManufacturerModelName", "Mammomat*")], {"3.1.1"}),
    (
        "syntax",
        "instance",
        [("AvailableTransferSyntaxUID", "1.2.840.10008.1.2.1")],
        {"1.1.1", "1.2.1", "1.3.1", "1.4.1", "2.1.1", "2.2.1", "2.2.2", "2.3.1", "3.1.1", "4.1.1"},
    ),
]


@pytest.mark.parametrize(("case", "level", "params", "expected"), CASES, ids=[c[0] for c in CASES])
def test_matching(
    archive: Archive, case: str, level: Level, params: Params, expected: set[str]
) -> None:
    assert matches(archive, level, params) == expected


@pytest.mark.parametrize(
    ("level", "study", "params", "expected"),
    [
        ("series", "1", [("Modality", "MG")], {"1.1", "1.2", "1.3", "1.4"}),
        ("series", "2", [("ImageLaterality", "R")], {"2.2"}),
        ("series", "2", [("PatientID", "P001")], set()),
        ("instance", "2", [("ViewPosition", "MLO")], {"2.2.1", "2.2.2"}),
        ("instance", "9", [], set()),
    ],
)
def test_matching_within_a_study(
    archive: Archive, level: Level, study: str, params: Params, expected: set[str]
) -> None:
    assert matches(archive, level, params, study=study) == expected


def test_matching_within_a_series(archive: Archive) -> None:
    query = parse_qido([], "instance", study_uid=uid("2"), series_uid=uid("2.2"))
    with archive.services.sessions() as session:
        items = search(session, query).items
    assert [label(i["00080018"]["Value"][0]) for i in items] == ["2.2.2", "2.2.1"]


def _statements(
    archive: Archive, params: Params, level: Level, *, count_total: bool = False
) -> list[str]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = archive.services.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        query = parse_qido(params, level)
        with archive.services.sessions() as session:
            search(session, query, count_total=count_total)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return [s for s in seen if s.lstrip().upper().startswith("SELECT")]


def test_values_are_bound_never_inlined(archive: Archive) -> None:
    params = [
        ("PatientID", "' OR 1=1--"),
        ("PatientName", "x'); DROP TABLE patient;--*"),
        ("AccessionNumber", "ACC%1"),
        ("StudyDescription", "a_b?"),
    ]
    (sql,) = _statements(archive, params, "study")
    for fragment in ("1=1", "DROP", "ACC", "a_b", "a!_b"):
        assert fragment not in sql


@pytest.mark.parametrize("level", ["study", "series", "instance"])
def test_one_query_per_page(archive: Archive, level: Level) -> None:
    params = [("includefield", "all"), ("Modality", "MG"), ("limit", "1000")]
    assert len(_statements(archive, params, level)) == 1
    assert len(_statements(archive, params, level, count_total=True)) == 2
