"""Marks read back from SRs: ours round-trip exactly; others map what they can."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from omipacs.annotations.codes import FindingKind, Pathology, local
from omipacs.annotations.records import MarkInput
from omipacs.annotations.sr_read import SrMark, SrReadError, bounding_box, read_marks
from omipacs.annotations.sr_write import PlannedMark, build_marks_sr
from tests.annotations.builders import READER
from tests.annotations.sr_builders import (
    header,
    inferred_group,
    planar_group,
    viewer_sr,
)
from tests.annotations.test_sr_write import FULL, mark_on


def as_stored(mark: MarkInput, pathology: Pathology | None) -> dict[str, Any]:
    """What must come back from the SR, field by field."""
    return {
        "image_sop_uid": mark.sop_uid,
        "frame": mark.frame,
        "box": mark.box,
        "omidb_mark_id": mark.mark_id,
        "conspicuity": mark.conspicuity.value if mark.conspicuity else None,
        "mass_class": mark.mass_class.value if mark.mass_class else None,
        "benign_class": mark.benign_class.value if mark.benign_class else None,
        "features": mark.features,
        "lesion_numbers": mark.lesion_numbers,
        "pathology": pathology.value if pathology else None,
        "reader": mark.reader,
        "finding_kind": mark.finding_kind,
        "graphic_type": "POLYLINE",
        "extra": {},
    }


def as_read(mark: SrMark) -> dict[str, Any]:
    return {
        "image_sop_uid": mark.image_sop_uid,
        "frame": mark.frame,
        "box": mark.box,
        "omidb_mark_id": mark.omidb_mark_id,
        "conspicuity": mark.conspicuity,
        "mass_class": mark.mass_class,
        "benign_class": mark.benign_class,
        "features": mark.features,
        "lesion_numbers": mark.lesion_numbers,
        "pathology": mark.pathology,
        "reader": mark.reader,
        "finding_kind": mark.finding_kind,
        "graphic_type": mark.graphic_type,
        "extra": mark.extra,
    }


ROUND_TRIPS: list[tuple[bool, list[dict[str, Any]], Pathology | None]] = [
    (False, [FULL], Pathology.MALIGNANT),
    (False, [{"X1": 0.5, "Y1": 1.25, "X2": 47.75, "Y2": 63.999}], None),
    (True, [{"FrameNumber": 1}, {"FrameNumber": 5, "MarkID": 8, "Conspicuity": "Occult"}],
     Pathology.BENIGN),
    (False, [{"Reader": None, "MarkID": None, "Conspicuity": "not_recalled"}], None),
    (False, [{"MassClassification": m, "MarkID": i} for i, m in enumerate(
        ["ill_defined", "spiculated", "well_defined", "other", "unknown", "lucent-centred",
         "coarse_or_popcorn-like", "egg_shell_or_rim"])], None),
    (False, [{"BenignClassification": b, "Mass": None, "MarkID": i} for i, b in enumerate(
        ["coarse_or_popcorn-like", "egg_shell_or_rim", "lucent-centred", "rod-like",
         "round_and_punctate"])], None),
    (False, [{key: 1, "Mass": None, "MarkID": i} for i, key in enumerate(
        ["ArchitecturalDistortion", "FocalAsymmetry", "SuspiciousCalcifications",
         "Dystrophic", "FatNecrosis"])], None),
]


@pytest.mark.parametrize(("dbt", "fields", "pathology"), ROUND_TRIPS)
def test_marks_sr_marks_is_the_identity(
    dbt: bool, fields: list[dict[str, Any]], pathology: Pathology | None
) -> None:
    image = header(dbt=dbt)
    marks = [mark_on(image, **f) for f in fields]
    sr = build_marks_sr(image, [PlannedMark(m, pathology) for m in marks])
    read = read_marks(sr)
    expected = sorted((as_stored(m, pathology) for m in marks), key=repr)
    assert sorted((as_read(m) for m in read), key=repr) == expected
    assert all(m.image_sop_class_uid == image.SOPClassUID for m in read)
    assert len({m.tracking_uid for m in read}) == len(marks)


def test_the_finding_type_follows_the_features() -> None:
    image = header()
    cases: dict[FindingKind, dict[str, Any]] = {
        FindingKind.MASS_WITH_CALCIFICATION: {"WithCalcification": 1},
        FindingKind.MASS: {},
        FindingKind.CALCIFICATION_CLUSTER: {"SuspiciousCalcifications": 1},
        FindingKind.ARCHITECTURAL_DISTORTION: {"ArchitecturalDistortion": 1},
        FindingKind.FOCAL_ASYMMETRY: {"FocalAsymmetry": 1},
        FindingKind.CALCIFICATION: {"Vascular": 1},
        FindingKind.FINDING: {"Conspicuity": "Obvious"},
    }
    for kind, fields in cases.items():
        mass: dict[str, Any] = (
            {"Mass": 1, "MassClassification": "spiculated"} if "mass" in kind else {}
        )
        mark = mark_on(image, **mass, **fields)
        (read,) = read_marks(build_marks_sr(image, [PlannedMark(mark)]))
        assert read.finding_kind is kind and mark.finding_kind is kind


# -- geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("graphic_type", "points", "box"),
    [
        ("POLYLINE", [[5, 6], [20, 6], [20, 30], [5, 30], [5, 6]], (5, 6, 20, 30)),
        ("POLYLINE", [[20, 30], [5, 30], [5, 6], [20, 6]], (5, 6, 20, 30)),  # 4 points
        ("POINT", [[7.5, 8.5]], (7.5, 8.5, 7.5, 8.5)),
        ("MULTIPOINT", [[1, 9], [4, 2], [3, 3]], (1, 2, 4, 9)),
        ("CIRCLE", [[10, 10], [13, 14]], (5, 5, 15, 15)),
        ("ELLIPSE", [[0, 10], [20, 10], [10, 6], [10, 14]], (0, 6, 20, 14)),
    ],
)
def test_bounding_boxes(graphic_type: str, points: list[list[float]],
                        box: tuple[float, float, float, float]) -> None:
    assert bounding_box(graphic_type, np.array(points, dtype=float)) == pytest.approx(box)


def test_a_rotated_ellipse_is_bounded_by_its_extent() -> None:
    # major axis 10 along the diagonal, minor axis 4 across it, centred on (50, 50)
    a, b = 5 / math.sqrt(2), 2 / math.sqrt(2)
    pts = [[50 - a, 50 - a], [50 + a, 50 + a], [50 + b, 50 - b], [50 - b, 50 + b]]
    half = math.hypot(a, b)
    assert bounding_box("ELLIPSE", np.array(pts)) == pytest.approx(
        (50 - half, 50 - half, 50 + half, 50 + half))


@pytest.mark.parametrize(
    ("graphic_type", "points"),
    [("CIRCLE", [[1, 1]]), ("ELLIPSE", [[1, 1], [2, 2]]), ("POINT", [[float("nan"), 1]])],
)
def test_malformed_graphics_are_refused(graphic_type: str, points: list[list[float]]) -> None:
    with pytest.raises(SrReadError):
        bounding_box(graphic_type, np.array(points, dtype=float))


# -- other writers --------------------------------------------------------------------------


def test_a_viewer_report_maps_what_it_can_and_keeps_the_rest() -> None:
    image = header(dbt=True)
    groups = [
        planar_group(
            image, "Lesion A", "ELLIPSE", [[10, 20], [30, 20], [20, 15], [20, 25]], frame=4,
            evaluations=[
                (local("CONSPICUITY", "Conspicuity"), local("OBVIOUS", "Obvious")),
                (codes.DCM.Margins, codes.SCT.ObscuredLesion),
                (codes.DCM.CalcificationType, codes.SCT.PunctateCalcification),
            ],
        ),
        planar_group(image, "Lesion B", "POINT", [[3, 4]], frame=2,
                     finding=codes.SCT.Necrosis),
        inferred_group(image, "Length 1", [[1, 2], [11, 12]]),
    ]
    marks = {m.tracking_identifier: m for m in read_marks(viewer_sr(image, groups))}
    a, b, length = marks["Lesion A"], marks["Lesion B"], marks["Length 1"]
    assert (a.graphic_type, a.frame, a.box) == ("ELLIPSE", 4, (10, 15, 30, 25))
    assert a.conspicuity == "Obvious" and a.benign_class == "round_and_punctate"
    assert a.mass_class is None  # obscured is not an OMI-DB class: kept verbatim
    assert a.extra["evaluations"] == [{"name": ["DCM", "111037", "Margins"],
                                       "value": ["SCT", "129740002", "Obscured lesion"]}]
    assert a.reader == "Viewer^Reader" and a.omidb_mark_id is None
    assert a.finding_kind is FindingKind.MASS and a.finding_code == "SCT:129788004"
    assert (b.graphic_type, b.box, b.finding_kind) == ("POINT", (3, 4, 3, 4), FindingKind.OTHER)
    assert b.finding_code == "SCT:6574001"
    assert length.frame is None and length.box == (1, 2, 11, 12)
    assert length.extra["measurements"][0]["value"] == 12.5


def test_documents_without_marks_give_none() -> None:
    image = header()
    assert read_marks(image) == []  # not an SR
    sr = viewer_sr(image, [planar_group(image, "x", "POINT", [[1, 1]])])
    sr.ConceptNameCodeSequence[0].CodeValue = "18748-4"  # some other report
    del sr.ContentTemplateSequence
    assert read_marks(sr) == []


def test_an_unreadable_sr_raises_read_error() -> None:
    image = header()
    sr = viewer_sr(image, [planar_group(image, "x", "POINT", [[1, 1]])])
    broken = Dataset()
    broken.SOPClassUID = sr.SOPClassUID
    broken.ContentSequence = sr.ContentSequence
    with pytest.raises(SrReadError):
        read_marks(broken)


def test_a_report_without_its_template_id_is_still_read() -> None:
    image = header()
    sr = build_marks_sr(image, [PlannedMark(mark_on(image, Reader=READER))])
    del sr.ContentTemplateSequence
    (mark,) = read_marks(sr)
    assert mark.omidb_mark_id == "7" and mark.reader == READER
