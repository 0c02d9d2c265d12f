"""Read the marks back out of a Measurement Report (TID 1500), whoever wrote it.

The document is loaded with highdicom (``Comprehensive3DSR.from_dataset`` and friends,
or ``MeasurementReport.from_sequence`` when the root container is an Imaging
Measurement Report without a template identifier). Each measurement group (TID 1410
planar ROI, or TID 1501 image measurements as some viewers write them) gives one mark
per image (and frame) it draws on:

* geometry: the group's Image Region, or failing that every SCOORD inside the group
  (a viewer's length or area measurement is *inferred from* its SCOORD). The mark's box
  is the bounding box of the graphic: a 4- or 5-point POLYLINE box is the box itself,
  POINT/MULTIPOINT/POLYLINE/POLYGON the extent of their points, a CIRCLE its centre
  +/- radius, an ELLIPSE the extent of its two axes (PS3.3 C.18.6.1.2); the graphic
  type is kept. 3D coordinates (SCOORD3D) have no image box and are skipped.
* coded evaluations map back to the mark fields (:func:`codes.decode_evaluation`);
  anything else (other evaluations, measurements, unusual finding sites, extra
  graphics) is kept verbatim in ``extra``.
* the observer is the Person Observer Name of the report's observation context.

Reading never guesses: an unreadable document raises :class:`SrReadError` (the
indexer logs it and moves on), a group without a 2D graphic is skipped.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    Comprehensive3DSRStorage,
    ComprehensiveSRStorage,
    EnhancedSRStorage,
)

from omipacs.annotations.codes import (
    FINDING_KINDS,
    CodeKey,
    FindingKind,
    decode_evaluation,
)
from omipacs.annotations.sr_write import TRACKING_PREFIX

log = logging.getLogger(__name__)

SR_CLASSES: Final[dict[str, Any]] = {
    EnhancedSRStorage: hd.sr.EnhancedSR,
    ComprehensiveSRStorage: hd.sr.ComprehensiveSR,
    Comprehensive3DSRStorage: hd.sr.Comprehensive3DSR,
}
"""SR SOP classes whose documents can hold planar ROIs (SCOORD): Enhanced,
Comprehensive and Comprehensive 3D SR (PS3.3 A.35.2, A.35.3, A.35.13)."""
IMAGING_MEASUREMENT_REPORT: Final = CodeKey("DCM", "126000")
MEASUREMENT_GROUP: Final = CodeKey("DCM", "125007")
PERSON_OBSERVER_NAME: Final = CodeKey("DCM", "121008")
FINDING_CATEGORY_NAME: Final = CodeKey("SCT", "276214006")
BREAST: Final = CodeKey("SCT", "76752008")
_MARK_ID: Final = re.compile(rf"^{re.escape(TRACKING_PREFIX)}(.{{1,32}})$")


class SrReadError(ValueError):
    """The SR document cannot be read as a measurement report."""


@dataclass(frozen=True)
class SrMark:
    """One mark read from an SR."""

    image_sop_uid: str
    image_sop_class_uid: str
    frame: int | None
    graphic_type: str
    col_min: float
    row_min: float
    col_max: float
    row_max: float
    tracking_identifier: str = ""
    tracking_uid: str = ""
    omidb_mark_id: str | None = None
    finding_kind: FindingKind = FindingKind.FINDING
    finding_code: str = ""
    """``scheme:value`` of the finding type, "" without one."""
    finding_meaning: str = ""
    conspicuity: str | None = None
    mass_class: str | None = None
    benign_class: str | None = None
    features: frozenset[str] = field(default_factory=frozenset)
    lesion_numbers: tuple[str, ...] = ()
    pathology: str | None = None
    reader: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.col_min, self.row_min, self.col_max, self.row_max)


# -- geometry ------------------------------------------------------------------------------


def bounding_box(graphic_type: str, points: np.ndarray) -> tuple[float, float, float, float]:
    """The (col_min, row_min, col_max, row_max) extent of a 2D SCOORD graphic.

    Raises
    ------
    SrReadError
        For a graphic with the wrong number of points or non-finite values.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if pts.size == 0 or not np.all(np.isfinite(pts)):
        raise SrReadError("a graphic has no points or non-finite coordinates")
    if graphic_type == "CIRCLE":
        if len(pts) != 2:
            raise SrReadError("a CIRCLE has two points")
        (cx, cy), edge = pts[0], pts[1]
        r = float(math.hypot(*(edge - pts[0])))
        return (float(cx) - r, float(cy) - r, float(cx) + r, float(cy) + r)
    if graphic_type == "ELLIPSE":
        if len(pts) != 4:
            raise SrReadError("an ELLIPSE has four points")
        centre = (pts[0] + pts[1]) / 2
        a, b = (pts[1] - pts[0]) / 2, (pts[3] - pts[2]) / 2
        hx, hy = math.hypot(a[0], b[0]), math.hypot(a[1], b[1])
        return (float(centre[0] - hx), float(centre[1] - hy),
                float(centre[0] + hx), float(centre[1] + hy))
    low, high = pts.min(axis=0), pts.max(axis=0)
    return (float(low[0]), float(low[1]), float(high[0]), float(high[1]))


