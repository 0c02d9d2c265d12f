"""Keep unmodelled NBSS fields without letting identity or free text through.

NBSS exports carry more fields than the clinical tables model (needle specimen type,
localisation, recommended actions, ...). They are kept in ``raw`` JSON columns so no
clinical fact is lost, but only after the same treatment the modelled fields get
(docs/deidentification.md):

* a field whose *name* suggests identity or free text (notes, comments, names,
  addresses, NHS or hospital numbers, birth dates, GP details) is dropped;
* a value that is a date (by its field name or its shape) is shifted by the client's
  offset, and a field naming a year is dropped, since a true year undoes the shift;
* a string that reads as prose (more than three words or 32 characters) or holds a long
  run of digits (a telephone, NHS or hospital number) is dropped.

Only fields on an allow-list (``[deid] clinical_fields``) are considered at all: a field
nobody has reviewed (a GP's name under an unexpected key, a radiographer, a place) is
dropped whatever it holds. What remains are codes, flags and numbers. The rules err
towards dropping: a lost code can be re-imported once modelled, a leaked note cannot be
recalled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Final

DROP_KEY: Final = re.compile(
    r"note|comment|text|remark|name|address|post.?code|phone|e.?mail|"
    r"nhs|birth|dob|\bgp|gp_|surname|forename|local.?id|patient.?id|hospital|"
    r"client.?id|mrn|accession|signature|consultant|clinician|radiologist|surgeon",
    re.IGNORECASE,
)
"""Field names whose values are dropped whatever they hold."""
_YEAR_KEY: Final = re.compile(r"year", re.IGNORECASE)
_DATE_KEY: Final = re.compile(r"date|dt$|when", re.IGNORECASE)
_DIGIT_RUN: Final = re.compile(r"\d{7,}")
_SPACE: Final = re.compile(r"\s+")
MAX_CODE_CHARS: Final = 32
MAX_CODE_WORDS: Final = 3

_FORMATS: Final = ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%Y/%m/%d", "%d-%m-%Y", "%d.%m.%Y")


def parse_date(value: object) -> date | None:
    """A date from the formats NBSS exports use, or ``None`` if ``value`` is not one.

    ISO dates (optionally with a time, which is discarded), ``YYYYMMDD``, and the UK
    ``DD/MM/YYYY`` are read; ``datetime.date`` values pass through.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) > 10 and text[10] in "T ":
        text = text[:10]
    if len(text) not in (8, 10):
        return None
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def looks_like_free_text(value: str) -> bool:
    """True for prose or identifier-like strings that must not be kept."""
    text = value.strip()
    if len(text) > MAX_CODE_CHARS or len(_SPACE.split(text)) > MAX_CODE_WORDS:
        return True
    return bool(_DIGIT_RUN.search(text))


class Sanitizer:
    """Cleans unmodelled values for one client; counts what it dropped.

    Parameters
    ----------
    shift
        The client's date shift (a function of the parsed true date).
    keep_fields
        Field names that may be kept at all (an allow-list); any other is dropped.
    """

    def __init__(self, shift: Callable[[date], date],
                 keep_fields: frozenset[str] = frozenset()) -> None:
        self.shift = shift
        self.keep_fields = keep_fields
        self.dropped = 0

    def mapping(self, data: dict[str, Any], skip: frozenset[str] = frozenset()) -> dict[str, Any]:
        """A cleaned copy of ``data`` without the (modelled) keys in ``skip``."""
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in skip:
                continue
            keep, cleaned = self.value(str(key), value)
            if keep:
                out[str(key)] = cleaned
        return out

    def value(self, key: str, value: Any) -> tuple[bool, Any]:
        """(keep, cleaned value) for one field."""
        if key not in self.keep_fields or DROP_KEY.search(key) or _YEAR_KEY.search(key):
            self.dropped += 1
            return False, None
        if value is None or isinstance(value, bool):
            return True, value
        if isinstance(value, int | float):
            if _DATE_KEY.search(key):
                return self._date(str(int(value)) if isinstance(value, int) else "")
            return True, value
        if isinstance(value, str):
            return self._string(key, value)
        if isinstance(value, list):
            items = []
            for item in value:
                keep, cleaned = self.value(key, item)
                if keep:
                    items.append(cleaned)
            return True, items
        if isinstance(value, dict):
            return True, self.mapping(value)
        self.dropped += 1
        return False, None

    def _date(self, text: str) -> tuple[bool, Any]:
        parsed = parse_date(text)
        if parsed is None:
            self.dropped += 1
            return False, None
        return True, self.shift(parsed).isoformat()

    def _string(self, key: str, value: str) -> tuple[bool, Any]:
        text = value.strip()
        if not text:
            return True, ""
        if _DATE_KEY.search(key) or parse_date(text) is not None:
            return self._date(text)
        if looks_like_free_text(text):
            self.dropped += 1
            return False, None
        return True, text
