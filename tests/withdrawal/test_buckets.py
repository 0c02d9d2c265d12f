"""Withdrawal with the blobs in a bucket: S3 (moto) and GCS (fake-gcs-server) APIs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omipacs.bootstrap import open_archive
from omipacs.config import Settings
from omipacs.index.changes import changes_since
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.withdrawal.withdraw import run_withdrawal
from tests.objectstores import Bucket
from tests.withdrawal.builders import NHS_A, NHS_B, hits, index_bytes, mammo, write


def test_her_objects_leave_the_bucket(bucket: Bucket, settings: Settings,
                                      tmp_path: Path) -> None:
    settings = dataclasses.replace(settings, storage=dataclasses.replace(
        settings.storage, url=bucket.url, options=bucket.options))
    services = open_archive(settings)
    origin = IngestOrigin(OriginKind.IMPORT, ae_title="SITE_A")
    try:
        for n, nhs in enumerate((NHS_A, NHS_A, NHS_A, NHS_B)):
            services.pipeline.ingest_file(write(tmp_path / f"{n}.dcm", mammo(nhs, 50 + n)),
                                          origin)
        with services.sessions() as session:
            feed = changes_since(session, 0, 100)
        mine = feed[0].client_id
        assert mine is not None
        traces = {mine} | {c.sop_instance_uid or "" for c in feed if c.client_id == mine}
        fs = bucket.fs()
        objects = [p for p in fs.find(bucket.url) if not p.endswith("/")]
        assert len(objects) == 4
        report = run_withdrawal(services, nhs_number=NHS_A)
        assert report.instances == 3
        fs.invalidate_cache()
        left = [p for p in fs.find(bucket.url) if not p.endswith("/")]
        assert len(left) == 1
        assert not any(hits(fs.cat_file(p), traces) for p in left)
        assert not hits(index_bytes(settings.database_url), traces)
    finally:
        services.close()