@dataclass(frozen=True)
class _Graphic:
    graphic_type: str
    box: tuple[float, float, float, float]
    sop_uid: str
    sop_class_uid: str
    frames: tuple[int, ...]


def _code_key(item: Dataset, keyword: str = "ConceptNameCodeSequence") -> CodeKey | None:
    seq = item.get(keyword)
    if not seq:
        return None
    code = seq[0]
    return CodeKey(str(code.get("CodingSchemeDesignator", "")), str(code.get("CodeValue", "")))


def _children(item: Dataset) -> Iterator[Dataset]:
    yield from item.get("ContentSequence", None) or []


def _walk(item: Dataset) -> Iterator[Dataset]:
    for child in _children(item):
        yield child
        yield from _walk(child)


def _graphic(scoord: Dataset) -> _Graphic | None:
    """The graphic of a SCOORD content item and the image it is selected from."""
    images = [c for c in _children(scoord) if str(c.get("ValueType", "")) == "IMAGE"]
    if not images or not images[0].get("ReferencedSOPSequence"):
        return None
    ref = images[0].ReferencedSOPSequence[0]
    graphic_type = str(scoord.get("GraphicType", ""))
    data = scoord.get("GraphicData")
    if data is None:
        return None
    frames_value = ref.get("ReferencedFrameNumber")
    if frames_value is None or frames_value == "":
        frames: tuple[int, ...] = ()
    elif isinstance(frames_value, int | str):
        frames = (int(frames_value),)
    else:
        frames = tuple(int(f) for f in frames_value)
    return _Graphic(
        graphic_type,
        bounding_box(graphic_type, np.array(data, dtype=np.float64)),
        str(ref.get("ReferencedSOPInstanceUID", "")),
        str(ref.get("ReferencedSOPClassUID", "")),
        frames,
    )


def _group_graphics(group: Any) -> list[_Graphic]:
    """The 2D graphics of a measurement group: its ROI, else any SCOORD inside it."""
    container = group[0]
    direct = [c for c in _children(container) if str(c.get("ValueType", "")) == "SCOORD"]
    items = direct or [c for c in _walk(container) if str(c.get("ValueType", "")) == "SCOORD"]
    out = []
    for item in items:
        graphic = _graphic(item)
        if graphic is not None and graphic.sop_uid:
            out.append(graphic)
    return out


# -- coded content ---------------------------------------------------------------------------


def _triple(code: Any) -> list[str]:
    return [str(code.scheme_designator), str(code.value), str(code.meaning)]


def _reader(report: Any) -> str:
    for item in _children(report[0]):
        if _code_key(item) == PERSON_OBSERVER_NAME and item.get("PersonName"):
            return str(item.PersonName).strip("^ ")
    return ""


@dataclass
class _Fields:
    conspicuity: str | None = None
    mass_class: str | None = None
    benign_class: str | None = None
    pathology: str | None = None
    features: set[str] = field(default_factory=set)
    lesion_numbers: set[str] = field(default_factory=set)
    unmapped: list[dict[str, list[str]]] = field(default_factory=list)


def _decode(group: Any) -> _Fields:
    fields = _Fields()
    for evaluation in group.get_qualitative_evaluations():
        name, value = evaluation.name, evaluation.value
        name_key = CodeKey(str(name.scheme_designator), str(name.value))
        if name_key == FINDING_CATEGORY_NAME:
            continue
        decoded = decode_evaluation(
            name_key, CodeKey(str(value.scheme_designator), str(value.value))
        )
        target = decoded.field if decoded else ""
        if target == "feature":
            fields.features.add(decoded.value)  # type: ignore[union-attr]
        elif target == "lesion_number":
            fields.lesion_numbers.add(decoded.value)  # type: ignore[union-attr]
        elif target and getattr(fields, target) is None:
            setattr(fields, target, decoded.value)  # type: ignore[union-attr]
        else:
            fields.unmapped.append({"name": _triple(name), "value": _triple(value)})
    return fields


