"""A small archive for the query tests, built through the real ingest pipeline.

Four studies, ten instances, chosen so every matching rule has something to find and
something to miss:

====  =================  ============  =========  ====================================
study patient (ID)        date, time    accession  series (laterality view, notes)
====  =================  ============  =========  ====================================
1     O'Brien^Mary P001  20200301 0930 ACC%1      1.1 L CC, 1.2 L MLO raw, 1.3 R CC,
                                                  1.4 R MLO implant (all HOLOGIC)
2     Smith^Joan         20210615 1415 ACCX1      2.1 DBT L CC 3 frames, 2.2 R MLO x2
      (' OR 1=1--)                                (thickness 40, 60), 2.3 SC (OT), GE
3     Ng^Ann X_1         (none)        (none)     3.1 L CC, SIEMENS
4     NGUYEN^ANNA XA1    20200301 1200 (none)     4.1 R CC, HOLOGIC
====  =================  ============  =========  ====================================

UIDs are ``ROOT + label``: study ``2``, series ``2.2``, instance ``2.2.1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from omipacs.demo import factory
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.services import Services

ROOT = "2.25.1999."
ORIGIN = IngestOrigin(OriginKind.IMPORT, deidentify=False)


def uid(label: str) -> str:
    """The UID of a study, series or instance of the fixture, by label."""
    return ROOT + label


def label(uid_: str) -> str:
    """Inverse of :func:`uid`."""
    assert uid_.startswith(ROOT), uid_
    return uid_[len(ROOT) :]


_PATIENTS: dict[int, dict[str, Any]] = {
    1: {
        "PatientName": "O'Brien^Mary",
        "PatientID": "P001",
        "PatientBirthDate": "19600101",
        "PatientSex": "F",
        "StudyDate": "20200301",
        "StudyTime": "093000",
        "AccessionNumber": "ACC%1",
        "StudyDescription": "Screening_2020",
        "ReferringPhysicianName": "Who^Doctor",
    },
    2: {
        "PatientName": "Smith^Joan",
        "PatientID": "' OR 1=1--",
        "PatientBirthDate": "19700505",
        "PatientSex": "O",
        "StudyDate": "20210615",
        "StudyTime": "141500",
        "AccessionNumber": "ACCX1",
        "StudyDescription": "Assessment",
        "ReferringPhysicianName": "House^Greg",
    },
    3: {
        "PatientName": "Ng^Ann",
        "PatientID": "X_1",
        "PatientBirthDate": "19801231",
        "PatientSex": "F",
        "StudyDate": None,
        "StudyTime": None,
        "AccessionNumber": "",
        "StudyDescription": "Screening",
        "ReferringPhysicianName": "",
    },
    4: {
        "PatientName": "NGUYEN^ANNA",
        "PatientID": "XA1",
        "PatientBirthDate": "19550101",
        "PatientSex": "F",
        "StudyDate": "20200301",
        "StudyTime": "120000",
        "AccessionNumber": "",
        "StudyDescription": "Screening",
        "ReferringPhysicianName": "Whom^Doc",
    },
}

MG_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
BTO = "1.2.840.10008.5.1.4.1.1.13.1.3"
SC = "1.2.840.10008.5.1.4.1.1.7"


def _mammo(lat: factory.Laterality, view: factory.View, vendor: factory.Vendor, **kw: Any) -> Any:
    def build(**ids: Any) -> Dataset:
        return factory.make_mammo(
            laterality=lat, view=view, vendor=vendor, rows=32, columns=32, rng=1, **ids, **kw
        )

    return build


def _specs() -> list[tuple[str, Any, dict[str, Any]]]:
    """(instance label, builder, overrides) for every instance of the fixture."""
    return [
        ("1.1.1", _mammo("L", "CC", "HOLOGIC"), {"BodyPartThickness": 30.0}),
        ("1.2.1", _mammo("L", "MLO", "HOLOGIC", processed=False), {"BodyPartThickness": 30.0}),
        ("1.3.1", _mammo("R", "CC", "HOLOGIC"), {"BodyPartThickness": 30.0}),
        (
            "1.4.1",
            _mammo("R", "MLO", "HOLOGIC"),
            {"BodyPartThickness": 30.0, "BreastImplantPresent": "YES"},
        ),
        (
            "2.1.1",
            lambda **ids: factory.make_dbt(
                laterality="L", view="CC", frames=3, rows=32, columns=32, vendor="GE", rng=2, **ids
            ),
            {},
        ),
        ("2.2.1", _mammo("R", "MLO", "GE"), {"BodyPartThickness": 40.0, "InstanceNumber": 2}),
        ("2.2.2", _mammo("R", "MLO", "GE"), {"BodyPartThickness": 60.0, "InstanceNumber": 1}),
        (
            "2.3.1",
            lambda **ids: factory.make_secondary_capture(
                burned_in_annotation="NO", rows=64, columns=64, vendor="GE", rng=3, **ids
            ),
            {},
        ),
        ("3.1.1", _mammo("L", "CC", "SIEMENS"), {"BodyPartThickness": 30.0}),
        ("4.1.1", _mammo("R", "CC", "HOLOGIC"), {"BodyPartThickness": 30.0}),
    ]


def _study_date(study: int) -> date:
    """The day each study's other dates (SeriesDate, ContentDate) fall on."""
    value = _PATIENTS[study]["StudyDate"] or "20190101"
    return date(int(value[:4]), int(value[4:6]), int(value[6:]))


def populate(services: Services, workdir: Path) -> None:
    """Ingest the fixture's ten instances."""
    for inst_label, build, extra in _specs():
        study, series, _ = inst_label.split(".")
        overrides: dict[str, Any] = {
            **_PATIENTS[int(study)],
            "SeriesNumber": int(series),
            **extra,
        }
        ds = build(
            study_uid=uid(study),
            series_uid=uid(f"{study}.{series}"),
            sop_uid=uid(inst_label),
            study_date=_study_date(int(study)),
            **overrides,
        )
        path = workdir / f"{inst_label}.dcm"
        factory.save(ds, path)
        services.pipeline.ingest_file(path, ORIGIN)


@dataclass(frozen=True)
class Archive:
    """The populated archive of one backend."""

    services: Services
    backend: str
