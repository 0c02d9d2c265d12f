"""Build synthetic mammography DICOM objects that look like what a screening site sends.

Three IODs are covered, the ones an OMI-DB-like archive receives:

- Digital Mammography X-Ray Image, For Presentation and For Processing (PS3.3 A.26),
- Breast Tomosynthesis Image (PS3.3 A.84), an enhanced multi-frame object,
- Secondary Capture Image (PS3.3 A.8), with or without burned-in text.

Headers carry identifiable-looking but fake patient data (see :mod:`omipacs.demo.names`)
in the attributes that PS3.15 Table E.1-1 says must be removed or replaced, so that the
de-identification pipeline has something real to do. Every random choice comes from a
``numpy.random.Generator``: pass a seeded one (or an int) and the object, UIDs
included, is identical on every run.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, get_args

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalMammographyXRayImageStorageForProcessing,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from omipacs.demo.encoding import NATIVE_SYNTAXES, compress, lossless_syntaxes, save, to_bytes
from omipacs.demo.names import FakePatient, fake_patient, fake_person_name
from omipacs.demo.pixels import breast_anatomy, render, smooth_noise
from omipacs.demo.vendors import DBT_FULL_SIZE, DBT_PIXEL_SPACING, VENDORS, VendorProfile

__all__ = [
    "DBT_FULL_SIZE",
    "DBT_PIXEL_SPACING",
    "IMPLEMENTATION_CLASS_UID",
    "VENDORS",
    "VIEW_CODES",
    "BreastTomosynthesisImageStorage",
    "FakePatient",
    "Laterality",
    "Vendor",
    "VendorProfile",
    "View",
    "as_rng",
    "compress",
    "lossless_syntaxes",
    "make_dbt",
    "make_mammo",
    "make_secondary_capture",
    "new_uid",
    "save",
    "to_bytes",
]

Laterality = Literal["L", "R"]
View = Literal["CC", "MLO"]
Vendor = Literal["HOLOGIC", "GE", "SIEMENS"]
RngLike = np.random.Generator | int | None

BreastTomosynthesisImageStorage = UID("1.2.840.10008.5.1.4.1.1.13.1.3")
IMPLEMENTATION_CLASS_UID = UID("2.25.1053900498219734950003858828143128333")
IMPLEMENTATION_VERSION_NAME = "OMIPACS_DEMO_1"

VIEW_CODES: Mapping[str, tuple[str, str]] = {
    "CC": ("399162004", "cranio-caudal"),
    "MLO": ("399368009", "medio-lateral oblique"),
}
"""SNOMED CT view codes of CID 4014, keyed by ViewPosition."""

# Patient Orientation (row direction, column direction) per laterality and view, as
# in the usual hanging convention: chest wall on the left of a left-breast image.
_ORIENTATION: Mapping[tuple[str, str], tuple[str, str]] = {
    ("L", "CC"): ("A", "R"),
    ("R", "CC"): ("P", "L"),
    ("L", "MLO"): ("A", "FR"),
    ("R", "MLO"): ("P", "FL"),
}
# Direction cosines of those letters (patient LPS axes); the oblique MLO column
# directions are approximated by their main axis.
_COSINES: Mapping[str, tuple[float, float, float]] = {
    "A": (0.0, -1.0, 0.0),
    "P": (0.0, 1.0, 0.0),
    "R": (-1.0, 0.0, 0.0),
    "L": (1.0, 0.0, 0.0),
    "F": (0.0, 0.0, -1.0),
    "FR": (0.0, 0.0, -1.0),
    "FL": (0.0, 0.0, -1.0),
}


def as_rng(rng: RngLike) -> np.random.Generator:
    """Accept a Generator, a seed or None (fresh OS entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def new_uid(rng: np.random.Generator | None = None) -> UID:
    """Return a ``2.25`` UUID-derived UID (PS3.5 B.2), drawn from ``rng`` if given.

    With a seeded generator the UID is reproducible; without one it is
    ``generate_uid(prefix=None)``, a random UUID.
    """
    if rng is None:
        return generate_uid(prefix=None)
    return UID(f"2.25.{uuid.UUID(bytes=rng.bytes(16), version=4).int}")


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _view_code_sequence(view: str) -> Sequence:
    """View Code Sequence with an empty View Modifier Code Sequence (PS3.3 C.8.11.7)."""
    value, meaning = VIEW_CODES[view]
    item = _code(value, "SCT", meaning)
    item.ViewModifierCodeSequence = Sequence()
    return Sequence([item])


def _da(d: date) -> str:
    return d.strftime("%Y%m%d")


def _age(birth: date, on: date) -> str:
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return f"{years:03d}Y"


def _new_file_dataset(sop_class: str, sop_uid: str) -> FileDataset:
    """An empty Part 10 data set with file meta (PS3.10 7.1) for the given instance."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return ds


@dataclass(frozen=True)
class _Context:
    """Values shared by every builder, drawn in a fixed order so seeds stay stable."""

    rng: np.random.Generator
    patient: FakePatient
    study_uid: UID
    series_uid: UID
    sop_uid: UID
    study_date: date
    acquired: datetime


def _context(
    rng_in: RngLike,
    patient: FakePatient | None,
    study_uid: str | None,
    series_uid: str | None,
    sop_uid: str | None,
    study_date: date | None,
) -> _Context:
    rng = as_rng(rng_in)
    uid_rng = rng if rng_in is not None else None
    if patient is None:
        patient = fake_patient(rng)
    if study_date is None:
        study_date = date(2012, 1, 2) + timedelta(days=int(rng.integers(0, 12 * 365)))
    start = datetime.combine(study_date, time(8, 30)) + timedelta(minutes=int(rng.integers(480)))
    return _Context(
        rng=rng,
        patient=patient,
        study_uid=UID(study_uid) if study_uid else new_uid(uid_rng),
        series_uid=UID(series_uid) if series_uid else new_uid(uid_rng),
        sop_uid=UID(sop_uid) if sop_uid else new_uid(uid_rng),
        study_date=study_date,
        acquired=start + timedelta(seconds=int(rng.integers(60, 900))),
    )


def _add_common(ds: FileDataset, ctx: _Context, profile: VendorProfile, modality: str) -> None:
    """Patient, General Study, General Series, General Equipment and SOP Common modules."""
    rng, p = ctx.rng, ctx.patient
    ds.InstanceCreationDate = _da(ctx.study_date)
    ds.InstanceCreationTime = ctx.acquired.strftime("%H%M%S")
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = _da(ctx.study_date)
    ds.StudyTime = (ctx.acquired - timedelta(minutes=5)).strftime("%H%M%S")
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = ctx.acquired.strftime("%H%M%S")
    ds.AccessionNumber = f"MG{int(rng.integers(10**7, 10**8))}"
    ds.Modality = modality
    ds.Manufacturer = profile.manufacturer
    ds.InstitutionName = profile.institution
    ds.InstitutionAddress = profile.institution_address
    ds.ReferringPhysicianName = fake_person_name(rng)
    ds.StationName = profile.station
    ds.StudyDescription = "Bilateral Screening Mammography"
    ds.InstitutionalDepartmentName = "Breast Imaging"
    ds.PerformingPhysicianName = fake_person_name(rng)
    ds.OperatorsName = fake_person_name(rng, title="")
    ds.ManufacturerModelName = profile.model
    ds.PatientName = p.name
    ds.PatientID = p.local_id
    ds.IssuerOfPatientID = "PAS"
    ds.PatientBirthDate = _da(p.birth_date)
    ds.PatientSex = p.sex
    ds.OtherPatientIDs = p.nhs_number
    other = Dataset()
    other.PatientID = p.nhs_number
    other.IssuerOfPatientID = "NHS"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.PatientAge = _age(p.birth_date, ctx.study_date)
    ds.PatientAddress = p.address
    ds.PatientTelephoneNumbers = p.phone
    ds.DeviceSerialNumber = profile.device_serial
    ds.SoftwareVersions = list(profile.software_versions)
    ds.StudyInstanceUID = ctx.study_uid
    ds.SeriesInstanceUID = ctx.series_uid
    ds.StudyID = str(int(rng.integers(1, 10**5)))
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1


def _add_pixel_module(
    ds: FileDataset, rows: int, columns: int, bits_stored: int, photometric: str, frames: int = 1
) -> None:
    """Image Pixel module for unsigned 16-bit grayscale (PS3.3 C.7.6.3)."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


def _finish(ds: FileDataset, transfer_syntax: str, overrides: Mapping[str, Any]) -> FileDataset:
    """Apply keyword overrides (None deletes) and encode in the requested syntax."""
    for keyword, value in overrides.items():
        if tag_for_keyword(keyword) is None:
            raise ValueError(f"{keyword!r} is not a DICOM keyword")
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    if "SOPInstanceUID" in overrides:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if transfer_syntax in NATIVE_SYNTAXES:
        ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
        return ds
    return compress(ds, transfer_syntax)


def _exposure(rng: np.random.Generator, profile: VendorProfile) -> dict[str, Any]:
    """Acquisition and dose values in plausible ranges (DX Positioning, X-Ray Acquisition Dose)."""
    thickness = round(float(rng.uniform(32.0, 78.0)), 1)
    kvp = round(25.0 + thickness / 10.0 + float(rng.uniform(0.0, 2.0)))
    current = int(rng.integers(90, 200))
    mas = round(float(rng.uniform(60.0, 220.0)), 1)
    return {
        "BodyPartThickness": thickness,
        "CompressionForce": round(float(rng.uniform(55.0, 150.0)), 1),
        "KVP": float(kvp),
        "XRayTubeCurrent": current,
        "Exposure": round(mas),
        "ExposureInuAs": round(mas * 1000),
        "ExposureTime": round(mas / current * 1000),
        "AnodeTargetMaterial": profile.anode,
        "FilterMaterial": profile.filters[int(thickness > 55.0)],
        "OrganDose": round(0.4 + thickness * 0.02 + float(rng.uniform(0.0, 0.4)), 2),
        "EntranceDoseInmGy": round(2.0 + thickness * 0.08 + float(rng.uniform(0.0, 1.0)), 2),
        "HalfValueLayer": round(float(rng.uniform(0.45, 0.65)), 2),
    }


def make_mammo(
    *,
    laterality: Laterality = "L",
    view: View = "CC",
    processed: bool = True,
    rows: int = 256,
    columns: int = 208,
    vendor: Vendor = "HOLOGIC",
    patient: FakePatient | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    study_date: date | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    rng: RngLike = None,
    **overrides: Any,
) -> FileDataset:
    """Build one Digital Mammography X-Ray Image (PS3.3 A.26).

    Parameters
    ----------
    laterality, view : str
        ImageLaterality ``"L"``/``"R"`` and ViewPosition ``"CC"``/``"MLO"``; the
        ViewCodeSequence carries the matching SNOMED CT code (CID 4014).
    processed : bool
        True gives the For Presentation SOP class, False the For Processing one with
        PresentationIntentType ``FOR PROCESSING`` and a raw-looking log image.
    rows, columns : int
        Matrix size; ``VENDORS[vendor].full_size`` is the detector's real size.
    vendor : str
        Selects manufacturer, model, pixel spacing, bit depth and dose values.
    patient : FakePatient, optional
        Drawn from ``rng`` when absent.
    study_uid, series_uid, sop_uid : str, optional
        Drawn from ``rng`` when absent.
    study_date : datetime.date, optional
        Drawn from ``rng`` when absent (2012-2023).
    transfer_syntax : str
        A native syntax, or one of :func:`lossless_syntaxes` (pixels are compressed).
    rng : numpy.random.Generator or int, optional
        Seed or generator; the same value gives the same object. Calling twice with
        equal seeds and ``processed`` True and False gives the two forms of one
        exposure (same anatomy and dose), as a site sends them.
    **overrides
        DICOM keyword values set last; ``None`` deletes the attribute.
    """
    _check("laterality", laterality, get_args(Laterality))
    _check("view", view, get_args(View))
    _check("vendor", vendor, get_args(Vendor))
    profile = VENDORS[vendor]
    ctx = _context(rng, patient, study_uid, series_uid, sop_uid, study_date)
    sop_class = (
        DigitalMammographyXRayImageStorageForPresentation
        if processed
        else DigitalMammographyXRayImageStorageForProcessing
    )
    ds = _new_file_dataset(sop_class, ctx.sop_uid)
    _add_common(ds, ctx, profile, "MG")
    exposure = _exposure(ctx.rng, profile)

    ds.ImageType = ["DERIVED", "PRIMARY", "", ""] if processed else ["ORIGINAL", "PRIMARY", "", ""]
    ds.PresentationIntentType = "FOR PRESENTATION" if processed else "FOR PROCESSING"
    ds.SeriesDescription = f"{laterality}{view}{'' if processed else ' RAW'}"
    ds.BodyPartExamined = "BREAST"
    ds.AcquisitionDateTime = ctx.acquired.strftime("%Y%m%d%H%M%S.000000")
    ds.ImageLaterality = laterality
    ds.PatientOrientation = list(_ORIENTATION[(laterality, view)])
    ds.ViewPosition = view
    ds.ViewCodeSequence = _view_code_sequence(view)
    ds.AnatomicRegionSequence = Sequence([_code("76752008", "SCT", "Breast")])
    ds.OrganExposed = "BREAST"
    ds.BreastImplantPresent = "NO"
    ds.PartialView = "NO"
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.PositionerPrimaryAngle = 0.0 if view == "CC" else (45.0 if laterality == "L" else -45.0)
    ds.DistanceSourceToDetector = profile.source_to_detector
    ds.DistanceSourceToPatient = profile.source_to_detector - 20.0
    ds.EstimatedRadiographicMagnificationFactor = round(
        profile.source_to_detector / (profile.source_to_detector - 20.0), 4
    )
    ds.DetectorType = profile.detector_type
    ds.DetectorConfiguration = "AREA"
    ds.DetectorID = profile.detector_id
    ds.ImagerPixelSpacing = [profile.pixel_spacing, profile.pixel_spacing]
    ds.FilterType = "FLAT"
    for keyword, value in exposure.items():
        setattr(ds, keyword, value)

    bits = profile.bits_processed if processed else profile.bits_raw
    inverted = processed and profile.processed_monochrome1
    _add_pixel_module(ds, rows, columns, bits, "MONOCHROME1" if inverted else "MONOCHROME2")
    top = 2**bits - 1
    ds.PixelIntensityRelationship = "LOG"
    # Sign -1: higher stored values mean less X-ray intensity (PS3.3 C.8.11.3.1.2).
    ds.PixelIntensityRelationshipSign = 1 if inverted or not processed else -1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "INVERSE" if inverted else "IDENTITY"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    centre = round(top * (0.5 if processed else 0.62))
    ds.WindowCenter = top - centre if inverted else centre
    ds.WindowWidth = round(top * (0.6 if processed else 0.45))
    if processed and profile.voi_function:
        ds.VOILUTFunction = profile.voi_function
    ds.WindowCenterWidthExplanation = "NORMAL"

    anatomy = breast_anatomy(ctx.rng, rows, columns, laterality=laterality, view=view)
    pixels = render(anatomy, ctx.rng, processed=processed, bits_stored=bits, inverted=inverted)
    ds.PixelData = pixels.tobytes()
    return _finish(ds, transfer_syntax, overrides)


def _frame_geometry(laterality: str, view: str) -> tuple[list[float], np.ndarray]:
    """ImageOrientationPatient and the unit step between slices (normal to the plane)."""
    row_dir, col_dir = _ORIENTATION[(laterality, view)]
    row, col = np.array(_COSINES[row_dir]), np.array(_COSINES[col_dir])
    return [*row.tolist(), *col.tolist()], np.cross(row, col)


def make_dbt(
    *,
    laterality: Laterality = "L",
    view: View = "CC",
    frames: int = 10,
    rows: int = 128,
    columns: int = 104,
    vendor: Vendor = "HOLOGIC",
    patient: FakePatient | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    study_date: date | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    rng: RngLike = None,
    **overrides: Any,
) -> FileDataset:
    """Build one Breast Tomosynthesis Image (PS3.3 A.84), a reconstructed slice stack.

    Laterality lives in the Frame Anatomy functional group (FrameLaterality), shared by
    all frames; the view is given only by ViewCodeSequence, as there is no
    ViewPosition in this IOD. Each frame has its own Plane Position and Frame Content
    item. Frame ``k`` (1-based) stores the value ``k`` in its first four pixels, and
    its texture differs from its neighbours', so frame retrieval can be checked.

    The pixel buffer is allocated once and filled slice by slice in place, so a
    full-size stack (``DBT_FULL_SIZE``, 60 frames, about 560 MB) needs no second copy.
    Parameters are as for :func:`make_mammo`.
    """
    _check("laterality", laterality, get_args(Laterality))
    _check("view", view, get_args(View))
    _check("vendor", vendor, get_args(Vendor))
    if frames < 1:
        raise ValueError("a tomosynthesis stack needs at least one frame")
    profile = VENDORS[vendor]
    ctx = _context(rng, patient, study_uid, series_uid, sop_uid, study_date)
    ds = _new_file_dataset(BreastTomosynthesisImageStorage, ctx.sop_uid)
    _add_common(ds, ctx, profile, "MG")
    exposure = _exposure(ctx.rng, profile)
    ds.StudyDescription = "Breast Assessment Tomosynthesis"
    ds.SeriesDescription = f"{laterality}{view} Tomo"
    ds.BodyPartExamined = "BREAST"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "TOMOSYNTHESIS", "NONE"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ContentQualification = "PRODUCT"
    ds.AcquisitionDateTime = ctx.acquired.strftime("%Y%m%d%H%M%S.000000")
    ds.FrameOfReferenceUID = new_uid(ctx.rng if rng is not None else None)
    ds.PositionReferenceIndicator = ""
    ds.ViewCodeSequence = _view_code_sequence(view)
    ds.BreastImplantPresent = "NO"
    ds.PartialView = "NO"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.AcquisitionContextSequence = Sequence()
    acquisition = Dataset()
    for keyword in (
        "KVP",
        "BodyPartThickness",
        "CompressionForce",
        "AnodeTargetMaterial",
        "FilterMaterial",
        "OrganDose",
        "EntranceDoseInmGy",
    ):
        setattr(acquisition, keyword, exposure[keyword])
    ds.XRay3DAcquisitionSequence = Sequence([acquisition])

    bits = profile.bits_processed
    _add_pixel_module(ds, rows, columns, bits, "MONOCHROME2", frames=frames)
    top = 2**bits - 1
    orientation, step = _frame_geometry(laterality, view)
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [DBT_PIXEL_SPACING, DBT_PIXEL_SPACING]
    measures.SliceThickness = 1.0
    shared.PixelMeasuresSequence = Sequence([measures])
    plane = Dataset()
    plane.ImageOrientationPatient = orientation
    shared.PlaneOrientationSequence = Sequence([plane])
    anatomy_item = Dataset()
    anatomy_item.AnatomicRegionSequence = Sequence([_code("76752008", "SCT", "Breast")])
    anatomy_item.FrameLaterality = laterality
    shared.FrameAnatomySequence = Sequence([anatomy_item])
    frame_type = Dataset()
    frame_type.FrameType = ["ORIGINAL", "PRIMARY", "TOMOSYNTHESIS", "NONE"]
    shared.XRay3DFrameTypeSequence = Sequence([frame_type])
    voi = Dataset()
    voi.WindowCenter = round(top * 0.5)
    voi.WindowWidth = round(top * 0.6)
    shared.FrameVOILUTSequence = Sequence([voi])
    transform = Dataset()
    transform.RescaleIntercept = 0
    transform.RescaleSlope = 1
    transform.RescaleType = "US"
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])

    dimension_uid = new_uid(ctx.rng if rng is not None else None)
    organization = Dataset()
    organization.DimensionOrganizationUID = dimension_uid
    ds.DimensionOrganizationSequence = Sequence([organization])
    ds.DimensionOrganizationType = "3D"
    indices = []
    for pointer, label in ((0x00209056, "Stack ID"), (0x00209057, "In-Stack Position Number")):
        index = Dataset()
        index.DimensionOrganizationUID = dimension_uid
        index.DimensionIndexPointer = pointer
        index.FunctionalGroupPointer = 0x00209111
        index.DimensionDescriptionLabel = label
        indices.append(index)
    ds.DimensionIndexSequence = Sequence(indices)
    per_frame = []
    for k in range(1, frames + 1):
        item = Dataset()
        position = Dataset()
        position.ImagePositionPatient = [round(float(v), 3) for v in step * (k - 1)]
        item.PlanePositionSequence = Sequence([position])
        content = Dataset()
        content.StackID = "1"
        content.InStackPositionNumber = k
        content.DimensionIndexValues = [1, k]
        item.FrameContentSequence = Sequence([content])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)

    anatomy = breast_anatomy(ctx.rng, rows, columns, laterality=laterality, view=view)
    near = smooth_noise(ctx.rng, rows, columns, 17) * np.float32(0.15)
    far = smooth_noise(ctx.rng, rows, columns, 17) * np.float32(0.15)
    buffer = io.BytesIO()
    buffer.seek(frames * rows * columns * 2 - 1)
    buffer.write(b"\0")
    view_buffer = buffer.getbuffer()
    stack = np.frombuffer(view_buffer, dtype=np.uint16).reshape(frames, rows, columns)
    for k in range(frames):
        z = np.float32(k / max(frames - 1, 1))
        texture = near * (np.float32(1.0) - z) + far * z
        render(anatomy, ctx.rng, processed=True, bits_stored=bits, texture=texture, out=stack[k])
        stack[k, 0, :4] = k + 1
    del stack
    view_buffer.release()
    ds.PixelData = buffer.getvalue()  # shares the buffer: no copy once views are released
    return _finish(ds, transfer_syntax, overrides)


