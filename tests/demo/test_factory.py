from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from omipacs.demo.factory import (
    IMPLEMENTATION_CLASS_UID,
    VENDORS,
    make_dbt,
    make_mammo,
    make_secondary_capture,
    new_uid,
    to_bytes,
)
from omipacs.demo.names import is_valid_nhs_number

FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
TOMOSYNTHESIS = "1.2.840.10008.5.1.4.1.1.13.1.3"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def reread(ds: Dataset) -> FileDataset:
    return pydicom.dcmread(io.BytesIO(to_bytes(ds)))


@pytest.mark.parametrize(
    ("laterality", "view", "processed", "vendor", "code"),
    [
        ("L", "CC", True, "HOLOGIC", "399162004"),
        ("R", "MLO", False, "HOLOGIC", "399368009"),
        ("R", "CC", True, "GE", "399162004"),
        ("L", "MLO", False, "GE", "399368009"),
        ("L", "MLO", True, "SIEMENS", "399368009"),
        ("R", "CC", False, "SIEMENS", "399162004"),
    ],
)
def test_make_mammo_round_trips_with_the_requested_identity(
    laterality: Any, view: Any, processed: bool, vendor: Any, code: str
) -> None:
    ds = reread(
        make_mammo(laterality=laterality, view=view, processed=processed, vendor=vendor, rng=5)
    )
    meta = ds.file_meta
    assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert ds.SOPClassUID == (FOR_PRESENTATION if processed else FOR_PROCESSING)
    assert ds.PresentationIntentType == ("FOR PRESENTATION" if processed else "FOR PROCESSING")
    assert ds.Modality == "MG"
    assert (ds.ImageLaterality, ds.ViewPosition) == (laterality, view)
    item = ds.ViewCodeSequence[0]
    assert (item.CodeValue, item.CodingSchemeDesignator) == (code, "SCT")
    assert ds.Manufacturer == VENDORS[vendor].manufacturer
    assert [float(v) for v in ds.ImagerPixelSpacing] == [VENDORS[vendor].pixel_spacing] * 2
    assert ds.BreastImplantPresent == "NO" and ds.BurnedInAnnotation == "NO"
    assert 12 <= ds.BitsStored <= 14 and ds.BitsAllocated == 16
    assert is_valid_nhs_number(ds.OtherPatientIDs)
    for keyword in (
        "PatientName",
        "PatientBirthDate",
        "PatientAddress",
        "AccessionNumber",
        "ReferringPhysicianName",
        "OperatorsName",
        "PerformingPhysicianName",
        "InstitutionName",
        "DeviceSerialNumber",
        "DetectorID",
        "StationName",
    ):
        assert str(ds[keyword].value), keyword
    pixels = ds.pixel_array
    assert pixels.shape == (256, 208) and pixels.dtype == np.uint16
    assert int(pixels.max()) < 2**ds.BitsStored
    if not processed:
        assert ds.PixelIntensityRelationship == "LOG"


@pytest.mark.parametrize(
    ("vendor", "photometric", "voi"),
    [
        ("HOLOGIC", "MONOCHROME2", None),
        ("GE", "MONOCHROME1", "SIGMOID"),
        ("SIEMENS", "MONOCHROME2", None),
    ],
)
def test_processed_display_attributes_follow_the_vendor(
    vendor: Any, photometric: str, voi: str | None
) -> None:
    ds = make_mammo(vendor=vendor, rng=1)
    assert ds.PhotometricInterpretation == photometric
    assert ds.get("VOILUTFunction") == voi
    assert make_mammo(vendor=vendor, processed=False, rng=1).PhotometricInterpretation == (
        "MONOCHROME2"
    )


@pytest.mark.parametrize(("laterality", "wall_column"), [("L", 0), ("R", -1)])
def test_chest_wall_is_on_the_side_of_the_breast(laterality: Any, wall_column: int) -> None:
    pixels = make_mammo(laterality=laterality, rng=2).pixel_array.astype(float)
    other = -1 - wall_column
    assert pixels[:, wall_column].mean() > 4 * pixels[:, other].mean()


def test_processed_and_raw_forms_share_one_exposure() -> None:
    presentation = make_mammo(processed=True, rng=9)
    processing = make_mammo(processed=False, rng=9)
    for keyword in (
        "KVP",
        "BodyPartThickness",
        "CompressionForce",
        "OrganDose",
        "AcquisitionDateTime",
        "PatientName",
    ):
        assert presentation[keyword].value == processing[keyword].value


