"""Dataset to index columns: the only place that maps DICOM keywords to columns.

Values are read defensively: a malformed optional attribute yields an empty column
rather than a rejected instance (the instance is stored as received; only what the
archive needs to function is validated, in :mod:`omipacs.ingest.validate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue


def text(ds: Dataset, keyword: str, limit: int = 64) -> str:
    """A string attribute as text ('' when absent or unreadable), multi-values joined by '\\'."""
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()[:limit]


def number(ds: Dataset, keyword: str) -> float | None:
    """A numeric attribute (first value) as float, or None."""
    try:
        value = ds.get(keyword)
        if isinstance(value, MultiValue | list | tuple):
            value = value[0] if value else None
        return float(value) if value not in (None, "") else None
    except Exception:
        return None


def integer(ds: Dataset, keyword: str) -> int | None:
    """An integer attribute, or None."""
    f = number(ds, keyword)
    return int(f) if f is not None else None


def da(value: Any) -> date | None:
    """A DA value (YYYYMMDD) as a date, or None if absent or invalid."""
    s = str(value or "").strip()
    if len(s) != 8 or not s.isdigit():
        return None
    try:
        return date(int(s[:4]), int(s[4:6]), int(s[6:]))
    except ValueError:
        return None


def person_name_search(name: str) -> str:
    """Upper-cased form of a person name for case-insensitive matching."""
    return name.upper()


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    try:
        seq = ds.get(keyword)
        return seq[0] if seq else None
    except Exception:
        return None


def laterality(ds: Dataset) -> str:
    """ImageLaterality, else Laterality, else FrameLaterality of the shared (or first
    per-frame) Frame Anatomy Sequence, as tomosynthesis objects carry it (docs/data-model.md)."""
    for kw in ("ImageLaterality", "Laterality"):
        v = text(ds, kw, 2)
        if v:
            return v
    for groups_kw in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = _first_item(ds, groups_kw)
        anatomy = _first_item(groups, "FrameAnatomySequence") if groups is not None else None
        if anatomy is not None:
            v = text(anatomy, "FrameLaterality", 2)
            if v:
                return v
    return ""


@dataclass(frozen=True)
class InstanceFacts:
    """Everything the index stores about one instance, extracted from its header."""

    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]


def extract(ds: Dataset) -> InstanceFacts:
    """Map a (de-identified) header to column values for each level."""
    view = _first_item(ds, "ViewCodeSequence")
    modifier = _first_item(view, "ViewModifierCodeSequence") if view is not None else None
    if modifier is None:
        modifier = _first_item(ds, "ViewModifierCodeSequence")
    patient_name = text(ds, "PatientName", 324)
    intent = text(ds, "PresentationIntentType", 32)
    patient = {
        "patient_id": text(ds, "PatientID"),
        "issuer": text(ds, "IssuerOfPatientID"),
        "patient_name": patient_name,
        "patient_name_search": person_name_search(patient_name),
        "birth_date": da(ds.get("PatientBirthDate")),
        "sex": text(ds, "PatientSex", 16),
    }
    study = {
        "study_instance_uid": str(ds.StudyInstanceUID),
        "study_date": da(ds.get("StudyDate")),
        "study_time": text(ds, "StudyTime", 16),
        "accession_number": text(ds, "AccessionNumber"),
        "study_id": text(ds, "StudyID"),
        "study_description": text(ds, "StudyDescription", 256),
        "referring_physician_name": text(ds, "ReferringPhysicianName", 324),
        "patient_age": text(ds, "PatientAge", 8),
    }
    series = {
        "series_instance_uid": str(ds.SeriesInstanceUID),
        "modality": text(ds, "Modality", 16),
        "series_number": integer(ds, "SeriesNumber"),
        "series_description": text(ds, "SeriesDescription", 256),
        "series_date": da(ds.get("SeriesDate")),
        "body_part_examined": text(ds, "BodyPartExamined", 16),
        "presentation_intent_type": intent,
    }
    instance = {
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "sop_class_uid": str(ds.SOPClassUID),
        "instance_number": integer(ds, "InstanceNumber"),
        "rows": integer(ds, "Rows"),
        "columns": integer(ds, "Columns"),
        "number_of_frames": integer(ds, "NumberOfFrames") or (1 if "Rows" in ds else None),
        "bits_allocated": integer(ds, "BitsAllocated"),
        "bits_stored": integer(ds, "BitsStored"),
        "photometric_interpretation": text(ds, "PhotometricInterpretation", 16),
        "laterality": laterality(ds),
        "view_position": text(ds, "ViewPosition", 16),
        "view_code": text(view, "CodeValue", 16) if view is not None else "",
        "view_code_meaning": text(view, "CodeMeaning") if view is not None else "",
        "view_modifier_codes": text(modifier, "CodeValue", 128) if modifier is not None else "",
        "presentation_intent_type": intent,
        "image_type": text(ds, "ImageType", 128),
        "manufacturer": text(ds, "Manufacturer"),
        "manufacturer_model_name": text(ds, "ManufacturerModelName"),
        "software_versions": text(ds, "SoftwareVersions", 128),
        "body_part_thickness": number(ds, "BodyPartThickness"),
        "compression_force": number(ds, "CompressionForce"),
        "kvp": number(ds, "KVP"),
        "organ_dose": number(ds, "OrganDose"),
        "breast_implant_present": text(ds, "BreastImplantPresent", 8),
        "imager_pixel_spacing": text(ds, "ImagerPixelSpacing"),
        "voi_lut_function": text(ds, "VOILUTFunction", 16),
        "burned_in_annotation": text(ds, "BurnedInAnnotation", 8),
        "patient_identity_removed": text(ds, "PatientIdentityRemoved", 8),
        "frame_of_reference_uid": text(ds, "FrameOfReferenceUID"),
        "content_date": da(ds.get("ContentDate")),
    }
    return InstanceFacts(patient, study, series, instance)
