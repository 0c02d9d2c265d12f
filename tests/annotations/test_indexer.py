"""SRs arriving by any door are read into marks; nothing an SR holds can make it fail."""

from __future__ import annotations

import io
import json
import logging

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from sqlalchemy import delete, func, select

from omipacs.annotations.codes import FindingKind, local
from omipacs.annotations.indexer import backfill_marks, resolve_pending_marks
from omipacs.annotations.models import Mark
from omipacs.annotations.search import search_marks
from omipacs.clinical.models import Client
from omipacs.clinical.stats import stats
from omipacs.demo import factory
from omipacs.index.models import Instance
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.ingest.result import IngestOutcome
from omipacs.services import Services
from omipacs.web.app import create_app
from tests.annotations.builders import store_image, with_indexer
from tests.annotations.sr_builders import planar_group, to_bytes, viewer_sr

BOUNDARY = "omipacs-marks-boundary"
CT = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def multipart(*parts: bytes) -> bytes:
    out = b""
    for p in parts:
        out += f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def stored_header(services: Services, sop_uid: str) -> Dataset:
    with services.sessions() as s:
        key = s.scalar(select(Instance.blob_key).where(Instance.sop_instance_uid == sop_uid))
    assert key is not None
    with services.blobs.open(key) as f:
        return pydicom.dcmread(f, stop_before_pixels=True)


def test_a_viewer_sr_sent_by_stow_becomes_marks(viewer_archive: Services) -> None:
    archive = viewer_archive
    image = store_image(archive, seed=61, dbt=True, deidentify=True)
    header = stored_header(archive, image.sop_uid)
    sr = viewer_sr(header, [
        planar_group(header, "Finding 1", "POLYLINE",
                     [[4, 5], [24, 5], [24, 30], [4, 30], [4, 5]], frame=3,
                     evaluations=[(codes.DCM.Margins, codes.SCT.SpiculatedLesion),
                                  (local("CONSPICUITY", "Conspicuity"),
                                   local("SUBTLE", "Subtle"))]),
        planar_group(header, "Finding 2", "CIRCLE", [[30, 40], [30, 44]], frame=2,
                     finding=codes.SCT.CalcificationCluster),
    ])
    web = create_app(archive).test_client()
    response = web.post("/dicom-web/studies", data=multipart(to_bytes(sr)),
                        headers={"Content-Type": CT})
    assert response.status_code == 200, response.data
    stored = json.loads(response.data)["00081199"]["Value"]
    assert stored[0]["00081155"]["Value"] == [str(sr.SOPInstanceUID)]

    with archive.sessions() as s:
        marks = {m.graphic_type: m for m in search_marks(s, study_uid=image.study_uid)}
        client = s.scalars(select(Client)).one()
    assert set(marks) == {"POLYLINE", "CIRCLE"}
    box, circle = marks["POLYLINE"], marks["CIRCLE"]
    assert (box.box, box.frame, box.mass_class, box.conspicuity) == (
        (4.0, 5.0, 24.0, 30.0), 3, "spiculated", "Subtle")
    assert box.sop_uid == image.sop_uid and box.source == "sr" and box.reader == "Viewer^Reader"
    assert (circle.box, circle.frame) == ((26.0, 36.0, 34.0, 44.0), 2)
    assert circle.finding_kind == FindingKind.CALCIFICATION_CLUSTER.value
    assert box.sr_uid == str(sr.SOPInstanceUID)
    assert client.is_marked

    with archive.sessions() as s:
        marked = stats(s).marked
    assert sum(marked.counts.values()) == 1


def test_an_unreadable_sr_is_stored_but_not_indexed(
    archive: Services, caplog: pytest.LogCaptureFixture
) -> None:
    image = store_image(archive, seed=62)
    header = stored_header(archive, image.sop_uid)
    sr = viewer_sr(header, [planar_group(header, "x", "POINT", [[1, 1]])])
    sr.ContentSequence = [Dataset()]  # not a measurement report any more
    origin = IngestOrigin(OriginKind.STOW, ae_title="STOW", deidentify=False)
    with caplog.at_level(logging.WARNING, logger="omipacs.annotations.indexer"):
        result = archive.pipeline.ingest_stream(io.BytesIO(to_bytes(sr)), origin)
    assert result.outcome is IngestOutcome.STORED
    assert "marks not indexed" in caplog.text
    with archive.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Mark)) == 0


def test_non_sr_instances_are_skipped(archive: Services) -> None:
    store_image(archive, seed=63)
    ds = factory.make_secondary_capture(burned_in_annotation="NO", rng=63)
    origin = IngestOrigin(OriginKind.IMPORT, ae_title="SITE_A", deidentify=False)
    assert archive.pipeline.ingest_stream(io.BytesIO(factory.to_bytes(ds)), origin).outcome \
        is IngestOutcome.STORED
    with archive.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Mark)) == 0


def test_an_sr_before_its_image_is_joined_later(services: Services) -> None:
    with_indexer(services)
    image_ds = factory.make_mammo(rows=64, columns=48, rng=64)
    header = factory.make_mammo(rows=64, columns=48, rng=64)
    sr = viewer_sr(header, [planar_group(header, "early", "POINT", [[3, 3]])])
    origin = IngestOrigin(OriginKind.STOW, ae_title="STOW", deidentify=False)
    services.pipeline.ingest_stream(io.BytesIO(to_bytes(sr)), origin)
    with services.sessions() as s:
        assert s.scalar(select(Mark.instance_pk)) is None
        assert search_marks(s) == []  # not searchable until the image is here
    services.pipeline.ingest_stream(io.BytesIO(factory.to_bytes(image_ds)), origin)
    with services.write_sessions.begin() as s:
        assert resolve_pending_marks(s) == 1
    with services.sessions() as s:
        (found,) = search_marks(s)
    assert found.sop_uid == str(image_ds.SOPInstanceUID)


def test_backfill_indexes_srs_stored_before_the_indexer(services: Services) -> None:
    image = store_image(services, seed=65)
    header = stored_header(services, image.sop_uid)
    sr = viewer_sr(header, [planar_group(header, "old", "POINT", [[2, 2]])])
    origin = IngestOrigin(OriginKind.STOW, ae_title="STOW", deidentify=False)
    services.pipeline.ingest_stream(io.BytesIO(to_bytes(sr)), origin)  # no indexer yet
    assert backfill_marks(services) == 1
    assert backfill_marks(services) == 0
    with services.write_sessions.begin() as s:
        s.execute(delete(Mark))
    assert backfill_marks(services) == 1  # the table can be rebuilt from the archive
