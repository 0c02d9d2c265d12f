"""Write an OMI-DB-like demonstration data set of synthetic screening clients.

Each client belongs to one site, and each site has one vendor's equipment. A client has
1-4 routine screening episodes, 156 weeks apart (three years less three days, so that
every visit falls on the same weekday and the intervals are exact). Each screening
study holds the four standard views (LCC, LMLO, RCC, RMLO) both For Processing and For
Presentation, every image in its own series as OMI-DB delivers them (eight instances).
About ``dbt_fraction`` of the clients are recalled: 2-4 weeks after the last screen they
get an assessment study with one or two single-breast tomosynthesis views.

Everything derives from ``seed``: the same seed gives byte-identical files. Client ``i``
depends only on ``(seed, i)``, so asking for more clients keeps the first ones unchanged
(only the choice of recalled clients changes).

The work is split so a caller can show progress: :func:`plan_demo` decides everything
(UIDs, dates, paths) without touching the disk, :func:`write_demo` writes the files one
at a time and yields each as it lands, and :func:`generate_demo` does both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalMammographyXRayImageStorageForProcessing,
)

from omipacs.demo.factory import (
    DBT_FULL_SIZE,
    VENDORS,
    BreastTomosynthesisImageStorage,
    make_dbt,
    make_mammo,
    new_uid,
    save,
)
from omipacs.demo.names import FakePatient, fake_patient, fake_person_name

StudyKind = Literal["screening", "assessment"]

SCREENING_INTERVAL = timedelta(weeks=156)
"""Gap between routine screens: the NHS three-year recall, kept on the same weekday."""
SCREENING_VIEWS = (("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO"))
SITE_VENDORS = ("HOLOGIC", "GE", "SIEMENS")
"""Vendor of the i-th site (cycled)."""
SMALL_MAMMO = (256, 208)
SMALL_DBT = (128, 104)
DBT_FRAMES = {False: 10, True: 60}
_FIRST_SCREEN = date(2010, 1, 4)
_LAST_SCREEN = date(2024, 12, 20)


@dataclass(frozen=True)
class DemoInstance:
    """One written (or planned) instance, with what a consumer needs to check it."""

    path: Path
    client: int
    """Index of the client in :attr:`DemoManifest.clients`."""
    site: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    kind: StudyKind
    study_date: date
    laterality: str
    view: str
    processed: bool
    """True for FOR PRESENTATION (all tomosynthesis), False for FOR PROCESSING."""
    frames: int
    acquisition: int
    """1-based exposure number in the study; a processed/raw pair shares it."""


@dataclass(frozen=True)
class DemoStudy:
    """One study of one client."""

    study_uid: str
    date: date
    kind: StudyKind
    episode: int
    """1-based screening round; an assessment belongs to the round it follows."""
    accession_number: str
    instances: tuple[DemoInstance, ...]

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(i.path for i in self.instances)

    @property
    def lateralities(self) -> tuple[str, ...]:
        """Breasts imaged, e.g. ``("L", "R")`` for screening, ``("R",)`` for a recall."""
        return tuple(sorted({i.laterality for i in self.instances}))


@dataclass(frozen=True)
class DemoClient:
    """One fake screening client and her studies, oldest first."""

    index: int
    patient: FakePatient
    site: str
    vendor: str
    studies: tuple[DemoStudy, ...]

    @property
    def nhs_number(self) -> str:
        return self.patient.nhs_number


@dataclass(frozen=True)
class DemoManifest:
    """Everything :func:`write_demo` writes, known before any file exists."""

    out_dir: Path
    seed: int
    full_size: bool
    sites: tuple[str, ...]
    clients: tuple[DemoClient, ...]

    @property
    def studies(self) -> tuple[DemoStudy, ...]:
        return tuple(s for c in self.clients for s in c.studies)

    @property
    def instances(self) -> tuple[DemoInstance, ...]:
        return tuple(i for s in self.studies for i in s.instances)


def _study_header(seed: int, client: int, study: int, kind: StudyKind) -> dict[str, Any]:
    """Study-level attributes every instance of one study shares."""
    rng = np.random.default_rng([seed, client, study, 1])
    start = time(8 + int(rng.integers(0, 8)), int(rng.integers(0, 60)), 0)
    return {
        "AccessionNumber": f"MG{int(rng.integers(10**7, 10**8))}",
        "StudyID": str(int(rng.integers(1, 10**5))),
        "StudyTime": start.strftime("%H%M%S"),
        "ReferringPhysicianName": fake_person_name(rng),
        "StudyDescription": "Bilateral Screening Mammography"
        if kind == "screening"
        else "Breast Assessment Tomosynthesis",
    }


def _site_header(site_index: int, vendor: str) -> dict[str, Any]:
    """Equipment and institution attributes; sites beyond the vendor list get new devices."""
    if site_index < len(SITE_VENDORS):
        return {}
    profile, n = VENDORS[vendor], site_index // len(SITE_VENDORS) + 1
    return {
        "InstitutionName": f"{profile.institution} {n}",
        "DeviceSerialNumber": f"{profile.device_serial}{n}",
        "StationName": f"{profile.station}-{n}"[:16],
    }


def _closed(day: date) -> bool:
    """Days the breast screening unit is shut: weekends and Christmas to New Year."""
    return day.weekday() >= 5 or (day.month, day.day) >= (12, 24) or (day.month, day.day) == (1, 1)


def _plan_client(
    out_dir: Path, seed: int, index: int, site: str, vendor: str, recalled: bool, frames: int
) -> DemoClient:
    rng = np.random.default_rng([seed, index])
    episodes = int(rng.integers(1, 5))
    side = "L" if rng.random() < 0.5 else "R"
    dbt_views = (("CC",), ("MLO",), ("CC", "MLO"))[int(rng.integers(3))]
    recall_gap = timedelta(weeks=int(rng.integers(2, 5)))
    span = (_LAST_SCREEN - _FIRST_SCREEN).days - SCREENING_INTERVAL.days * (episodes - 1)
    while True:  # every visit keeps the first one's weekday; redraw if any lands on a closure
        first = _FIRST_SCREEN + timedelta(days=int(rng.integers(span)))
        screens = [first + SCREENING_INTERVAL * e for e in range(episodes)]
        if not any(_closed(d) for d in (*screens, screens[-1] + recall_gap)):
            break
    oldest = 70 - 3 * (episodes - 1)  # stay inside the screening ages up to the last visit
    patient = fake_patient(
        rng,
        born_between=(
            first - timedelta(days=round(365.25 * (oldest + 1)) - 1),
            first - timedelta(days=round(365.25 * 50)),
        ),
    )
    visits: list[tuple[date, StudyKind, int, tuple[tuple[str, str], ...]]] = [
        (day, "screening", e + 1, SCREENING_VIEWS) for e, day in enumerate(screens)
    ]
    if recalled:
        visits.append(
            (screens[-1] + recall_gap, "assessment", episodes, tuple((side, v) for v in dbt_views))
        )
    client_dir = out_dir / site / f"client{index:05d}"
    studies = []
    for s, (day, kind, episode, views) in enumerate(visits):
        study_uid = new_uid(rng)
        folder = client_dir / f"{day:%Y%m%d}_{kind}"
        instances: list[DemoInstance] = []
        forms = (False, True) if kind == "screening" else (True,)
        for a, (laterality, view) in enumerate(views, start=1):
            for processed in forms:
                n = len(instances) + 1
                label = "DBT" if kind == "assessment" else ("PRES" if processed else "PROC")
                sop_class = (
                    BreastTomosynthesisImageStorage
                    if kind == "assessment"
                    else DigitalMammographyXRayImageStorageForPresentation
                    if processed
                    else DigitalMammographyXRayImageStorageForProcessing
                )
                instances.append(
                    DemoInstance(
                        path=folder / f"{n:02d}_{laterality}{view}_{label}.dcm",
                        client=index,
                        site=site,
                        study_uid=study_uid,
                        series_uid=new_uid(rng),
                        sop_uid=new_uid(rng),
                        sop_class_uid=sop_class,
                        kind=kind,
                        study_date=day,
                        laterality=laterality,
                        view=view,
                        processed=processed,
                        frames=1 if kind == "screening" else frames,
                        acquisition=a,
                    )
                )
        studies.append(
            DemoStudy(
                study_uid=study_uid,
                date=day,
                kind=kind,
                episode=episode,
                accession_number=_study_header(seed, index, s, kind)["AccessionNumber"],
                instances=tuple(instances),
            )
        )
    return DemoClient(
        index=index, patient=patient, site=site, vendor=vendor, studies=tuple(studies)
    )


def plan_demo(
    out_dir: Path,
    *,
    clients: int = 20,
    seed: int = 0,
    full_size: bool = False,
    dbt_fraction: float = 0.2,
    sites: Sequence[str] = ("SITE_A", "SITE_B"),
) -> DemoManifest:
    """Decide the whole data set (clients, dates, UIDs, file paths) without writing.

    Parameters are those of :func:`generate_demo`. ``len(plan.instances)`` is the
    number of files :func:`write_demo` will write, for a progress bar.
    """
    if clients < 0:
        raise ValueError("clients must not be negative")
    if not 0.0 <= dbt_fraction <= 1.0:
        raise ValueError("dbt_fraction must lie between 0 and 1")
    if not sites or len(set(sites)) != len(sites):
        raise ValueError("sites must be a non-empty list of distinct codes")
    recalled = set(
        np.random.default_rng(seed)
        .choice(clients, size=round(dbt_fraction * clients), replace=False)
        .tolist()
    )
    planned = tuple(
        _plan_client(
            out_dir,
            seed,
            index,
            sites[index % len(sites)],
            SITE_VENDORS[index % len(sites) % len(SITE_VENDORS)],
            index in recalled,
            DBT_FRAMES[full_size],
        )
        for index in range(clients)
    )
    return DemoManifest(
        out_dir=out_dir, seed=seed, full_size=full_size, sites=tuple(sites), clients=planned
    )


def build_instance(
    manifest: DemoManifest, client: DemoClient, study_index: int, instance_index: int
) -> Dataset:
    """Make the data set of one planned instance (deterministic, no file written)."""
    study = client.studies[study_index]
    instance = study.instances[instance_index]
    header = _study_header(manifest.seed, client.index, study_index, study.kind)
    header |= _site_header(manifest.sites.index(client.site), client.vendor)
    start = datetime.combine(study.date, time.fromisoformat(header["StudyTime"]))
    acquired = start + timedelta(minutes=3 * instance.acquisition - 1)
    header |= {
        "IssuerOfPatientID": f"PAS_{client.site}",
        "SeriesNumber": instance_index + 1,
        "AcquisitionDateTime": acquired.strftime("%Y%m%d%H%M%S.000000"),
        "SeriesTime": acquired.strftime("%H%M%S"),
        "AcquisitionTime": acquired.strftime("%H%M%S"),
        "ContentTime": acquired.strftime("%H%M%S"),
        "InstanceCreationTime": acquired.strftime("%H%M%S"),
    }
    # Both forms of one exposure share a generator, hence anatomy and dose values.
    rng = np.random.default_rng([manifest.seed, client.index, study_index, 2, instance.acquisition])
    common: dict[str, Any] = {
        "laterality": instance.laterality,
        "view": instance.view,
        "vendor": client.vendor,
        "patient": client.patient,
        "study_uid": study.study_uid,
        "series_uid": instance.series_uid,
        "sop_uid": instance.sop_uid,
        "study_date": study.date,
        "rng": rng,
    }
    if instance.kind == "assessment":
        rows, columns = DBT_FULL_SIZE if manifest.full_size else SMALL_DBT
        return make_dbt(frames=instance.frames, rows=rows, columns=columns, **common, **header)
    rows, columns = VENDORS[client.vendor].full_size if manifest.full_size else SMALL_MAMMO
    if instance.processed:
        raw = next(
            i for i in study.instances if i.acquisition == instance.acquisition and not i.processed
        )
        source = Dataset()
        source.ReferencedSOPClassUID = raw.sop_class_uid
        source.ReferencedSOPInstanceUID = raw.sop_uid
        header["SourceImageSequence"] = DicomSequence([source])
    return make_mammo(processed=instance.processed, rows=rows, columns=columns, **common, **header)


def write_demo(manifest: DemoManifest) -> Iterator[tuple[Path, DemoInstance]]:
    """Write every planned instance, yielding each one once its file is complete.

    Files are written under a temporary name and renamed into place, so a watcher
    never sees half a file.
    """
    for client in manifest.clients:
        for study_index, study in enumerate(client.studies):
            for instance_index, instance in enumerate(study.instances):
                ds = build_instance(manifest, client, study_index, instance_index)
                instance.path.parent.mkdir(parents=True, exist_ok=True)
                partial = instance.path.with_name(instance.path.name + ".part")
                save(ds, partial)
                del ds
                os.replace(partial, instance.path)
                yield instance.path, instance


def iter_demo(
    out_dir: Path,
    *,
    clients: int = 20,
    seed: int = 0,
    full_size: bool = False,
    dbt_fraction: float = 0.2,
    sites: Sequence[str] = ("SITE_A", "SITE_B"),
) -> Iterator[tuple[Path, DemoInstance]]:
    """Plan and write the data set, yielding ``(path, instance)`` as files are written."""
    yield from write_demo(
        plan_demo(
            out_dir,
            clients=clients,
            seed=seed,
            full_size=full_size,
            dbt_fraction=dbt_fraction,
            sites=sites,
        )
    )


def generate_demo(
    out_dir: Path,
    *,
    clients: int = 20,
    seed: int = 0,
    full_size: bool = False,
    dbt_fraction: float = 0.2,
    sites: Sequence[str] = ("SITE_A", "SITE_B"),
) -> DemoManifest:
    """Write an OMI-DB-like demonstration data set and return its manifest.

    Parameters
    ----------
    out_dir : pathlib.Path
        Root folder; files go to ``<site>/client<NNNNN>/<date>_<kind>/NN_<view>_<form>.dcm``.
    clients : int
        Number of fake women, dealt to the sites in turn.
    seed : int
        Makes the output byte-identical between runs.
    full_size : bool
        Real detector matrices (about 9-27 MB per 2D image, 560 MB per 60-slice DBT
        view) instead of small thumbnails-sized images.
    dbt_fraction : float
        Share of clients recalled for a tomosynthesis assessment (rounded to a count).
    sites : sequence of str
        Site codes; site ``i`` uses ``SITE_VENDORS[i % 3]``.
    """
    manifest = plan_demo(
        out_dir,
        clients=clients,
        seed=seed,
        full_size=full_size,
        dbt_fraction=dbt_fraction,
        sites=sites,
    )
    for _ in write_demo(manifest):
        pass
    return manifest
