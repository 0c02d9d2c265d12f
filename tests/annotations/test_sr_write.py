"""The SRs written from marks: valid for dcmtk and highdicom, and deterministic."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import highdicom as hd
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import Comprehensive3DSRStorage

from omipacs.annotations.codes import Pathology
from omipacs.annotations.records import MarkInput, parse_mark_record
from omipacs.annotations.sr_write import (
    SERIES_NUMBER,
    PlannedMark,
    build_marks_sr,
    content_datetime,
    sr_identity,
    tracking_uid,
    write_sr,
)
from tests.annotations.builders import READER
from tests.annotations.sr_builders import header


def mark_on(image: Dataset, **fields: Any) -> MarkInput:
    base: dict[str, Any] = {
        "StudyInstanceUID": str(image.StudyInstanceUID),
        "SeriesInstanceUID": str(image.SeriesInstanceUID),
        "SOPInstanceUID": str(image.SOPInstanceUID),
        "X1": 5, "Y1": 6, "X2": 20, "Y2": 30, "MarkID": 7, "Reader": READER,
    }
    base.update(fields)
    return parse_mark_record({k: v for k, v in base.items() if v is not None})


FULL = {"Conspicuity": "Very_subtle", "MassClassification": "lucent-centred",
        "BenignClassification": "round_and_punctate", "LinkedNBSSLesionNumber": "3,1",
        "ArchitecturalDistortion": 1, "Dystrophic": 1, "FatNecrosis": 1, "FocalAsymmetry": 1,
        "Mass": 1, "SuspiciousCalcifications": 1, "MilkOfCalcium": 1, "OtherBenignCluster": 1,
        "PlasmaCellMastitis": 1, "Skin": 1, "WithCalcification": 1, "SutureCalcification": 1,
        "Vascular": 1}


def scenarios() -> list[tuple[str, bool, list[dict[str, Any]], Pathology | None]]:
    return [
        ("one 2D mass", False, [{"Mass": 1, "MassClassification": "spiculated"}], None),
        ("DBT slice", True, [{"FrameNumber": 3, "Conspicuity": "Obvious"}], Pathology.BENIGN),
        ("no reader, no id", False, [{"Reader": None, "MarkID": None}], None),
        ("every field", False, [FULL], Pathology.MALIGNANT),
        ("three marks", False, [{"MarkID": 9}, {"MarkID": 10, "X2": 40},
                                {"MarkID": 11, "SuspiciousCalcifications": 1}], None),
    ]


@pytest.mark.parametrize(("name", "dbt", "fields", "pathology"), scenarios())
def test_dcmtk_and_highdicom_read_every_sr_we_write(
    tmp_path: Path, name: str, dbt: bool, fields: list[dict[str, Any]],
    pathology: Pathology | None,
) -> None:
    image = header(dbt=dbt)
    marks = [PlannedMark(mark_on(image, **f), pathology) for f in fields]
    path = tmp_path / "sr.dcm"
    write_sr(build_marks_sr(image, marks), path)

    dump = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    lines = (dump.stdout + dump.stderr).lower().splitlines()
    assert not [line for line in lines if "error" in line], name
    assert dump.stdout.count('"Measurement Group"') == len(marks)

    sr = hd.sr.srread(path)
    assert sr.SOPClassUID == Comprehensive3DSRStorage
    assert sr.StudyInstanceUID == image.StudyInstanceUID
    assert sr.SeriesInstanceUID != image.SeriesInstanceUID and sr.SeriesNumber == SERIES_NUMBER
    assert sr.Modality == "SR" and sr.Manufacturer == "omipacs"
    assert isinstance(sr.content, hd.sr.MeasurementReport)
    groups = sr.content.get_planar_roi_measurement_groups(
        referenced_sop_instance_uid=str(image.SOPInstanceUID)
    )
    assert len(groups) == len(marks)
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0] \
        .ReferencedSOPInstanceUID == image.SOPInstanceUID
    assert [s.CodingSchemeDesignator for s in sr.CodingSchemeIdentificationSequence] == [
        "99OMIPACS"]


def test_the_same_marks_give_the_same_bytes(tmp_path: Path) -> None:
    image = header()
    first = [PlannedMark(mark_on(image, MarkID=1)), PlannedMark(mark_on(image, MarkID=2, X2=9))]
    write_sr(build_marks_sr(image, first), tmp_path / "a.dcm")
    write_sr(build_marks_sr(image, list(reversed(first))), tmp_path / "b.dcm")
    a, b = (tmp_path / "a.dcm").read_bytes(), (tmp_path / "b.dcm").read_bytes()
    assert a == b
    sr = build_marks_sr(image, first)
    day, moment = content_datetime(image)
    assert (str(sr.ContentDate), str(sr.ContentTime)) == (day, moment)
    assert (str(sr.InstanceCreationDate), str(sr.InstanceCreationTime)) == (day, moment)
    assert {str(e.get("ContributionDateTime", "")) for e in sr.ContributingEquipmentSequence
            if e.Manufacturer == "omipacs"} == {day + moment}
    assert "highdicom" not in {str(e.get("ManufacturerModelName", ""))
                               for e in sr.ContributingEquipmentSequence}


@pytest.mark.parametrize(
    ("change", "same_tracking"),
    [({"X2": 21}, True), ({"Conspicuity": "Obvious"}, True), ({"MarkID": 8}, False)],
)
def test_changed_marks_get_new_uids_but_keep_their_tracking_uid(
    change: dict[str, Any], same_tracking: bool
) -> None:
    image = header()
    uid = str(image.SOPInstanceUID)
    before, after = mark_on(image), mark_on(image, **change)
    old = sr_identity(uid, READER, [PlannedMark(before)])
    new = sr_identity(uid, READER, [PlannedMark(after)])
    assert old.sop_instance_uid != new.sop_instance_uid
    assert old.series_instance_uid != new.series_instance_uid
    assert (tracking_uid(uid, before) == tracking_uid(uid, after)) is same_tracking
    assert len(new.sop_instance_uid) <= 64 and new.sop_instance_uid.startswith("2.25.")
    with_pathology = sr_identity(uid, READER, [PlannedMark(before, Pathology.MALIGNANT)])
    assert with_pathology.sop_instance_uid != old.sop_instance_uid


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"ContentDate": "20190304", "ContentTime": "101112.5"}, ("20190304", "101112.5")),
        ({"ContentDate": "", "AcquisitionDate": "20180101", "AcquisitionTime": ""},
         ("20180101", "000000")),
        ({"ContentDate": None, "AcquisitionDate": None, "SeriesDate": None,
          "StudyDate": "20170203", "StudyTime": "0930"}, ("20170203", "0930")),
        ({"ContentDate": None, "AcquisitionDate": None, "SeriesDate": None,
          "StudyDate": None}, ("19700101", "000000")),
    ],
)
def test_content_date_comes_from_the_image(
    attributes: dict[str, str | None], expected: tuple[str, str]
) -> None:
    image = header()
    for keyword, value in attributes.items():
        if value is None:
            if keyword in image:
                delattr(image, keyword)
        else:
            setattr(image, keyword, value)
    assert content_datetime(image) == expected


def test_an_sr_holds_one_image_and_one_reader() -> None:
    image, other = header(), header(seed=9)
    with pytest.raises(ValueError, match="at least one"):
        build_marks_sr(image, [])
    with pytest.raises(ValueError, match="one image"):
        build_marks_sr(image, [PlannedMark(mark_on(image)), PlannedMark(mark_on(other))])
    second = dataclasses.replace(mark_on(image), reader="RDRMNOPQRSTUVWX")
    with pytest.raises(ValueError, match="one reader"):
        build_marks_sr(image, [PlannedMark(mark_on(image)), PlannedMark(second)])
