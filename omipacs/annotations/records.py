"""OMI-DB mark records, read and checked into typed marks.

A record is one IMAGEDB mark (docs/data-model.md, "Marks": ``X1``, ``Y1``, ``X2``, ``Y2``,
``Conspicuity``, ``MassClassification``, ``BenignClassification``, the 13 feature flags,
``LinkedNBSSLesionNumber``, ``MarkID``) plus what IMAGEDB says by nesting: the image,
as ``StudyInstanceUID``, ``SeriesInstanceUID`` and ``SOPInstanceUID``, a
``FrameNumber`` for a tomosynthesis slice, and the ``Reader``. Flags follow omidb: a
flag is set by any non-empty value (IMAGEDB writes the flag's own name, or 1).

Everything that the SR cannot carry exactly is refused or normalised here, so that
marks -> SR -> marks is the identity: coordinates are rounded to 32-bit floats (SCOORD
Graphic Data is FL, PS3.3 C.18.6.1.2) and lesion numbers are written as plain
integers. Bounds against the image are checked by the importer, which knows the image.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np

from omipacs.annotations.codes import (
    FEATURE_KEYS,
    BenignClass,
    Conspicuity,
    FindingKind,
    MassClass,
    finding_kind_for,
)
from omipacs.dicom.uids import is_valid_uid
from omipacs.errors import InvalidRecord

IMAGE_KEYS: Final = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
BOX_KEYS: Final = ("X1", "Y1", "X2", "Y2")
IGNORED_KEYS: Final = frozenset({"Width", "Height", "LesionID"})
"""IMAGEDB fields with nothing to keep: the size follows from the box; ``LesionID`` is
an internal number of the source's marking tool."""
KNOWN_KEYS: Final = frozenset(
    {*IMAGE_KEYS, *BOX_KEYS, "FrameNumber", "MarkID", "Conspicuity", "MassClassification",
     "BenignClassification", "LinkedNBSSLesionNumber", "Reader", *FEATURE_KEYS.values()}
) | IGNORED_KEYS
READER_PSEUDONYM: Final = re.compile(r"^RDR[A-Z2-7]{12}$")
"""The form of :func:`omipacs.clinical.nbss.reader_pseudonym`."""
_FALSE_TEXT: Final = frozenset({"0", "N", "NO", "FALSE", "F"})
_E = TypeVar("_E", bound=StrEnum)


def fail(what: str) -> InvalidRecord:
    """The error for a record that cannot be imported."""
    return InvalidRecord(f"mark record: {what}")


