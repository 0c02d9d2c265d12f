"""Demo marks: the brochure's shares, on the right clients, inside the breast."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from sqlalchemy import select

from omipacs.annotations.importer import import_marks
from omipacs.annotations.records import READER_PSEUDONYM
from omipacs.clinical.codes import CaseOutcome
from omipacs.clinical.importer import import_records
from omipacs.clinical.stats import stats
from omipacs.deid.keys import DeidKeys
from omipacs.demo.clinical import clinical_records_for
from omipacs.demo.factory import to_bytes
from omipacs.demo.generate import build_instance, plan_demo
from omipacs.demo.marks import demo_marks, marked_counts, marked_shares, reader_pool
from omipacs.index.models import Instance
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.services import Services

SEED = 6
WEIGHTS = {CaseOutcome.NORMAL: 0, CaseOutcome.BENIGN: 2, CaseOutcome.MALIGNANT: 3,
           CaseOutcome.INTERVAL_CANCER: 1, CaseOutcome.UNKNOWN: 0}


def test_the_brochure_shares() -> None:
    shares = marked_shares()
    assert shares[CaseOutcome.MALIGNANT] == pytest.approx(7160 / 15404)
    assert shares[CaseOutcome.BENIGN] == pytest.approx(1432 / 11029)
    assert shares[CaseOutcome.INTERVAL_CANCER] == pytest.approx(83 / 2860)


@pytest.mark.parametrize(
    ("available", "expected"),
    [({CaseOutcome.MALIGNANT: 15404, CaseOutcome.BENIGN: 11029,
       CaseOutcome.INTERVAL_CANCER: 2860},
      {CaseOutcome.MALIGNANT: 7160, CaseOutcome.BENIGN: 1432, CaseOutcome.INTERVAL_CANCER: 83}),
     ({CaseOutcome.MALIGNANT: 100, CaseOutcome.BENIGN: 100, CaseOutcome.INTERVAL_CANCER: 100},
      {CaseOutcome.MALIGNANT: 46, CaseOutcome.BENIGN: 13, CaseOutcome.INTERVAL_CANCER: 3}),
     ({CaseOutcome.MALIGNANT: 1, CaseOutcome.BENIGN: 2, CaseOutcome.INTERVAL_CANCER: 0},
      {CaseOutcome.MALIGNANT: 1, CaseOutcome.BENIGN: 1, CaseOutcome.INTERVAL_CANCER: 0})],
)
def test_marked_counts(available: dict[CaseOutcome, int],
                       expected: dict[CaseOutcome, int]) -> None:
    assert marked_counts(available, marked_shares()) == expected


def test_readers_look_like_pseudonyms() -> None:
    pool = reader_pool(SEED)
    assert len(set(pool)) == len(pool) and all(READER_PSEUDONYM.match(r) for r in pool)
    assert reader_pool(SEED) == pool != reader_pool(SEED + 1)


def load_demo_images(archive: Services, tmp_path: Path) -> list[dict[str, object]]:
    """The demo's FOR PRESENTATION and DBT images, de-identified, and its NBSS records."""
    manifest = plan_demo(tmp_path, clients=6, seed=SEED, dbt_fraction=0.5)
    origin = IngestOrigin(OriginKind.DEMO, ae_title="SITE_A", deidentify=True)
    for client in manifest.clients:
        for s, study in enumerate(client.studies):
            for i, instance in enumerate(study.instances):
                if instance.processed:
                    ds = build_instance(manifest, client, s, i)
                    archive.pipeline.ingest_stream(io.BytesIO(to_bytes(ds)), origin)
    return clinical_records_for(manifest, SEED, WEIGHTS)


def breast_fraction(archive: Services, record: dict[str, object]) -> float:
    """Share of the box's pixels that are breast tissue in the stored image."""
    with archive.sessions() as s:
        key = s.scalar(select(Instance.blob_key)
                       .where(Instance.sop_instance_uid == record["SOPInstanceUID"]))
    assert key is not None
    with archive.blobs.open(key) as f:
        ds = pydicom.dcmread(f)
    pixels = ds.pixel_array.astype(np.float64)
    if pixels.ndim == 3:
        pixels = pixels[int(str(record["FrameNumber"])) - 1]
    top = float(2 ** int(ds.BitsStored) - 1)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        pixels = top - pixels
    x1, y1, x2, y2 = (int(str(record[k])) for k in ("X1", "Y1", "X2", "Y2"))
    box = pixels[y1:y2, x1:x2]
    return float((box > 0.1 * top).mean())


def test_demo_marks_cover_the_marked_cases(archive: Services, tmp_path: Path) -> None:
    records = load_demo_images(archive, tmp_path)
    keys = archive.extras["deid.keys"]
    assert isinstance(keys, DeidKeys)
    with archive.write_sessions() as s:
        assert import_records(s, records, keys).ok

    with archive.sessions() as s:
        marks = demo_marks(s, seed=SEED)
        assert demo_marks(s, seed=SEED) == marks
    assert marks, "the demo has marked cases"
    assert len({m["MarkID"] for m in marks}) == len(marks)
    assert any("FrameNumber" in m for m in marks)  # a recalled cancer's DBT slice
    for mark in marks:
        assert breast_fraction(archive, mark) == 1.0, mark

    report = import_marks(archive, marks)
    assert report.ok and report.accepted == len(marks)
    with archive.sessions() as s:
        table = stats(s).marked.counts
    # 3 malignant (46 % -> 1), 2 benign (13 % -> at least 1), 1 interval cancer (1)
    assert {o: table.get(o, 0) for o in (CaseOutcome.MALIGNANT, CaseOutcome.BENIGN,
                                         CaseOutcome.INTERVAL_CANCER)} == {
        CaseOutcome.MALIGNANT: 1, CaseOutcome.BENIGN: 1, CaseOutcome.INTERVAL_CANCER: 1}
    assert import_marks(archive, marks).already_stored == len(report.srs)
