"""Expert marks of one image as a TID 1500 Measurement Report, built with highdicom.

One Comprehensive 3D SR (PS3.3 A.35.13) per image and observer, in the image's study
and in a series of its own, holding one TID 1410 planar ROI group per mark
(docs/data-model.md, "Marks"):

* the box as a closed 5-point POLYLINE in image pixel coordinates (SCOORD has no
  rectangle; PS3.3 C.18.6.1.2), selected from the image and, for a tomosynthesis
  stack, from one frame (Referenced Frame Number);
* finding type and category (:mod:`omipacs.annotations.codes`), the finding site with
  the image's laterality;
* qualitative evaluations: conspicuity, margins or mass class, calcification types,
  the other features, the linked NBSS lesion numbers and the lesion's pathology;
* the observer (TID 1002 Person Observer Name) is the reader pseudonym;
* the evidence (Current Requested Procedure Evidence Sequence) references the image.

**Deterministic output.** Importing the same marks again must give the same bytes, so
the pipeline answers "already stored" rather than storing a second SR. The series,
instance and tracking UIDs are ``2.25`` UIDs derived from a SHA-256 of the image UID,
the observer and a canonical form of the marks (PS3.5 B.2 allows UUID-derived
``2.25`` UIDs; 128 bits of a hash serve the same purpose); dates and times are the
image's content date and time (or its study's); and the contributing equipment names
this encoder and its :data:`SR_ENCODING` version instead of the library version, so an
upgrade of highdicom does not change the bytes. A changed mark set gives other UIDs: a
new SR, which supersedes the old one in the index (:mod:`omipacs.annotations.indexer`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import highdicom as hd
import numpy as np
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom import dcmwrite
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.valuerep import DA, TM

from omipacs.annotations.codes import (
    BENIGN_CLASS_CODES,
    CALCIFICATION_TYPE,
    CONSPICUITY,
    CONSPICUITY_CODES,
    FEATURE_EVALUATIONS,
    FEATURE_KEYS,
    FINDING_CATEGORY,
    FINDING_CODES,
    LOCAL_SCHEME,
    LOCAL_SCHEME_NAME,
    MASS_CLASS_EVALUATIONS,
    NBSS_LESION,
    PATHOLOGY,
    PATHOLOGY_CODES,
    Pathology,
    lesion_code,
)
from omipacs.annotations.records import MarkInput

SR_ENCODING: Final = "omipacs-marks-1"
"""Version of this encoding; part of every UID hash, so changing the encoding (and
bumping this) gives new SRs instead of conflicting with stored ones."""
MANUFACTURER: Final = "omipacs"
SERIES_NUMBER: Final = 900
SERIES_DESCRIPTION: Final = "Expert marks (TID 1500)"
TRACKING_PREFIX: Final = "OMI-DB mark "
PROCEDURE_REPORTED: Final = codes.SCT.Mammography
_DEFAULT_DATE: Final = "19700101"
_DA: Final = re.compile(r"^\d{8}$")
_TM: Final = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_EVIDENCE_KEYWORDS: Final = (
    "PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber",
    "StudyID", "StudyDate", "StudyTime",
)


@dataclass(frozen=True)
class PlannedMark:
    """A mark and the pathology of its linked lesion, as they go into the SR."""

    mark: MarkInput
    pathology: Pathology | None = None

    def canonical(self) -> dict[str, Any]:
        return {**self.mark.canonical(),
                "pathology": self.pathology.value if self.pathology else None}


def hashed_uid(*parts: str) -> str:
    """A ``2.25`` UID from the first 128 bits of the SHA-256 of ``parts``."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def _canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class SrIdentity:
    """The UIDs of the SR of one mark set."""

    series_instance_uid: str
    sop_instance_uid: str
    digest: str
    """SHA-256 of the canonical mark set (hex)."""


def sr_identity(image_uid: str, reader: str, marks: Sequence[PlannedMark]) -> SrIdentity:
    """UIDs derived from everything the SR says (see the module notes)."""
    content = {
        "encoding": SR_ENCODING,
        "image": image_uid,
        "reader": reader,
        "marks": [m.canonical() for m in sorted(marks, key=lambda m: m.mark.sort_key())],
    }
    digest = hashlib.sha256(_canonical_json(content).encode()).hexdigest()
    return SrIdentity(
        hashed_uid(SR_ENCODING, "series", digest),
        hashed_uid(SR_ENCODING, "instance", digest),
        digest,
    )


