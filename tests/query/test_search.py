"""Searching: paging, ordering, computed attributes, DICOM JSON, access restriction."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import ColumnElement, select

from omipacs.index.models import Instance, Series, Study
from omipacs.index.visibility import Visibility
from omipacs.query.attributes import Level
from omipacs.query.params import MAX_OFFSET, parse_qido
from omipacs.query.search import QidoResult, search
from tests.query.archive import BTO, MG_PRESENTATION, SC, Archive, label, uid

Params = list[tuple[str, str]]
UNIQUE = {"study": "0020000D", "series": "0020000E", "instance": "00080018"}
NEWEST_FIRST = ["2", "4", "1", "3"]


def run(
    archive: Archive,
    params: Params,
    level: Level = "study",
    *,
    restrict: Visibility | None = None,
    count_total: bool = False,
    **kw: Any,
) -> QidoResult:
    query = parse_qido(params, level, **kw)
    with archive.services.sessions() as session:
        return search(session, query, restrict=restrict, count_total=count_total)


def labels(result: QidoResult, level: Level = "study") -> list[str]:
    return [label(item[UNIQUE[level]]["Value"][0]) for item in result.items]


def by_label(result: QidoResult, level: Level = "study") -> dict[str, dict[str, Any]]:
    return dict(zip(labels(result, level), result.items, strict=True))


# Paging and ordering


def test_studies_newest_first_and_undated_last(archive: Archive) -> None:
    result = run(archive, [], count_total=True)
    assert labels(result) == NEWEST_FIRST
    assert (result.truncated, result.total) == (False, 4)


def test_pages_are_stable_and_complete(archive: Archive) -> None:
    seen: list[str] = []
    for offset in range(4):
        page = run(archive, [("limit", "1"), ("offset", str(offset))])
        seen += labels(page)
        assert page.truncated is (offset < 3)
    assert seen == NEWEST_FIRST


def test_offset_past_the_end(archive: Archive) -> None:
    for offset in ("4", str(MAX_OFFSET), "9" * 40):
        result = run(archive, [("offset", offset)], count_total=True)
        assert (result.items, result.truncated, result.total) == ([], False, 4)


def test_limit_over_maximum_is_clamped_and_truncated(archive: Archive) -> None:
    result = run(archive, [("limit", "1000000000")], max_limit=3, default_limit=2)
    assert labels(result) == NEWEST_FIRST[:3] and result.truncated


def test_default_limit(archive: Archive) -> None:
    result = run(archive, [], default_limit=2)
    assert labels(result) == NEWEST_FIRST[:2] and result.truncated


def test_exact_page_is_not_truncated(archive: Archive) -> None:
    assert not run(archive, [("limit", "4")]).truncated


def test_relational_series_order(archive: Archive) -> None:
    result = run(archive, [], "series")
    assert labels(result, "series") == [
        "2.1", "2.2", "2.3", "4.1", "1.1", "1.2", "1.3", "1.4", "3.1",
    ]  # fmt: skip


def test_instance_order_follows_instance_number(archive: Archive) -> None:
    result = run(archive, [], "instance", study_uid=uid("2"))
    assert labels(result, "instance") == ["2.1.1", "2.2.2", "2.2.1", "2.3.1"]


def test_relational_instances_paged(archive: Archive) -> None:
    full = labels(run(archive, [], "instance"), "instance")
    assert len(full) == 10
    paged = [
        lbl
        for offset in range(0, 10, 3)
        for lbl in labels(
            run(archive, [("limit", "3"), ("offset", str(offset))], "instance"), "instance"
        )
    ]
    assert paged == full


# Computed attributes and values


def test_computed_study_attributes(archive: Archive) -> None:
    studies = by_label(run(archive, [("includefield", "SOPClassesInStudy")]))
    s1, s2 = studies["1"], studies["2"]
    assert s1["00080061"] == {"vr": "CS", "Value": ["MG"]}
    assert s2["00080061"] == {"vr": "CS", "Value": ["MG", "OT"]}
    assert s1["00201206"] == {"vr": "IS", "Value": [4]}
    assert s1["00201208"] == {"vr": "IS", "Value": [4]}
    assert s2["00201206"] == {"vr": "IS", "Value": [3]}
    assert s2["00201208"] == {"vr": "IS", "Value": [4]}
    assert s2["00080062"] == {"vr": "UI", "Value": sorted([BTO, MG_PRESENTATION, SC])}
    assert studies["3"]["00201208"] == {"vr": "IS", "Value": [1]}


def test_computed_series_attribute(archive: Archive) -> None:
    series = by_label(run(archive, [], "series", study_uid=uid("2")), "series")
    assert [s["00201209"]["Value"] for s in series.values()] == [[1], [2], [1]]


def test_study_attributes_are_not_narrowed_by_a_match(archive: Archive) -> None:
    # A study found through one of its series still reports all its modalities.
    (study,) = run(archive, [("Modality", "OT")]).items
    assert study["00080061"]["Value"] == ["MG", "OT"]
    assert study["00080060"]["Value"] == ["MG", "OT"]


def test_counts_see_rows_outside_a_restriction_of_the_same_study(archive: Archive) -> None:
    # A restriction on studies leaves each visible study's counts whole.
    keep = Visibility(study=Study.study_instance_uid == uid("1"))
    (study,) = run(archive, [], restrict=keep).items
    assert study["00201208"]["Value"] == [4]


def test_instance_values_from_the_index(archive: Archive) -> None:
    (inst,) = run(
        archive,
        [("includefield", "all")],
        "instance",
        study_uid=uid("2"),
        series_uid=uid("2.1"),
    ).items
    assert inst["00080016"] == {"vr": "UI", "Value": [BTO]}
    assert inst["00080056"] == {"vr": "CS", "Value": ["ONLINE"]}
    assert inst["00280008"] == {"vr": "IS", "Value": [3]}
    assert inst["00280010"] == {"vr": "US", "Value": [32]}
    assert inst["00200062"] == inst["00209072"] == {"vr": "CS", "Value": ["L"]}
    assert inst["00185101"] == {"vr": "CS"}  # no ViewPosition in a tomosynthesis object
    assert inst["00540220"] == {
        "vr": "SQ",
        "Value": [
            {
                "00080100": {"vr": "SH", "Value": ["399162004"]},
                "00080104": {"vr": "LO", "Value": ["cranio-caudal"]},
            }
        ],
    }
    assert inst["00080008"]["Value"] == ["ORIGINAL", "PRIMARY", "TOMOSYNTHESIS", "NONE"]
    assert inst["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Smith^Joan"}]}
    assert inst["0020000D"]["Value"] == [uid("2")]
    assert inst["0020000E"]["Value"] == [uid("2.1")]


def test_json_is_valid_dicom_json(archive: Archive) -> None:
    for level in ("study", "series", "instance"):
        for item in run(archive, [("includefield", "all")], level).items:
            assert list(item) == sorted(item)
            for key, elem in item.items():
                assert len(key) == 8 and "vr" in elem
                assert "Value" not in elem or elem["Value"]
            Dataset.from_json(item)  # pydicom reads every item back


def test_empty_values_have_no_value(archive: Archive) -> None:
    study3 = by_label(run(archive, []))["3"]
    assert study3["00080020"] == {"vr": "DA"}
    assert study3["00080030"] == {"vr": "TM"}
    assert study3["00080050"] == {"vr": "SH"}
    assert study3["00080090"] == {"vr": "PN"}


def test_decimal_values(archive: Archive) -> None:
    items = run(archive, [("BodyPartThickness", "")], "instance", study_uid=uid("2")).items
    values = {label(i["00080018"]["Value"][0]): i["001811A0"] for i in items}
    assert values["2.2.1"] == {"vr": "DS", "Value": [40.0]}
    assert values["2.1.1"] == {"vr": "DS"}


def test_lower_level_values_at_higher_levels(archive: Archive) -> None:
    series = by_label(
        run(
            archive,
            [("ImageLaterality", ""), ("includefield", "Manufacturer")],
            "series",
            study_uid=uid("1"),
        ),
        "series",
    )
    assert series["1.1"]["00200062"] == {"vr": "CS", "Value": ["L"]}
    assert series["1.1"]["00080070"] == {"vr": "LO", "Value": ["HOLOGIC, Inc."]}
    study = by_label(run(archive, [("ImageLaterality", ""), ("includefield", "NumberOfFrames")]))
    assert study["1"]["00200062"]["Value"] == ["L", "R"]
    assert study["2"]["00280008"]["Value"] == [1, 3]


# includefield and relational results


@pytest.mark.parametrize(
    ("level", "kw", "present", "absent"),
    [
        ("study", {}, {"00100010", "00201208", "00080061"}, {"0020000E", "00101010"}),
        ("series", {}, {"00100010", "0020000D", "00201209"}, {"00080018"}),
        ("series", {"study_uid": "2"}, {"0020000D", "00080060"}, {"00100010", "00080020"}),
        ("instance", {}, {"00100010", "0020000E", "00080060", "00080056"}, {"00200062"}),
        (
            "instance",
            {"study_uid": "2", "series_uid": "2.2"},
            {"0020000D", "0020000E", "00280010"},
            {"00100010", "00080060"},
        ),
    ],
)
def test_returned_attributes_per_level(
    archive: Archive, level: Level, kw: dict[str, str], present: set[str], absent: set[str]
) -> None:
    uids = {k: uid(v) for k, v in kw.items()}
    result = run(
        archive, [], level, study_uid=uids.get("study_uid"), series_uid=uids.get("series_uid")
    )
    assert result.items
    for item in result.items:
        assert present <= set(item) and not absent & set(item)


@pytest.mark.parametrize(
    ("params", "keys"),
    [
        ([("includefield", "PatientAge")], {"00101010"}),
        ([("includefield", "00101010")], {"00101010"}),
        ([("includefield", "00081030,00080060"), ("includefield", "00100030")], {"00080060"}),
        ([("includefield", "all")], {"00101010", "00100021", "00080062", "00080056"}),
        ([("StudyDescription", "Screening*")], {"00081030"}),
    ],
)
def test_includefield(archive: Archive, params: Params, keys: set[str]) -> None:
    for item in run(archive, params).items:
        assert keys <= set(item)


# Access restriction


def _studies(*labels_: str) -> Visibility:
    cohort = select(Study.pk).where(Study.study_instance_uid.in_([uid(s) for s in labels_]))
    return Visibility(study=Study.pk.in_(cohort))


RESTRICTED: list[tuple[Level, Params]] = [
    ("study", []),
    ("study", [("StudyInstanceUID", f"{uid('2')}\\{uid('1')}\\{uid('4')}")]),
    ("study", [("PatientID", "*")]),
    ("study", [("PatientID", "' OR 1=1--")]),
    ("study", [("PatientName", "*"), ("fuzzymatching", "true")]),
    ("study", [("ModalitiesInStudy", "OT")]),
    ("series", [("SeriesInstanceUID", f"{uid('2.2')}\\{uid('1.1')}")]),
    ("series", [("StudyInstanceUID", uid("2"))]),
    ("instance", [("SOPInstanceUID", f"{uid('2.2.1')}\\{uid('1.1.1')}\\{uid('3.1.1')}")]),
    ("instance", [("Manufacturer", "*")]),
    ("instance", [("limit", "0")]),
]


@pytest.mark.parametrize(("level", "params"), RESTRICTED)
def test_restrict_cannot_be_bypassed(archive: Archive, level: Level, params: Params) -> None:
    result = run(archive, params, level, restrict=_studies("1", "3"), count_total=True)
    study_uids = {item["0020000D"]["Value"][0] for item in result.items}
    assert study_uids <= {uid("1"), uid("3")}
    assert result.total == len(result.items)


def test_restrict_on_a_url_study_outside_it(archive: Archive) -> None:
    result = run(archive, [], "series", study_uid=uid("2"), restrict=_studies("1"))
    assert result.items == [] and not result.truncated


def test_restrict_at_series_level(archive: Archive) -> None:
    series = select(Series.pk).where(Series.series_instance_uid == uid("2.2"))
    keep = Visibility(instance=lambda i: i.series_pk.in_(series))
    result = run(archive, [], "instance", restrict=keep)
    assert labels(result, "instance") == ["2.2.2", "2.2.1"]


@pytest.mark.parametrize(
    ("level", "restrict"),
    [
        ("study", Series.series_instance_uid == "1.2.3"),
        ("study", Instance.sop_instance_uid == "1.2.3"),
        ("series", Instance.pk == 1),
    ],
)
def test_restrict_on_unjoined_rows_is_refused(
    archive: Archive, level: Level, restrict: ColumnElement[bool]
) -> None:
    with pytest.raises(ValueError):
        run(archive, [], level, restrict=Visibility(study=restrict))


# Instance visibility (a licence's data types): rows, counts and lists below a row


def _only_sop_classes(*classes: str) -> Visibility:
    return Visibility(instance=lambda i: i.sop_class_uid.in_(classes))


DBT = "1.2.840.10008.5.1.4.1.1.13.1.3"


def test_instance_visibility_hides_rows_and_shrinks_counts(archive: Archive) -> None:
    # Only tomosynthesis visible: study 2 alone, with its one DBT series and instance.
    vis = _only_sop_classes(DBT)
    params = [("includefield", "all")]
    (study,) = run(archive, params, restrict=vis, count_total=True).items
    assert label(study["0020000D"]["Value"][0]) == "2"
    assert study["00201208"]["Value"] == [1]  # NumberOfStudyRelatedInstances
    assert study["00201206"]["Value"] == [1]  # NumberOfStudyRelatedSeries
    assert study["00080062"]["Value"] == [DBT]  # SOPClassesInStudy
    assert labels(run(archive, [], "series", restrict=vis), "series") == ["2.1"]
    assert labels(run(archive, [], "instance", restrict=vis), "instance") == ["2.1.1"]


def test_keys_below_the_row_match_only_visible_instances(archive: Archive) -> None:
    # Study 2 has an SC (OT) series; with only DBT visible it must not be found by it.
    vis = _only_sop_classes(DBT)
    assert run(archive, [("ModalitiesInStudy", "OT")], restrict=vis).items == []
    assert run(archive, [("Modality", "OT")], restrict=vis).items == []
    assert run(archive, [("Modality", "OT")]).items  # it is there for everyone else


def test_mammography_example(archive: Archive) -> None:
    # "All left MLO unprocessed Hologic images", as a researcher would ask.
    result = run(
        archive,
        [
            ("ImageLaterality", "L"),
            ("ViewPosition", "MLO"),
            ("PresentationIntentType", "FOR PROCESSING"),
            ("Manufacturer", "HOLOGIC*"),
        ],
        "instance",
    )
    (item,) = result.items
    assert item["00080068"] == {"vr": "CS", "Value": ["FOR PROCESSING"]}
    assert item["00080070"] == {"vr": "LO", "Value": ["HOLOGIC, Inc."]}
    assert item["00185101"] == {"vr": "CS", "Value": ["MLO"]}
