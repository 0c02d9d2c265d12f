"""NHS numbers: validation and discovery in a DICOM header.

The NHS number is the one identifier that follows a woman across screening sites, so it
is what links her records in the archive (after keyed hashing; see
:mod:`omipacs.deid.pseudonyms`). It is 10 digits; the tenth is a modulus 11 check digit
over the first nine with weights 10 down to 2: ``11 - (sum % 11)``, where 11 becomes 0
and 10 means the number is invalid (NHS Data Dictionary, "NHS Number").

Linking two women by mistake is worse than failing to link one, and about one random
10-digit number in eleven passes the check, so a hospital's bare 10-digit local number
would often "be" someone else's NHS number. :func:`find_nhs_number` therefore reads a
number only from an identifier that *says* it is an NHS number: an Issuer of Patient ID
naming the NHS, issuer qualifiers carrying the NHS number's OID or an identifier type
naming it, or a sending site configured to put the NHS number in Patient ID
(``[[dimse.peers]] patient_id_is_nhs_number``). It gives up when two different valid
numbers are found.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Final

from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)

NHS_NUMBER_OID: Final = "2.16.840.1.113883.2.1.4.1"
"""HL7 OID of the NHS number in England and Wales, used as a Universal Entity ID."""

_NHS_ISSUERS: Final = frozenset({"NHS", "NHSN", "NHSNO", "NHSNUMBER", "NHSNBR", NHS_NUMBER_OID})
_NHS_TYPES: Final = frozenset({"NH", "NHS", "NHSN", "NHSNO", "NHSNUMBER"})
"""Identifier Type Codes (HL7 Table 0203 ``NH``, national health number) that name it."""
_SEPARATORS: Final = re.compile(r"[\s\-]")
_WEIGHTS: Final = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def normalise_nhs_number(text: str) -> str | None:
    """The 10 digits of ``text`` if it is a valid NHS number, else ``None``.

    Spaces and dashes are ignored ("943 476 5919", "943-476-5919"). A number whose
    digits are all the same passes the check for some digits (1111111111) but is a
    placeholder, never a real number, and is rejected.
    """
    digits = _SEPARATORS.sub("", text)
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return None
    if len(set(digits)) == 1:
        return None
    total = sum(int(d) * w for d, w in zip(digits[:9], _WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10 or check != int(digits[9]):
        return None
    return digits


def is_valid_nhs_number(text: str) -> bool:
    """True if ``text`` is a 10-digit NHS number with a correct modulus 11 check digit."""
    return normalise_nhs_number(text) is not None


def _is_nhs_issuer(issuer: str) -> bool:
    normalised = re.sub(r"[\s_\-.]", "", issuer.upper())
    return normalised in _NHS_ISSUERS or issuer.strip() == NHS_NUMBER_OID


def _text(ds: Dataset, keyword: str) -> str:
    """A string value, or "" when absent or unreadable (malformed input is not an error)."""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a broken element simply is not a candidate
        logger.debug("unreadable %s while looking for an NHS number", keyword)
        return ""
    if value is None:
        return ""
    return str(value).strip()


def _issuer(ds: Dataset) -> tuple[str, bool]:
    """(issuer text, issued by the NHS) for the Patient ID in ``ds`` (PS3.3 C.7.1.1)."""
    issuer = _text(ds, "IssuerOfPatientID")
    if issuer and _is_nhs_issuer(issuer):
        return issuer, True
    try:
        qualifiers = ds.get("IssuerOfPatientIDQualifiersSequence") or []
        for item in qualifiers:
            kind = re.sub(r"[\s_\-.]", "", _text(item, "IdentifierTypeCode").upper())
            if _is_nhs_issuer(_text(item, "UniversalEntityID")) or kind in _NHS_TYPES:
                return issuer or NHS_NUMBER_OID, True
    except Exception:  # noqa: BLE001 - malformed qualifiers are ignored
        logger.debug("unreadable IssuerOfPatientIDQualifiersSequence")
    return issuer, False


def _candidates(ds: Dataset, patient_id_is_nhs_number: bool) -> Iterator[str]:
    """Every patient identifier in ``ds`` that says it is an NHS number."""
    _, nhs = _issuer(ds)
    patient_id = _text(ds, "PatientID")
    if patient_id and (nhs or patient_id_is_nhs_number):
        yield patient_id
    try:
        others = ds.get("OtherPatientIDsSequence") or []
        for item in others:
            _, item_nhs = _issuer(item)
            value = _text(item, "PatientID")
            if value and item_nhs:
                yield value
    except Exception:  # noqa: BLE001 - a broken sequence is not a source
        logger.debug("unreadable OtherPatientIDsSequence")


def find_nhs_number(ds: Dataset, *, patient_id_is_nhs_number: bool = False) -> str | None:
    """The patient's NHS number from ``ds``, normalised to 10 digits, or ``None``.

    Looks in Patient ID (0010,0020) with Issuer of Patient ID (0010,0021) or its
    qualifiers (Universal Entity ID, Identifier Type Code), and in the Other Patient IDs
    Sequence (0010,1002) items with theirs. A number counts only when its identifier
    names the NHS, or, for Patient ID, when ``patient_id_is_nhs_number`` says the
    sending site puts the NHS number there. A bare valid 10-digit number is a local
    hospital number as far as the archive knows, and so is the retired Other Patient
    IDs (0010,1000), which has no issuer. If the accepted numbers disagree, ``None`` is
    returned and the client is unlinked.
    """
    chosen: set[str] = set()
    for value in _candidates(ds, patient_id_is_nhs_number):
        number = normalise_nhs_number(value)
        if number is not None:
            chosen.add(number)
    if len(chosen) == 1:
        return next(iter(chosen))
    if len(chosen) > 1:
        logger.warning("conflicting NHS numbers in one header; the client is left unlinked")
    return None
