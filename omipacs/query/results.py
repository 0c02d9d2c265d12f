"""Index values to DICOM JSON elements (PS3.18 Annex F), converted by pydicom.

Values come from index columns, typed by SQLAlchemy (dates, integers, floats, text),
or, for an attribute gathered from the rows below a match (ModalitiesInStudy,
``Modality`` at study level), as the distinct values joined by ``\\`` in the database.
Either way the element is built as a pydicom ``DataElement`` and pydicom writes its
JSON, so VR-specific rules (PN as ``{"Alphabetic": ...}``, IS and DS as numbers, no
``Value`` when empty, PS3.18 §F.2.5) are pydicom's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.valuerep import DSfloat

from omipacs.query.attributes import Attribute, leaves

_NO_BULK = 1 << 62
_INT_VRS = frozenset({"IS", "US", "SS", "UL", "SL"})


def _scalar(vr: str, value: Any) -> Any:
    """One value as pydicom wants it for ``vr``; None when there is none."""
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    if vr in _INT_VRS:
        return int(value)
    if vr == "DS":
        return str(DSfloat(float(value), auto_format=True))
    return str(value)


def _from_text(vr: str, text: str) -> Any:
    """A value read back from its text form (an aggregate casts every value to text)."""
    if vr == "DA" and len(text) == 10 and text[4] == "-":
        return text.replace("-", "")
    if vr in _INT_VRS:
        return int(float(text))
    if vr == "DS":
        return float(text)
    return text


def _values(attr: Attribute, value: Any, aggregated: bool) -> list[Any]:
    """The list of values of one attribute (empty when there are none)."""
    if value is None or value == "":
        return []
    if aggregated:
        parts = str(value).split("\\")
        typed = sorted(dict.fromkeys(_from_text(attr.vr, p) for p in parts if p != ""))
        return [_scalar(attr.vr, v) for v in typed]
    # A multi-valued column keeps DICOM's "\\" between values (empty ones included);
    # pydicom splits it as it would a value read from a file.
    return [str(value) if attr.multi else _scalar(attr.vr, value)]


def element_json(attr: Attribute, value: Any, *, aggregated: bool = False) -> dict[str, Any]:
    """The DICOM JSON element of a simple (non-sequence) attribute."""
    if attr.constant is not None:
        value = attr.constant
    values = _values(attr, value, aggregated)
    elem_value: Any = None if not values else values[0] if len(values) == 1 else values
    elem = DataElement(attr.tag, attr.vr, elem_value, validation_mode=config.IGNORE)
    result: dict[str, Any] = elem.to_json_dict(None, _NO_BULK)
    return result


def _item(
    attr: Attribute, paths: Sequence[tuple[Attribute, ...]], values: Sequence[Any]
) -> Dataset | None:
    """The single item of a sequence attribute, or None when none of its values is set."""
    item = Dataset()
    for path, value in zip(paths, values, strict=True):
        if value is None or value == "":
            continue
        target = item
        for seq in path[1:-1]:
            if seq.keyword not in target:
                target.add(DataElement(seq.tag, "SQ", DicomSequence([Dataset()])))
            target = target[seq.tag].value[0]
        leaf = path[-1]
        target.add(
            DataElement(leaf.tag, leaf.vr, _scalar(leaf.vr, value), validation_mode=config.IGNORE)
        )
    return item if len(item) else None


def sequence_json(attr: Attribute, values: Sequence[Any]) -> dict[str, Any]:
    """The DICOM JSON element of a sequence whose item holds the given leaf values."""
    item = _item(attr, leaves(attr), values)
    if item is None:
        return {"vr": "SQ"}  # an empty sequence has no Value (PS3.18 §F.2.5)
    elem = DataElement(attr.tag, "SQ", DicomSequence([item]))
    result: dict[str, Any] = elem.to_json_dict(None, _NO_BULK)
    return result