def make_secondary_capture(
    *,
    burned_in_annotation: Literal["YES", "NO"] | None = "YES",
    rows: int = 256,
    columns: int = 256,
    vendor: Vendor = "HOLOGIC",
    patient: FakePatient | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    study_date: date | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    rng: RngLike = None,
    **overrides: Any,
) -> FileDataset:
    """Build an 8-bit Secondary Capture Image (PS3.3 A.8.1), like a workstation screenshot.

    Parameters
    ----------
    burned_in_annotation : {"YES", "NO"} or None
        ``"YES"``: the patient's name, NHS number and birth date are drawn into the
        top band of the pixels and BurnedInAnnotation is YES. ``"NO"``: no text and NO.
        ``None``: the text is drawn but the attribute is absent, as many vendor
        screenshots arrive (PS3.15 E.1.2 says such objects need Clean Pixel Data).

    Other parameters are as for :func:`make_mammo`; ``rows`` must be at least 64.
    """
    from PIL import Image, ImageDraw

    _check("vendor", vendor, get_args(Vendor))
    if burned_in_annotation not in ("YES", "NO", None):
        raise ValueError("burned_in_annotation must be 'YES', 'NO' or None")
    if rows < 64 or columns < 64:
        raise ValueError("a secondary capture needs at least 64 x 64 pixels")
    profile = VENDORS[vendor]
    ctx = _context(rng, patient, study_uid, series_uid, sop_uid, study_date)
    ds = _new_file_dataset(SecondaryCaptureImageStorage, ctx.sop_uid)
    _add_common(ds, ctx, profile, "OT")
    ds.SeriesDescription = "Workstation screen capture"
    ds.ConversionType = "WSD"
    ds.SecondaryCaptureDeviceManufacturer = profile.manufacturer
    ds.DateOfSecondaryCapture = _da(ctx.study_date)
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if burned_in_annotation is not None:
        ds.BurnedInAnnotation = burned_in_annotation
    anatomy = breast_anatomy(ctx.rng, rows, columns, laterality="L", view="CC")
    pixels = (render(anatomy, ctx.rng, processed=True, bits_stored=8)).astype(np.uint8)
    if burned_in_annotation != "NO":
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        draw.fontmode = "1"  # no anti-aliasing: text pixels are exactly 255, tissue never is
        draw.rectangle((0, 0, columns, 40), fill=0)
        p = ctx.patient
        nhs = f"{p.nhs_number[:3]} {p.nhs_number[3:6]} {p.nhs_number[6:]}"
        lines = (
            p.name.split("^")[0] + " " + p.name.split("^")[1],
            f"NHS {nhs}",
            f"DOB {p.birth_date:%d/%m/%Y}",
        )
        for i, line in enumerate(lines):
            draw.text((2, 1 + 13 * i), line, fill=255)
        pixels = np.asarray(image, dtype=np.uint8)
    ds.PixelData = pixels.tobytes()
    return _finish(ds, transfer_syntax, overrides)
