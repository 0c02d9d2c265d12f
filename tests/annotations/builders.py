"""Images in an archive and mark records against them, for the marks tests."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from omipacs.annotations.indexer import SrMarkIndexer
from omipacs.demo import factory
from omipacs.demo.names import FakePatient, fake_patient
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.services import Services

READER = "RDRABCDEFGHIJKL"
OTHER_READER = "RDRMNOPQRSTUVWX"


@dataclass(frozen=True)
class StoredImage:
    """An image as the archive stored it (archive UIDs)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    rows: int
    columns: int
    frames: int


def with_indexer(services: Services) -> Services:
    """``services`` with the SR mark indexer, as ``open_archive`` wires it."""
    if not any(isinstance(i, SrMarkIndexer) for i in services.pipeline.indexers):
        services.pipeline.indexers.append(SrMarkIndexer(services.blobs))
    return services


def patient(seed: int) -> FakePatient:
    return fake_patient(np.random.default_rng(seed))


def store_image(
    services: Services,
    *,
    seed: int = 1,
    dbt: bool = False,
    laterality: str = "L",
    view: str = "CC",
    who: FakePatient | None = None,
    study_uid: str | None = None,
    deidentify: bool = False,
    rows: int = 64,
    columns: int = 48,
    frames: int = 5,
) -> StoredImage:
    """Make a synthetic image and ingest it through the pipeline."""
    common: dict[str, Any] = {"laterality": laterality, "view": view, "rng": seed,
                              "patient": who or patient(seed), "study_uid": study_uid,
                              "rows": rows, "columns": columns}
    ds = factory.make_dbt(frames=frames, **common) if dbt else factory.make_mammo(**common)
    origin = IngestOrigin(OriginKind.IMPORT, ae_title="SITE_A", deidentify=deidentify)
    result = services.pipeline.ingest_stream(io.BytesIO(factory.to_bytes(ds)), origin)
    return StoredImage(result.study_instance_uid, result.series_instance_uid,
                       result.sop_instance_uid, rows, columns, frames if dbt else 1)


def record(image: StoredImage, **fields: Any) -> dict[str, Any]:
    """An OMI-DB mark record on ``image`` (a box well inside it unless overridden)."""
    base: dict[str, Any] = {
        "StudyInstanceUID": image.study_uid,
        "SeriesInstanceUID": image.series_uid,
        "SOPInstanceUID": image.sop_uid,
        "X1": 5, "Y1": 6, "X2": 20, "Y2": 30,
        "MarkID": 101,
        "Conspicuity": "Subtle",
        "Mass": 1,
        "MassClassification": "spiculated",
        "LinkedNBSSLesionNumber": "1",
        "Reader": READER,
    }
    if image.frames > 1:
        base["FrameNumber"] = 2
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}
