"""The Clean Descriptors vocabulary."""

from __future__ import annotations

import pytest
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from omipacs.deid.actions import DUMMY_TEXT
from omipacs.deid.codes import LOCAL_SCHEME, clean_code_item
from omipacs.deid.descriptors import is_safe_descriptor, looks_like_identifier


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("L CC", True),
        ("R MLO", True),
        ("r mlo", True),
        ("Screening Mammography", True),
        ("Tomosynthesis", True),
        ("R MLO Tomosynthesis", True),
        ("L_CC_FOR_PRESENTATION", True),
        ("C-View 2D", True),
        ("Lesion 1", True),
        ("LCC", True),
        ("RMLO Tomo", True),
        ("", True),
        ("   ", True),
        ("Mrs Jane Smith", False),
        ("Mrs Jane Smith NHS 943 476 5919", False),
        ("L CC 9434765919", False),
        ("L CC 12/03/1958", False),
        ("R Low", False),  # surnames that look technical are not on the list
        ("Mark", False),
        ("L CC é", False),
        ("L CC\x00", False),
        # Vocabulary words paired with dates in many formats.
        ("Screening 10/02/16", False),
        ("R MLO 14 06 62", False),
        ("L CC 2016-02-10", False),
        ("L CC 10.02.2016", False),
        ("Screening 10 Feb 2016", False),
        ("Screening 10FEB16", False),
        ("Lesion 1 14/6/1962", False),
        ("Recall 10:42", False),
        ("L CC 100216", False),
        ("Lesion 1 2", False),  # two numbers: a day and a month
        ("Lesion 123", False),
        ("1A", False),  # mixed letters and digits that are not vocabulary
        # Names that are also ordinary words are not vocabulary.
        ("Recall Sparrow", False),
        ("Screening Mammography Sparrow", False),
        ("Heather", False),
    ],
)
def test_is_safe_descriptor(text: str, safe: bool) -> None:
    assert is_safe_descriptor(text) is safe


@pytest.mark.parametrize(
    ("text", "identifier"),
    [("NORMAL", False), ("SOFT TISSUE", False), ("C-View 2D", False), ("10/02/16", True),
     ("Window 14 06 62", True), ("2016-02-10", True), ("10FEB16", True), ("RSCH101", True)],
)
def test_looks_like_identifier(text: str, identifier: bool) -> None:
    assert looks_like_identifier(text) is identifier


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        # Known standard concepts keep their value; a meaning that is not the table's and
        # not a safe descriptor is replaced by the table's.
        (_code("121008", "DCM", "Person Observer Name"), {}),
        (_code("76752008", "SCT", "Breast"), {}),
        (_code("121106", "DCM", "Comment by Sparrow"), {"CodeMeaning": "Comment"}),
        # A standard scheme but an unknown value: the value must look like a code.
        (_code("4010232137", "SCT", "Mass"), {"CodeValue": DUMMY_TEXT}),
        (_code("19620614", "LN", "Mass"), {"CodeValue": DUMMY_TEXT}),
        (_code("24623002", "SCT", "Screening"), {}),
        # Local schemes: value and meaning must be safe descriptors; the scheme goes.
        (_code("R-1", "99RSCH", "Lesion 1"), {"CodingSchemeDesignator": LOCAL_SCHEME}),
        (_code("SPW1", "99RSCH", "Read by Sparrow"),
         {"CodingSchemeDesignator": LOCAL_SCHEME, "CodeValue": DUMMY_TEXT,
          "CodeMeaning": DUMMY_TEXT}),
    ],
)
def test_code_items(item: Dataset, expected: dict[str, str]) -> None:
    assert {keyword_for_tag(t): v for t, v in clean_code_item(item).items()} == expected


def test_not_a_code_item() -> None:
    item = Dataset()
    item.PatientName = "X"
    assert clean_code_item(item) == {}
