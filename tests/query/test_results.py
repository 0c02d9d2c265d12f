"""Index values to DICOM JSON elements."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from omipacs.query.attributes import BY_KEYWORD
from omipacs.query.results import element_json, sequence_json


@pytest.mark.parametrize(
    ("keyword", "value", "aggregated", "expected"),
    [
        ("PatientName", "Doe^Jane", False, {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}),
        ("PatientName", "", False, {"vr": "PN"}),
        ("StudyDate", date(2020, 3, 1), False, {"vr": "DA", "Value": ["20200301"]}),
        ("StudyDate", None, False, {"vr": "DA"}),
        ("StudyTime", "093000", False, {"vr": "TM", "Value": ["093000"]}),
        ("Rows", 3328, False, {"vr": "US", "Value": [3328]}),
        ("NumberOfFrames", None, False, {"vr": "IS"}),
        ("BodyPartThickness", 0.1 + 0.2, False, {"vr": "DS", "Value": [0.3]}),
        (
            "ImageType",
            "DERIVED\\PRIMARY\\\\",
            False,
            {"vr": "CS", "Value": ["DERIVED", "PRIMARY", "", ""]},
        ),
        ("ImagerPixelSpacing", "0.07\\0.07", False, {"vr": "DS", "Value": [0.07, 0.07]}),
        ("InstanceAvailability", None, False, {"vr": "CS", "Value": ["ONLINE"]}),
        ("ModalitiesInStudy", "SR\\MG", True, {"vr": "CS", "Value": ["MG", "SR"]}),
        ("ModalitiesInStudy", None, True, {"vr": "CS"}),
        ("NumberOfFrames", "10\\3\\1", True, {"vr": "IS", "Value": [1, 3, 10]}),
        (
            "ContentDate",
            "2021-06-15\\2020-01-01",
            True,
            {"vr": "DA", "Value": ["20200101", "20210615"]},
        ),
        (
            "ImageType",
            "ORIGINAL\\PRIMARY\\DERIVED\\PRIMARY",
            True,
            {"vr": "CS", "Value": ["DERIVED", "ORIGINAL", "PRIMARY"]},
        ),
    ],
)
def test_element_json(keyword: str, value: Any, aggregated: bool, expected: dict[str, Any]) -> None:
    assert element_json(BY_KEYWORD[keyword], value, aggregated=aggregated) == expected


def test_sequence_json() -> None:
    attr = BY_KEYWORD["ViewCodeSequence"]
    assert sequence_json(attr, ["", "", ""]) == {"vr": "SQ"}
    assert sequence_json(attr, ["399162004", "cranio-caudal", "399055006"]) == {
        "vr": "SQ",
        "Value": [
            {
                "00080100": {"vr": "SH", "Value": ["399162004"]},
                "00080104": {"vr": "LO", "Value": ["cranio-caudal"]},
                "00540222": {
                    "vr": "SQ",
                    "Value": [{"00080100": {"vr": "SH", "Value": ["399055006"]}}],
                },
            }
        ],
    }
