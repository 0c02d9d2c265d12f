"""Image headers and SRs written the way other software writes them, for the marks tests.

:func:`viewer_sr` is built here independently of :mod:`omipacs.annotations.sr_write`,
as a viewer (OHIF's measurement tracking) saves a report: highdicom, TID 1500, one
planar ROI per finding with a tracking identifier, its own UIDs and clock.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Literal

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from omipacs.demo import factory


def header(*, dbt: bool = False, seed: int = 3, laterality: Literal["L", "R"] = "L") -> Dataset:
    """A synthetic image header as the archive stores it (no pixel data)."""
    ds = (factory.make_dbt(frames=5, rng=seed, laterality=laterality) if dbt
          else factory.make_mammo(rows=64, columns=48, rng=seed, laterality=laterality))
    return pydicom.dcmread(io.BytesIO(factory.to_bytes(ds)), stop_before_pixels=True)


def _region(image: Dataset, graphic_type: str, points: Sequence[Sequence[float]],
            frame: int | None = None) -> hd.sr.ImageRegion:
    return hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues[graphic_type],
        graphic_data=np.array(points, dtype=float),
        source_image=hd.sr.SourceImageForRegion.from_source_image(
            image, referenced_frame_numbers=[frame] if frame else None
        ),
    )


def planar_group(
    image: Dataset,
    name: str,
    graphic_type: str,
    points: Sequence[Sequence[float]],
    *,
    frame: int | None = None,
    finding: Code = codes.SCT.MammographicBreastMass,
    evaluations: Sequence[tuple[Code, Code]] = (),
    measurements: Sequence[hd.sr.Measurement] = (),
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    """One finding: a TID 1410 group with a tracking identifier and a 2D region."""
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier=name, uid=hd.UID()),
        referenced_region=_region(image, graphic_type, points, frame),
        finding_type=finding,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=n, value=v)
                                 for n, v in evaluations] or None,
        measurements=list(measurements) or None,
    )


def inferred_group(image: Dataset, name: str, points: Sequence[Sequence[float]]) -> object:
    """A TID 1501 group whose only geometry is the SCOORD a length is inferred from."""
    length = hd.sr.Measurement(
        name=codes.SCT.Length,
        value=12.5,
        unit=codes.UCUM.Millimeter,
        referenced_coordinates=[hd.sr.CoordinatesForMeasurement(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=np.array(points, dtype=float),
            source_image=hd.sr.SourceImageForRegion.from_source_image(image),
        )],
    )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier=name, uid=hd.UID()),
        measurements=[length],
    )


def viewer_sr(image: Dataset, groups: Sequence[object], *,
              observer: str = "Viewer^Reader") -> Dataset:
    """A Comprehensive 3D SR measurement report, as a viewer would save it."""
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_person_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Person,
                observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                    name=observer
                ),
            )
        ),
        procedure_reported=codes.LN.MammographyScreeningReport,
        imaging_measurements=list(groups),  # type: ignore[arg-type]
        title=codes.DCM.ImagingMeasurementReport,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[image], content=report, series_number=42, series_instance_uid=hd.UID(),
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Viewer",
        is_complete=True,
    )
    return sr


def to_bytes(ds: Dataset) -> bytes:
    """A Part 10 file in memory."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