def tracking_uid(image_uid: str, mark: MarkInput) -> str:
    """A mark's Tracking Unique Identifier: stable for an OMI-DB mark ID on its image."""
    if mark.mark_id is not None:
        return hashed_uid(SR_ENCODING, "tracking", image_uid, mark.reader, mark.mark_id)
    return hashed_uid(SR_ENCODING, "tracking", image_uid, _canonical_json(mark.canonical()))


def tracking_text(mark: MarkInput, index: int) -> str:
    """The Tracking Identifier: ``OMI-DB mark <MarkID>``, or ``mark <n>`` without one."""
    return f"{TRACKING_PREFIX}{mark.mark_id}" if mark.mark_id else f"mark {index}"


def content_datetime(image: Dataset) -> tuple[str, str]:
    """The SR's content date and time: the image's content (else acquisition, series,
    study) date and time, never the clock, so a re-import is byte-identical."""
    for date_kw, time_kw in (("ContentDate", "ContentTime"),
                             ("AcquisitionDate", "AcquisitionTime"),
                             ("SeriesDate", "SeriesTime"), ("StudyDate", "StudyTime")):
        day = str(image.get(date_kw) or "").strip()
        if _DA.match(day):
            moment = str(image.get(time_kw) or "").strip()
            return day, moment if _TM.match(moment) else "000000"
    return _DEFAULT_DATE, "000000"


def _evidence(image: Dataset) -> Dataset:
    """The image header with the attributes highdicom copies into the SR present."""
    evidence = copy.copy(image)
    for keyword in _EVIDENCE_KEYWORDS:
        if keyword not in evidence:
            setattr(evidence, keyword, "")
    return evidence


def _code(code: Any) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(
        value=code.value, scheme_designator=code.scheme_designator, meaning=code.meaning
    )


def _evaluation(name: Any, value: Any) -> hd.sr.QualitativeEvaluation:
    return hd.sr.QualitativeEvaluation(name=_code(name), value=_code(value))


def evaluations(planned: PlannedMark) -> list[hd.sr.QualitativeEvaluation]:
    """The TID 1410 qualitative evaluations of one mark, in a fixed order."""
    mark = planned.mark
    out: list[hd.sr.QualitativeEvaluation] = []
    if mark.conspicuity is not None:
        out.append(_evaluation(CONSPICUITY, CONSPICUITY_CODES[mark.conspicuity]))
    if mark.mass_class is not None:
        out.append(_evaluation(*MASS_CLASS_EVALUATIONS[mark.mass_class]))
    if mark.benign_class is not None:
        out.append(_evaluation(CALCIFICATION_TYPE, BENIGN_CLASS_CODES[mark.benign_class]))
    for feature in FEATURE_KEYS:
        if feature in mark.features:
            out.append(_evaluation(*FEATURE_EVALUATIONS[feature]))
    for number in mark.lesion_numbers:
        out.append(_evaluation(NBSS_LESION, lesion_code(number)))
    if planned.pathology is not None:
        out.append(_evaluation(PATHOLOGY, PATHOLOGY_CODES[planned.pathology]))
    return out


def _finding_sites(image: Dataset) -> list[hd.sr.FindingSite]:
    laterality = str(image.get("ImageLaterality") or _frame_laterality(image) or "")
    side = {"L": codes.SCT.Left, "R": codes.SCT.Right}.get(laterality)
    return [hd.sr.FindingSite(anatomic_location=codes.SCT.Breast, laterality=side)]


def _frame_laterality(image: Dataset) -> str:
    """FrameLaterality of an enhanced (tomosynthesis) object, from its shared groups."""
    try:
        return str(image.SharedFunctionalGroupsSequence[0].FrameAnatomySequence[0]
                   .FrameLaterality)
    except (AttributeError, IndexError):
        return ""


