"""Values that the profile's operations write, by VR.

Annex E leaves the choice of dummy values to the de-identifier (E.1.1 note 2); omipacs
uses fixed, obviously artificial values that are valid for their VR, so a Type 1
attribute stays present and a reader never mistakes a dummy for data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

DUMMY_TEXT: Final = "ANONYMIZED"
"""Dummy for string VRs; 10 characters, valid for CS, SH and AE as well."""
DUMMY_PERSON: Final = "ANONYMOUS"
"""Dummy for PN."""

_DUMMIES: Final[dict[str, str]] = {
    "PN": DUMMY_PERSON,
    "AE": DUMMY_TEXT,
    "CS": DUMMY_TEXT,
    "LO": DUMMY_TEXT,
    "LT": DUMMY_TEXT,
    "SH": DUMMY_TEXT,
    "ST": DUMMY_TEXT,
    "UC": DUMMY_TEXT,
    "UT": DUMMY_TEXT,
    "DS": "0",
    "IS": "0",
}


def dummy_value(vr: str) -> str | None:
    """The dummy for ``vr``, or ``None`` when the VR has none (the element is removed)."""
    return _DUMMIES.get(vr)


def empty_element(elem: DataElement) -> DataElement:
    """A zero-length copy of ``elem``: an empty sequence for SQ, no value otherwise."""
    if elem.VR == "SQ":
        return DataElement(elem.tag, "SQ", Sequence())
    return DataElement(elem.tag, elem.VR, empty_value_for_VR(elem.VR))


def string_values(elem: DataElement) -> list[str]:
    """The values of a string element as a list of ``str`` (empty for no value)."""
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def with_values(elem: DataElement, values: list[str]) -> DataElement:
    """A copy of ``elem`` holding ``values`` (one value unwrapped, none as empty)."""
    value: Any
    if not values:
        value = empty_value_for_VR(elem.VR)
    elif len(values) == 1:
        value = values[0]
    else:
        value = values
    return DataElement(elem.tag, elem.VR, value)


def map_values(elem: DataElement, func: Callable[[str], str]) -> DataElement:
    """A copy of ``elem`` with ``func`` applied to each non-empty string value.

    Exceptions from ``func`` propagate, so the caller can remove a value it cannot map.
    """
    return with_values(elem, [func(v) if v.strip() else v for v in string_values(elem)])
