"""The transcription of PS3.15 Table E.1-1."""

from __future__ import annotations

import pytest
from pydicom.datadict import dictionary_has_tag, tag_for_keyword
from pydicom.tag import Tag

from omipacs.deid.annex_e import BASIC_CODES, TABLE_E1_1, _parse


def test_every_row_is_a_known_attribute_with_a_valid_code() -> None:
    assert len(TABLE_E1_1) == 456
    for tag, row in TABLE_E1_1.items():
        assert dictionary_has_tag(tag), tag
        assert row.basic in BASIC_CODES


@pytest.mark.parametrize(
    ("keyword", "basic", "options"),
    [
        ("PatientName", "Z", {}),
        ("PatientBirthDate", "Z", {}),
        ("StudyDate", "Z", {"113107": "C"}),
        ("PatientAge", "X", {"113108": "K"}),
        ("DeviceSerialNumber", "X/Z/D", {"113109": "K"}),
        ("StudyDescription", "X", {"113105": "C"}),
        ("ReferencedImageSequence", "X/Z/U*", {}),
        ("Allergies", "X", {"113105": "C", "113108": "C"}),
        ("DigitalSignaturesSequence", "X", {}),
        ("PersonName", "D", {}),
    ],
)
def test_sample_rows(keyword: str, basic: str, options: dict[str, str]) -> None:
    row = TABLE_E1_1[Tag(tag_for_keyword(keyword))]  # type: ignore[arg-type]
    assert row.basic == basic and dict(row.options) == options


@pytest.mark.parametrize(
    "text",
    ["0008,0050 Q", "0008,0050 X 113110:K", "0008,0050 X 113105:U",
     "0008,0050 X\n0008,0050 Z"],
)
def test_malformed_rows_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        _parse(text)
