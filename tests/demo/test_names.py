from __future__ import annotations

import re
from datetime import date

import numpy as np
import pytest

from omipacs.demo.names import (
    fake_patient,
    fake_person_name,
    is_valid_nhs_number,
    nhs_check_digit,
    valid_nhs_number,
)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("9434765919", True),  # the NHS's own published example
        ("943 476 5919", True),
        ("943-476-5919", True),
        ("9434765918", False),  # wrong check digit
        ("9434765910", False),
        ("1000000010", False),  # first nine digits give check 10: never valid
        ("943476591", False),  # nine digits
        ("94347659190", False),  # eleven digits
        ("943476591X", False),
        ("", False),
    ],
)
def test_is_valid_nhs_number(value: str, valid: bool) -> None:
    assert is_valid_nhs_number(value) is valid


@pytest.mark.parametrize(
    ("nine", "check"),
    [
        ("943476591", 9),
        ("401023213", 7),  # weighted sum 92, 92 % 11 = 4, 11 - 4 = 7
        ("999000001", 8),
        ("999000005", 0),  # weighted sum 253 = 23 * 11: 11 maps to 0
        ("100000001", None),  # 11 - 1 = 10: no valid check digit
    ],
)
def test_nhs_check_digit(nine: str, check: int | None) -> None:
    assert nhs_check_digit(nine) == check


def test_nhs_check_digit_rejects_wrong_length() -> None:
    with pytest.raises(ValueError):
        nhs_check_digit("12345")


def test_valid_nhs_number_is_valid_and_in_test_range() -> None:
    rng = np.random.default_rng(7)
    numbers = [valid_nhs_number(rng) for _ in range(300)]
    assert all(is_valid_nhs_number(n) and n.startswith("999") for n in numbers)
    assert len(set(numbers)) > 290


def test_fake_patient_is_plausible_and_deterministic() -> None:
    born = (date(1950, 1, 1), date(1960, 12, 31))
    a = fake_patient(np.random.default_rng(3), born_between=born)
    b = fake_patient(np.random.default_rng(3), born_between=born)
    c = fake_patient(np.random.default_rng(4), born_between=born)
    assert a == b
    assert a != c
    assert a.sex == "F"
    assert born[0] <= a.birth_date <= born[1]
    assert is_valid_nhs_number(a.nhs_number)
    assert re.fullmatch(r"[A-Z]+\^[A-Z][a-z]+\^[A-Za-z]*\^\^(Mrs|Ms|Miss|Dr)", a.name)
    assert re.search(r", [A-Z]{1,2}\d{1,2} \d[A-Z]{2}$", a.address)
    assert re.fullmatch(r"0\d{3,4} \d{3} ?\d{3,4}", a.phone)
    assert len(a.address) <= 64


def test_fake_person_name_has_no_trailing_separators() -> None:
    name = fake_person_name(np.random.default_rng(1), title="")
    assert not name.endswith("^")
    assert name.count("^") == 1