def test_full_size_hologic_image_is_generated_directly() -> None:
    rows, columns = VENDORS["HOLOGIC"].full_size
    ds = make_mammo(rows=rows, columns=columns, rng=0)
    assert (ds.Rows, ds.Columns) == (4096, 3328)
    assert len(ds.PixelData) == 4096 * 3328 * 2


def test_make_dbt_is_a_multiframe_tomosynthesis_object() -> None:
    ds = reread(make_dbt(laterality="R", view="MLO", frames=7, rng=4))
    assert ds.SOPClassUID == TOMOSYNTHESIS
    assert ds.NumberOfFrames == 7
    assert "ViewPosition" not in ds and "ImageLaterality" not in ds
    assert ds.SharedFunctionalGroupsSequence[0].FrameAnatomySequence[0].FrameLaterality == "R"
    assert ds.ViewCodeSequence[0].CodeValue == "399368009"
    frames = ds.PerFrameFunctionalGroupsSequence
    assert len(frames) == 7
    assert [f.FrameContentSequence[0].InStackPositionNumber for f in frames] == list(range(1, 8))
    positions = {tuple(f.PlanePositionSequence[0].ImagePositionPatient) for f in frames}
    assert len(positions) == 7
    pixels = ds.pixel_array
    assert pixels.shape == (7, 128, 104) and pixels.dtype == np.uint16
    assert pixels[:, 0, :4].tolist() == [[k] * 4 for k in range(1, 8)]
    assert all(not np.array_equal(pixels[k, 1:], pixels[k + 1, 1:]) for k in range(6))


@pytest.mark.parametrize(("declared", "text"), [("YES", True), ("NO", False), (None, True)])
def test_secondary_capture_burned_in_text(declared: Any, text: bool) -> None:
    ds = reread(make_secondary_capture(burned_in_annotation=declared, rng=3))
    assert ds.SOPClassUID == SECONDARY_CAPTURE
    assert ds.get("BurnedInAnnotation") == declared
    band = ds.pixel_array[:40]
    assert ds.pixel_array.dtype == np.uint8
    assert bool((band == 255).any()) is text


def test_same_seed_gives_identical_bytes_and_another_seed_does_not() -> None:
    one, two, other = (to_bytes(make_mammo(rng=seed)) for seed in (11, 11, 12))
    assert one == two
    assert one != other
    a, b = make_mammo(rng=11), make_mammo(rng=12)
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert a.PatientName != b.PatientName or a.StudyInstanceUID != b.StudyInstanceUID
    assert not np.array_equal(a.pixel_array, b.pixel_array)
    assert to_bytes(make_dbt(rng=11)) == to_bytes(make_dbt(rng=11))


def test_without_seed_uids_are_fresh() -> None:
    assert make_mammo().SOPInstanceUID != make_mammo().SOPInstanceUID


def test_new_uid_is_a_reproducible_uuid_derived_uid() -> None:
    uid = new_uid(np.random.default_rng(1))
    assert uid == new_uid(np.random.default_rng(1))
    assert uid.startswith("2.25.") and uid.is_valid and len(uid) <= 64
    assert new_uid() != new_uid()


def test_explicit_uids_and_overrides_are_applied() -> None:
    ds = make_mammo(
        study_uid="1.2.3",
        series_uid="1.2.3.4",
        sop_uid="1.2.3.4.5",
        rng=1,
        PatientName="TEST^CANARY",
        BurnedInAnnotation=None,
    )
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == (
        "1.2.3",
        "1.2.3.4",
        "1.2.3.4.5",
    )
    assert ds.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4.5"
    assert ds.PatientName == "TEST^CANARY"
    assert "BurnedInAnnotation" not in ds


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: make_mammo(laterality="B"), "laterality"),  # type: ignore[arg-type]
        (lambda: make_mammo(view="ML"), "view"),  # type: ignore[arg-type]
        (lambda: make_dbt(vendor="FUJI"), "vendor"),  # type: ignore[arg-type]
        (lambda: make_dbt(frames=0), "frame"),
        (lambda: make_mammo(NotAKeyword=1), "keyword"),
        (lambda: make_secondary_capture(rows=32), "64"),
        (lambda: make_mammo(transfer_syntax=JPEGBaseline8Bit), "compress"),
    ],
)
def test_bad_arguments_are_rejected(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