def _group(image: Dataset, planned: PlannedMark, index: int) -> Any:
    mark = planned.mark
    c0, r0, c1, r1 = mark.box
    frames = [mark.frame] if mark.frame is not None else None
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.array([[c0, r0], [c1, r0], [c1, r1], [c0, r1], [c0, r0]], dtype=float),
        source_image=hd.sr.SourceImageForRegion.from_source_image(
            image, referenced_frame_numbers=frames
        ),
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=tracking_uid(str(image.SOPInstanceUID), mark),
            identifier=tracking_text(mark, index),
        ),
        referenced_region=region,
        finding_type=_code(FINDING_CODES[mark.finding_kind]),
        finding_category=_code(FINDING_CATEGORY),
        finding_sites=_finding_sites(image),
        qualitative_evaluations=evaluations(planned),
    )


def _observation_context(reader: str) -> Any:
    if not reader:
        return hd.sr.ObservationContext()
    return hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            # A one-component name, closed with its caret (PS3.5 6.2.1).
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=f"{reader}^"
            ),
        )
    )


def build_marks_sr(image: Dataset, marks: Sequence[PlannedMark]) -> Dataset:
    """The SR of one image's marks by one observer (see the module notes).

    Parameters
    ----------
    image
        The stored (archive) header of the marked image, without pixel data.
    marks
        At least one mark, all on ``image`` and by the same reader.

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
        Ready to be written and ingested.
    """
    if not marks:
        raise ValueError("an SR needs at least one mark")
    sop_uid = str(image.SOPInstanceUID)
    readers = {m.mark.reader for m in marks}
    if len(readers) != 1 or any(m.mark.sop_uid != sop_uid for m in marks):
        raise ValueError("the marks of one SR are on one image, by one reader")
    reader = readers.pop()
    ordered = sorted(marks, key=lambda m: m.mark.sort_key())
    identity = sr_identity(sop_uid, reader, ordered)
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(reader),
        procedure_reported=_code(PROCEDURE_REPORTED),
        imaging_measurements=[_group(image, m, i) for i, m in enumerate(ordered, start=1)],
        title=codes.DCM.ImagingMeasurementReport,
    )
    day, moment = content_datetime(image)
    with warnings.catch_warnings():
        # De-identified Patient's Names are one-component pseudonyms by design.
        warnings.filterwarnings("ignore", "The string .* person name", UserWarning)
        sr = _document(image, report, identity, day, moment)
    sr.InstanceCreationDate = DA(day)
    sr.InstanceCreationTime = TM(moment)
    _own_equipment(sr, f"{day}{moment}")
    return sr


def _document(
    image: Dataset, report: Any, identity: SrIdentity, day: str, moment: str
) -> hd.sr.Comprehensive3DSR:
    return hd.sr.Comprehensive3DSR(
        evidence=[_evidence(image)],
        content=report,
        series_instance_uid=identity.series_instance_uid,
        series_number=SERIES_NUMBER,
        sop_instance_uid=identity.sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=True,
        series_description=SERIES_DESCRIPTION,
        manufacturer_model_name=MANUFACTURER,
        software_versions=SR_ENCODING,
        content_date=day,
        content_time=moment,
        series_date=day,
        series_time=moment,
        coding_schemes=[
            CodingSchemeIdentificationItem(
                designator=LOCAL_SCHEME, name=LOCAL_SCHEME_NAME,
                responsible_organization=MANUFACTURER,
            )
        ],
    )


def _own_equipment(sr: Dataset, when: str) -> None:
    """Name this encoder, not the library (whose version and clock would vary)."""
    kept = [item for item in sr.get("ContributingEquipmentSequence", [])
            if str(item.get("ManufacturerModelName", "")) != "highdicom"]
    ours = hd.ContributingEquipment(
        MANUFACTURER,
        codes.DCM.ProcessingEquipment,
        manufacturer_model_name=MANUFACTURER,
        software_versions=SR_ENCODING,
        contribution_datetime=when,
        contribution_description="Encoding of expert marks as a Measurement Report",
    )
    sr.ContributingEquipmentSequence = [*kept, ours]


def write_sr(sr: Dataset, path: Path) -> None:
    """Write ``sr`` as a DICOM file (Part 10, with File Meta Information)."""
    dcmwrite(path, sr, enforce_file_format=True)
