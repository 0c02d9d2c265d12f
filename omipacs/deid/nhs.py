"""NHS numbers: validation and discovery in a DICOM header.

The NHS number is the one identifier that follows a woman across screening sites, so it
is what links her records in the archive (after keyed hashing; see
:mod:`omipacs.deid.pseudonyms`). It is 10 digits; the tenth is a modulus 11 check digit
over the first nine with weights 10 down to 2: ``11 - (sum % 11)``, where 11 becomes 0
and 10 means the number is invalid (NHS Data Dictionary, "NHS Number").

Linking two women by mistake is worse than failing to link one, so
:func:`find_nhs_number` only accepts a number that is either issued explicitly by the
NHS (Issuer of Patient ID or its qualifiers) or stands in an identifier with no issuer
at all, and it gives up when two different valid numbers are found.
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
            if _is_nhs_issuer(_text(item, "UniversalEntityID")):
                return issuer or NHS_NUMBER_OID, True
    except Exception:  # noqa: BLE001 - malformed qualifiers are ignored
        logger.debug("unreadable IssuerOfPatientIDQualifiersSequence")
    return issuer, False


def _candidates(ds: Dataset) -> Iterator[tuple[str, bool]]:
    """(value, explicitly NHS-issued) for every patient identifier in ``ds``."""
    issuer, nhs = _issuer(ds)
    patient_id = _text(ds, "PatientID")
    if patient_id and (nhs or not issuer):
        yield patient_id, nhs
    try:
        others = ds.get("OtherPatientIDsSequence") or []
        for item in others:
            item_issuer, item_nhs = _issuer(item)
            value = _text(item, "PatientID")
            if value and (item_nhs or not item_issuer):
                yield value, item_nhs
    except Exception:  # noqa: BLE001 - a broken sequence is not a source
        logger.debug("unreadable OtherPatientIDsSequence")
    try:
        retired = ds.get("OtherPatientIDs")
    except Exception:  # noqa: BLE001
        retired = None
    if retired:
        values = [retired] if isinstance(retired, str) else list(retired)
        for value in values:
            yield str(value).strip(), False


def find_nhs_number(ds: Dataset) -> str | None:
    """The patient's NHS number from ``ds``, normalised to 10 digits, or ``None``.

    Looks in Patient ID (0010,0020) with Issuer of Patient ID (0010,0021) or its
    qualifiers, the Other Patient IDs Sequence (0010,1002) items and the retired Other
    Patient IDs (0010,1000). A valid number whose issuer is explicitly the NHS wins; a
    valid number with no issuer at all is accepted next (UK sites commonly send the NHS
    number as a bare Patient ID). A Patient ID with some other issuer is a local hospital
    number and is never read as an NHS number, even if its check digit happens to pass.
    If the accepted candidates disagree, ``None`` is returned and the client is unlinked.
    """
    explicit: set[str] = set()
    implicit: set[str] = set()
    for value, nhs in _candidates(ds):
        number = normalise_nhs_number(value)
        if number is None:
            continue
        (explicit if nhs else implicit).add(number)
    chosen = explicit or implicit
    if len(chosen) == 1:
        return next(iter(chosen))
    if len(chosen) > 1:
        logger.warning("conflicting NHS numbers in one header; the client is left unlinked")
    return None