def _extra(group: Any, fields: _Fields, graphics: list[_Graphic]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if fields.unmapped:
        extra["evaluations"] = fields.unmapped
    measurements = []
    for m in group.get_measurements():
        unit = m.unit
        measurements.append({
            "name": _triple(m.name),
            "value": float(m.value) if m.value is not None else None,
            "unit": _triple(unit) if unit is not None else None,
        })
    if measurements:
        extra["measurements"] = measurements
    sites = []
    for site in group.finding_sites:
        laterality = site.laterality
        if _code_key_of(site.value) != BREAST:
            sites.append({"site": _triple(site.value),
                          "laterality": _triple(laterality) if laterality else None})
    if sites:
        extra["finding_sites"] = sites
    if len(graphics) > 1:
        extra["graphics"] = [
            {"graphic_type": g.graphic_type, "box": list(g.box), "frames": list(g.frames)}
            for g in graphics
        ]
    return extra


def _code_key_of(code: Any) -> CodeKey:
    return CodeKey(str(code.scheme_designator), str(code.value))


def _report(sr: Any) -> Any | None:
    content = sr.content
    if isinstance(content, hd.sr.MeasurementReport):
        return content
    root = content[0] if len(content) else None
    if root is None or _code_key(root) != IMAGING_MEASUREMENT_REPORT:
        return None
    # An Imaging Measurement Report that does not name its template: read it as TID 1500.
    item = Dataset()
    item.ValueType = root.ValueType
    item.ConceptNameCodeSequence = root.ConceptNameCodeSequence
    item.ContinuityOfContent = root.get("ContinuityOfContent", "CONTINUOUS")
    item.ContentSequence = root.get("ContentSequence", [])
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "1500"
    item.ContentTemplateSequence = [template]
    return hd.sr.MeasurementReport.from_sequence([item], copy=False)


def _groups(report: Any) -> list[Any]:
    groups: list[Any] = list(report.get_planar_roi_measurement_groups())
    groups += list(report.get_image_measurement_groups())
    return groups


def read_marks(ds: Dataset) -> list[SrMark]:
    """The marks of an SR document (see the module notes); ``[]`` if it has none.

    Raises
    ------
    SrReadError
        The document is of an SR class that can hold marks but cannot be read.
    """
    cls = SR_CLASSES.get(str(ds.get("SOPClassUID", "")))
    if cls is None:
        return []
    try:
        sr = cls.from_dataset(ds, copy=True)
        report = _report(sr)
        if report is None:
            return []
        groups = _groups(report)
        reader = _reader(report)
    except Exception as exc:  # highdicom raises many types for malformed content
        raise SrReadError(f"not a readable measurement report ({type(exc).__name__})") from exc
    marks: list[SrMark] = []
    for index, group in enumerate(groups):
        try:
            marks.extend(_group_marks(group, reader))
        except Exception as exc:
            log.warning("SR measurement group %d skipped: %s", index, type(exc).__name__)
    return marks


def _group_marks(group: Any, reader: str) -> list[SrMark]:
    graphics = _group_graphics(group)
    if not graphics:
        return []
    fields = _decode(group)
    finding = group.finding_type
    if finding is None:
        kind, code, meaning = FindingKind.FINDING, "", ""
    else:
        finding_key = _code_key_of(finding)
        kind = FINDING_KINDS.get(finding_key, FindingKind.OTHER)
        code, meaning = f"{finding_key.scheme}:{finding_key.value}", str(finding.meaning)
    tracking = str(group.tracking_identifier or "")
    matched = _MARK_ID.match(tracking)
    extra = _extra(group, fields, graphics)
    # One mark per image and frame the group draws on (almost always exactly one).
    by_target: dict[tuple[str, int | None], list[_Graphic]] = {}
    for graphic in graphics:
        for frame in graphic.frames or (None,):
            by_target.setdefault((graphic.sop_uid, frame), []).append(graphic)
    marks = []
    for (sop_uid, frame), found in by_target.items():
        boxes = np.array([g.box for g in found])
        marks.append(SrMark(
            image_sop_uid=sop_uid,
            image_sop_class_uid=found[0].sop_class_uid,
            frame=frame,
            graphic_type=found[0].graphic_type,
            col_min=float(boxes[:, 0].min()),
            row_min=float(boxes[:, 1].min()),
            col_max=float(boxes[:, 2].max()),
            row_max=float(boxes[:, 3].max()),
            tracking_identifier=tracking,
            tracking_uid=str(group.tracking_uid or ""),
            omidb_mark_id=matched.group(1) if matched else None,
            finding_kind=kind,
            finding_code=code,
            finding_meaning=meaning[:64],
            conspicuity=fields.conspicuity,
            mass_class=fields.mass_class,
            benign_class=fields.benign_class,
            features=frozenset(fields.features),
            lesion_numbers=tuple(sorted(fields.lesion_numbers, key=_lesion_order)),
            pathology=fields.pathology,
            reader=reader,
            extra=extra,
        ))
    return marks


def _lesion_order(number: str) -> tuple[int, str]:
    return (int(number), "") if number.isdigit() else (1 << 62, number)