@dataclass(frozen=True)
class MarkInput:
    """One checked mark on one image, as the archive stores it.

    Coordinates are (column, row) image pixel positions, normalised to minimum and
    maximum whatever the order of X1/X2 and Y1/Y2.
    """

    study_uid: str
    series_uid: str
    sop_uid: str
    col_min: float
    row_min: float
    col_max: float
    row_max: float
    frame: int | None = None
    mark_id: str | None = None
    conspicuity: Conspicuity | None = None
    mass_class: MassClass | None = None
    benign_class: BenignClass | None = None
    features: frozenset[str] = field(default_factory=frozenset)
    lesion_numbers: tuple[str, ...] = ()
    reader: str = ""

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(col_min, row_min, col_max, row_max)``."""
        return (self.col_min, self.row_min, self.col_max, self.row_max)

    @property
    def finding_kind(self) -> FindingKind:
        """The finding type the SR gives this mark."""
        return finding_kind_for(
            self.features,
            self.mass_class.value if self.mass_class else None,
            self.benign_class.value if self.benign_class else None,
        )

    def canonical(self) -> dict[str, Any]:
        """Every stored field, JSON-ready and in a fixed form (for hashing and order)."""
        return {
            "sop_uid": self.sop_uid,
            "frame": self.frame,
            "box": list(self.box),
            "mark_id": self.mark_id,
            "conspicuity": self.conspicuity.value if self.conspicuity else None,
            "mass_class": self.mass_class.value if self.mass_class else None,
            "benign_class": self.benign_class.value if self.benign_class else None,
            "features": sorted(self.features),
            "lesion_numbers": list(self.lesion_numbers),
            "reader": self.reader,
        }

    def sort_key(self) -> tuple[Any, ...]:
        """Marks of one SR are written in this order, whatever the input order."""
        return (
            self.frame or 0,
            self.mark_id is None,
            _natural(self.mark_id or ""),
            self.box,
            repr(self.canonical()),
        )


def _natural(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (1 << 62, text)


# -- field readers -------------------------------------------------------------------------


def _uid(record: Mapping[str, Any], name: str, uid_map: Callable[[str], str] | None) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not is_valid_uid(value.strip()):
        raise fail(f"{name} is missing or not a UID")
    uid = value.strip()
    return uid_map(uid) if uid_map is not None else uid


def _coordinate(record: Mapping[str, Any], name: str) -> float:
    value = record.get(name)
    if isinstance(value, bool) or value is None:
        raise fail(f"{name} is missing or not a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise fail(f"{name} is not a number") from None
    if not math.isfinite(number):
        raise fail(f"{name} is not a finite number")
    if number < 0:
        raise fail(f"{name} is negative")
    return float(np.float32(number))


def _frame(record: Mapping[str, Any]) -> int | None:
    value = record.get("FrameNumber")
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise fail("FrameNumber is not a positive whole number")
    text = str(value).strip()
    if not text.isdigit() or len(text) > 6 or int(text) < 1:
        raise fail("FrameNumber is not a positive whole number")
    return int(text)


def _enum(record: Mapping[str, Any], name: str, kind: type[_E]) -> _E | None:
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise fail(f"{name} is not text")
    wanted = value.strip().lower().replace(" ", "_")
    for member in kind:
        if member.value.lower() == wanted:
            return member
    allowed = ", ".join(m.value for m in kind)
    raise fail(f"{name} is not one of {allowed}")


def _flag(record: Mapping[str, Any], name: str) -> bool:
    value = record.get(name)
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        text = value.strip()
        return bool(text) and text.upper() not in _FALSE_TEXT
    raise fail(f"{name} is not a flag")


def _lesion_numbers(record: Mapping[str, Any]) -> tuple[str, ...]:
    value = record.get("LinkedNBSSLesionNumber")
    if value is None or value == "":
        return ()
    if isinstance(value, bool):
        raise fail("LinkedNBSSLesionNumber is not a list of lesion numbers")
    items: list[Any]
    if isinstance(value, int):
        items = [value]
    elif isinstance(value, str):
        items = [p for p in value.split(",") if p.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise fail("LinkedNBSSLesionNumber is not a list of lesion numbers")
    numbers: set[int] = set()
    for item in items:
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit() or len(text) > 6 or int(text) < 1:
            raise fail("LinkedNBSSLesionNumber holds something that is not a lesion number")
        numbers.add(int(text))
    return tuple(str(n) for n in sorted(numbers))


def _mark_id(record: Mapping[str, Any]) -> str | None:
    value = record.get("MarkID")
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise fail("MarkID is not a number or text")
    text = str(value).strip()
    if not text or len(text) > 32 or not text.isprintable():
        raise fail("MarkID must be 1 to 32 printable characters")
    return text


def _reader(record: Mapping[str, Any], reader_map: Callable[[str], str] | None) -> str:
    value = record.get("Reader")
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise fail("Reader is not a reader code")
    text = value.strip()
    if READER_PSEUDONYM.match(text):
        return text
    if reader_map is None:
        raise fail(
            "Reader is not a reader pseudonym (RDR...); the archive's keys are needed to "
            "pseudonymise reader codes"
        )
    return reader_map(text)


def parse_mark_record(
    record: Any,
    *,
    uid_map: Callable[[str], str] | None = None,
    reader_map: Callable[[str], str] | None = None,
) -> MarkInput:
    """Read one mark record (see the module notes).

    Parameters
    ----------
    record
        A decoded JSON object.
    uid_map
        Applied to the three image UIDs: the archive's UID remapping when the records
        name a site's (source) UIDs; ``None`` when they name archive UIDs.
    reader_map
        Turns a reader code into its pseudonym; without it the ``Reader`` must already
        be a pseudonym (``RDR`` and 12 base-32 characters) or absent.

    Raises
    ------
    InvalidRecord
        With the reason, for a malformed or incomplete record.
    """
    if not isinstance(record, Mapping):
        raise fail("not a JSON object")
    unknown = sorted(str(k) for k in record if k not in KNOWN_KEYS)
    if unknown:
        raise fail("unknown field " + ", ".join(unknown)[:120])
    study, series, sop = (_uid(record, name, uid_map) for name in IMAGE_KEYS)
    x1, y1, x2, y2 = (_coordinate(record, name) for name in BOX_KEYS)
    col_min, col_max = sorted((x1, x2))
    row_min, row_max = sorted((y1, y2))
    if col_min == col_max or row_min == row_max:
        raise fail("the box has no area (X1 equals X2 or Y1 equals Y2)")
    features = frozenset(
        column for column, source in FEATURE_KEYS.items() if _flag(record, source)
    )
    return MarkInput(
        study_uid=study,
        series_uid=series,
        sop_uid=sop,
        col_min=col_min,
        row_min=row_min,
        col_max=col_max,
        row_max=row_max,
        frame=_frame(record),
        mark_id=_mark_id(record),
        conspicuity=_enum(record, "Conspicuity", Conspicuity),
        mass_class=_enum(record, "MassClassification", MassClass),
        benign_class=_enum(record, "BenignClassification", BenignClass),
        features=features,
        lesion_numbers=_lesion_numbers(record),
        reader=_reader(record, reader_map),
    )


def records_from_imagedb(document: Any, *, reader: str = "") -> Iterator[dict[str, Any]]:
    """Flatten an OMI-DB IMAGEDB document into mark records.

    IMAGEDB nests marks as ``STUDIES -> study UID -> series UID -> SOP UID -> mark key
    -> mark``; series and image keys are the UID-shaped keys.
    The UIDs are the source's: import them with ``source_uids=True``.
    """
    if not isinstance(document, Mapping):
        raise fail("an IMAGEDB document is a JSON object")
    studies = document.get("STUDIES")
    if not isinstance(studies, Mapping):
        return
    for study_uid, study in studies.items():
        if not isinstance(study, Mapping):
            continue
        for series_uid, series in study.items():
            if not (isinstance(series, Mapping) and is_valid_uid(series_uid)):
                continue
            for sop_uid, image in series.items():
                if not (isinstance(image, Mapping) and is_valid_uid(sop_uid)):
                    continue
                for mark in image.values():
                    if not isinstance(mark, Mapping):
                        continue
                    record: dict[str, Any] = {
                        "StudyInstanceUID": study_uid,
                        "SeriesInstanceUID": series_uid,
                        "SOPInstanceUID": sop_uid,
                        **{k: v for k, v in mark.items() if k in KNOWN_KEYS},
                    }
                    if reader and "Reader" not in record:
                        record["Reader"] = reader
                    yield record


@dataclass(frozen=True)
class MarkFile:
    """The mark records of one file, and whether they name the site's UIDs."""

    records: list[Any]
    source_uids: bool
    """True for an IMAGEDB document (the site's UIDs, remapped on import)."""


def load_mark_file(path: Path) -> MarkFile:
    """Read mark records from a JSON file, whatever its layout.

    Accepted: an OMI-DB IMAGEDB document (``{"STUDIES": ...}``, source UIDs); a list
    of records; ``{"records": [...], "source_uids": bool}``; a single record; or JSON
    Lines (``.jsonl``/``.ndjson``, one record per line).

    Raises
    ------
    InvalidRecord
        The file is not JSON or has none of these layouts.
    """
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            return MarkFile([json.loads(line) for line in text.splitlines() if line.strip()],
                            False)
        document = json.loads(text)
    except ValueError:
        raise fail(f"{path.name} is not valid JSON") from None
    if isinstance(document, list):
        return MarkFile(document, False)
    if isinstance(document, Mapping) and "STUDIES" in document:
        return MarkFile(list(records_from_imagedb(document)), True)
    if isinstance(document, Mapping) and isinstance(document.get("records"), list):
        return MarkFile(list(document["records"]), bool(document.get("source_uids", False)))
    if isinstance(document, Mapping):
        return MarkFile([document], False)
    raise fail(f"{path.name} holds no mark records")
