"""The Clean Descriptors vocabulary."""

from __future__ import annotations

import pytest

from omipacs.deid.descriptors import is_safe_descriptor


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
    ],
)
def test_is_safe_descriptor(text: str, safe: bool) -> None:
    assert is_safe_descriptor(text) is safe
