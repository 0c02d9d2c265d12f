"""Blobs in S3 and GCS buckets, through the real clients, against APIs served locally.

Every test runs against moto's S3 server and against fake-gcs-server (see
tests/objectstores.py): uploads stream in parts with bounded memory, reads fetch only
the bytes asked for, and the durability rule holds (object complete before the index
row; an object without a row is an orphan ``omipacs verify`` reports).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from omipacs.blobs.fsspec_store import FsspecBlobStore
from omipacs.config import Settings
from omipacs.demo import factory
from omipacs.index.models import Instance
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.services import Services
from omipacs.web.app import create_app
from tests.conftest import write_config
from tests.objectstores import Bucket, CountingProxy, through

ORIGIN = IngestOrigin(OriginKind.IMPORT, deidentify=False)
PART = 5 << 20  # the smallest part S3 accepts in a multipart upload


def on_bucket(settings: Settings, bucket: Bucket, **storage: int) -> Settings:
    return dataclasses.replace(
        settings,
        storage=dataclasses.replace(
            settings.storage, url=bucket.url, options=bucket.options, **storage
        ),
    )


def test_an_upload_streams_in_parts_and_reads_back_identical(
    bucket: Bucket, tmp_path: Path
) -> None:
    store = FsspecBlobStore(bucket.url, tmp_path, bucket.options, upload_block_bytes=PART)
    data = os.urandom(5 * PART + 12345)
    src = tmp_path / "in.dcm"
    src.write_bytes(data)
    tracemalloc.start()
    try:
        key = store.put_file(src)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Memory stays a few parts whatever the object's size (the object is ~26 MB).
    assert peak < 4 * PART, peak
    assert not src.exists()
    assert store.exists(key) and store.size(key) == len(data)
    with store.open(key) as f:
        assert f.read() == data
        f.seek(3 * PART - 7)
        assert f.read(100) == data[3 * PART - 7 : 3 * PART + 93]
    ((listed, mtime),) = list(store.keys())
    assert listed == key and abs(mtime - time.time()) < 3600
    store.delete(key)
    store.delete(key)
    assert not store.exists(key) and list(store.keys()) == []


def test_keys_are_checked_before_use(bucket: Bucket, tmp_path: Path) -> None:
    store = FsspecBlobStore(bucket.url, tmp_path, bucket.options)
    for bad in ("../etc/passwd", "0" * 31, "g" * 32):
        with pytest.raises(ValueError):
            store.open(bad)


def test_a_dbt_frame_downloads_only_its_own_bytes(
    bucket: Bucket, settings: Settings, tmp_path: Path
) -> None:
    services = Services.create(on_bucket(settings, bucket))
    ds = factory.make_dbt(frames=24, rows=512, columns=416, rng=11)
    path = tmp_path / "dbt.dcm"
    factory.save(ds, path)
    services.pipeline.ingest_file(path, ORIGIN)
    services.close()
    size = path.stat().st_size
    frame_bytes = 512 * 416 * 2

    # Serve it with every byte from the bucket passing through a counting relay.
    proxy = CountingProxy(int(bucket.options["endpoint_url"].rsplit(":", 1)[1]))
    served = Services.create(on_bucket(settings, through(bucket, proxy)), migrate=False)
    try:
        web = create_app(served).test_client()
        base = (
            f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}"
        )
        for number in (24, 1):
            before = proxy.downloaded
            r = web.get(f"{base}/frames/{number}", headers={"Accept": "application/octet-stream"})
            assert r.status_code == 200
            frame = r.get_data()
            start = (number - 1) * frame_bytes
            assert frame.endswith(ds.PixelData[start : start + frame_bytes])
            fetched = proxy.downloaded - before
            # The frame, the read-ahead and HTTP headers: a fraction of the object.
            assert fetched < frame_bytes + served.settings.storage.read_block_bytes + 16384
            assert fetched < size / 10
        # The whole instance streams back byte-identical.
        r = web.get(base, headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert r.status_code == 200
        with served.sessions() as session:
            key = session.execute(select(Instance.blob_key)).scalar_one()
        with served.blobs.open(key) as f:
            assert r.get_data() == f.read()
        assert pydicom.dcmread(io.BytesIO(r.get_data())).PixelData == ds.PixelData
    finally:
        served.close()
        proxy.close()


def test_the_index_row_follows_a_complete_object_and_verify_finds_orphans(
    bucket: Bucket, settings: Settings, tmp_path: Path
) -> None:
    settings = on_bucket(settings, bucket)
    services = Services.create(settings)
    ds = factory.make_mammo(rows=256, columns=208, rng=12)
    path = tmp_path / "in.dcm"
    factory.save(ds, path)
    services.pipeline.ingest_file(path, ORIGIN)
    with services.sessions() as session:
        (row,) = session.execute(select(Instance.blob_key, Instance.size_bytes)).all()
    assert services.blobs.size(row.blob_key) == row.size_bytes
    # A crash between the upload and the index commit: an object no row points to.
    stray = tmp_path / "stray.dcm"
    stray.write_bytes(b"\0" * 4096)
    orphan = services.blobs.put_file(stray)
    services.close()
    config = write_config(settings, tmp_path / "config.toml")
    out = subprocess.run(
        [sys.executable, "-m", "omipacs", "--config", str(config), "verify", "--json",
         "--grace", "0"],
        capture_output=True, text=True, timeout=300, env={**os.environ},
    )  # fmt: skip
    report = json.loads(out.stdout)
    assert report["orphans"] == [orphan]
    assert report["checked"] == 1 and not report["missing"] and not report["corrupt"]
