"""Coded concepts (PS3.3 Table 8.8-1) under the Clean Descriptors Option.

A Code Sequence item is kept so that SR trees, views and anatomy stay meaningful, but a
code is only as safe as its scheme: a site's local scheme (``99RSCH``, ``L``) can carry
a radiologist's initials as the value and a name as the meaning, and any meaning is
free text. So, item by item:

* a code of a standard scheme that the standard's code tables know (pydicom ships the
  DCM, SCT, LN, UCUM, NCIt, RadLex, FMA, ... concepts of PS3.16) keeps its value, and its
  meaning when that meaning passes :func:`~omipacs.deid.descriptors.is_safe_descriptor`
  or is the table's; any other meaning is *replaced* by the table's, which is Annex E's
  "replace with values of similar meaning known not to contain identifying information";
* a code of a standard scheme that the tables do not know keeps a value that looks like
  a code (no date or NHS number shape) and a meaning that passes the descriptor check;
* a code of any other scheme is local: the scheme becomes ``99LOCAL`` and the value and
  meaning are kept only when they pass the descriptor check, else they become dummies.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Final

from pydicom.dataset import Dataset
from pydicom.sr.codedict import Collection
from pydicom.tag import BaseTag, Tag

from omipacs.deid.actions import DUMMY_TEXT
from omipacs.deid.descriptors import is_safe_descriptor
from omipacs.deid.nhs import normalise_nhs_number

LOCAL_SCHEME: Final = "99LOCAL"
"""What a local Coding Scheme Designator is replaced by."""

TABLE_SCHEMES: Final = ("DCM", "SCT", "LN", "UCUM", "NCIt", "RADLEX", "FMA", "UMLS", "MDC")
"""Schemes whose PS3.16 concepts pydicom ships (public API: ``pydicom.sr.codedict``)."""

STANDARD_SCHEMES: Final = frozenset(
    {*TABLE_SCHEMES, "SRT", "SNM3", "99SDM", "ACR", "BI", "BARI", "I10", "I9C", "ICD10",
     "MSH", "RXNORM", "NEU", "NDC", "ITIS_TSN", "PUBCHEM_CID", "IBSI", "HL7", "ISO3166_1",
     "ISO639_2", "DCMUID", "NCDR", "NICIP"}
)
"""Designators of internationally registered schemes (PS3.16 Table 8-1)."""

CODE_VALUE_KEYWORDS: Final = ("CodeValue", "LongCodeValue", "URNCodeValue")
_CODE_SHAPE: Final = re.compile(r"^[A-Za-z0-9._\-:/]{1,64}$")
_DATE_SHAPE: Final = re.compile(r"(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])")


@functools.cache
def _table() -> Mapping[tuple[str, str], str]:
    """(scheme, value) -> meaning for every concept pydicom ships; built once (~0.5 s)."""
    out: dict[tuple[str, str], str] = {}
    for scheme in TABLE_SCHEMES:
        for code in Collection(scheme).concepts.values():
            out[(code.scheme_designator, str(code.value))] = str(code.meaning)
    return out


def standard_meaning(scheme: str, value: str) -> str | None:
    """The meaning PS3.16 gives ``value`` in ``scheme``, or ``None`` if it is not known."""
    if scheme == "SRT":
        scheme = "SCT"
    return _table().get((scheme, value))


def _looks_like_code(value: str) -> bool:
    text = value.strip()
    return (
        bool(_CODE_SHAPE.match(text))
        and normalise_nhs_number(text) is None
        and not _DATE_SHAPE.search(text)
    )


_TAGS: Final[Mapping[str, BaseTag]] = {
    k: Tag(k) for k in (*CODE_VALUE_KEYWORDS, "CodeMeaning", "CodingSchemeDesignator")
}


def clean_code_item(item: Dataset) -> dict[BaseTag, str]:
    """Replacement values for the code attributes of ``item`` (empty if it is no code).

    The caller writes each returned value in place of the original; attributes not in
    the result follow the profile as usual.
    """
    if not any(k in item for k in _TAGS):
        return {}
    scheme = _string(item, "CodingSchemeDesignator")
    values = {k: _string(item, k) for k in CODE_VALUE_KEYWORDS if k in item}
    meaning = _string(item, "CodeMeaning") if "CodeMeaning" in item else None
    out: dict[BaseTag, str] = {}
    if scheme in STANDARD_SCHEMES:
        known = None
        for keyword, value in values.items():
            known = known or standard_meaning(scheme, value)
            if not (standard_meaning(scheme, value) or _looks_like_code(value)):
                out[_TAGS[keyword]] = DUMMY_TEXT
        if meaning is not None and not (
            is_safe_descriptor(meaning) or (known and meaning.lower() == known.lower())
        ):
            out[_TAGS["CodeMeaning"]] = known or DUMMY_TEXT
        return out
    if "CodingSchemeDesignator" in item:
        out[_TAGS["CodingSchemeDesignator"]] = LOCAL_SCHEME
    for keyword, value in values.items():
        if not is_safe_descriptor(value):
            out[_TAGS[keyword]] = DUMMY_TEXT
    if meaning is not None and not is_safe_descriptor(meaning):
        out[_TAGS["CodeMeaning"]] = DUMMY_TEXT
    return out


def _string(item: Dataset, keyword: str) -> str:
    try:
        value = item.get(keyword)
    except Exception:  # noqa: BLE001 - an unreadable code attribute reads as empty
        return ""
    return "" if value is None else str(value).strip()
