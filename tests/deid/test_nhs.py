"""NHS number validation (modulus 11) and discovery in headers."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from omipacs.deid.nhs import (
    NHS_NUMBER_OID,
    find_nhs_number,
    is_valid_nhs_number,
    normalise_nhs_number,
)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("9434765919", True),
        ("943 476 5919", True),
        ("943-476-5919", True),
        (" 9434765919 ", True),
        ("4010232137", True),
        ("1234567806", True),
        ("1234567830", True),  # 11 - 0 = 11 -> check digit 0
        ("9434765918", False),  # wrong check digit
        ("1234567890", False),  # check digit would be 10: never valid
        ("1234567891", False),
        ("943476591", False),  # 9 digits
        ("94347659190", False),  # 11 digits
        ("94347659I9", False),
        ("", False),
        ("0000000000", False),  # passes mod 11 but is a placeholder
        ("1111111111", False),
        ("９４３４７６５９１９", False),  # full-width digits are not ASCII
    ],
)
def test_check_digit(text: str, valid: bool) -> None:
    assert is_valid_nhs_number(text) is valid


def test_normalise_strips_separators() -> None:
    assert normalise_nhs_number("943 476-5919") == "9434765919"
    assert normalise_nhs_number("943 476 5918") is None


def _ds(**values: object) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _other(patient_id: str, issuer: str | None) -> Dataset:
    item = Dataset()
    item.PatientID = patient_id
    if issuer is not None:
        item.IssuerOfPatientID = issuer
    return item


@pytest.mark.parametrize(
    ("ds", "expected"),
    [
        # a bare valid number is a local number: it never links (two women, one number)
        (_ds(PatientID="9434765919"), None),
        (_ds(PatientID="943 476 5919", IssuerOfPatientID="NHS"), "9434765919"),
        (_ds(PatientID="9434765919", IssuerOfPatientID="NHS Number"), "9434765919"),
        (_ds(PatientID="9434765919", IssuerOfPatientID=NHS_NUMBER_OID), "9434765919"),
        # a local hospital number is never read as an NHS number, even if it passes
        (_ds(PatientID="9434765919", IssuerOfPatientID="RSCH"), None),
        (_ds(PatientID="RSCH123", IssuerOfPatientID="RSCH",
             OtherPatientIDsSequence=Sequence([_other("9434765919", "NHS")])), "9434765919"),
        (_ds(PatientID="RSCH123", IssuerOfPatientID="RSCH",
             OtherPatientIDsSequence=Sequence([_other("9434765919", "PAS")])), None),
        (_ds(PatientID="RSCH123", OtherPatientIDs=["X1", "943 476 5919"]), None),
        (_ds(PatientID="RSCH123", IssuerOfPatientID="RSCH NHS Foundation Trust"), None),
        # an explicit NHS-issued number is read; a bare one beside it is not
        (_ds(PatientID="4010232137",
             OtherPatientIDsSequence=Sequence([_other("9434765919", "NHS")])), "9434765919"),
        # two explicit numbers disagree: unlinked rather than guessed
        (_ds(PatientID="4010232137", IssuerOfPatientID="NHS",
             OtherPatientIDsSequence=Sequence([_other("9434765919", "NHS")])), None),
        (_ds(PatientID="9434765918"), None),
        (_ds(), None),
    ],
)
def test_find_nhs_number(ds: Dataset, expected: str | None) -> None:
    assert find_nhs_number(ds) == expected


def test_a_site_can_say_its_patient_id_is_the_nhs_number() -> None:
    ds = _ds(PatientID="943 476 5919", IssuerOfPatientID="RSCH")
    assert find_nhs_number(ds) is None
    assert find_nhs_number(ds, patient_id_is_nhs_number=True) == "9434765919"


def test_identifier_type_code_marks_an_nhs_number() -> None:
    qualifier = Dataset()
    qualifier.IdentifierTypeCode = "NH"
    ds = _ds(PatientID="9434765919", IssuerOfPatientIDQualifiersSequence=Sequence([qualifier]))
    assert find_nhs_number(ds) == "9434765919"


def test_issuer_qualifiers_mark_an_nhs_number() -> None:
    qualifier = Dataset()
    qualifier.UniversalEntityID = NHS_NUMBER_OID
    qualifier.UniversalEntityIDType = "ISO"
    ds = _ds(PatientID="9434765919", IssuerOfPatientID="RSCH",
             IssuerOfPatientIDQualifiersSequence=Sequence([qualifier]))
    assert find_nhs_number(ds) == "9434765919"
