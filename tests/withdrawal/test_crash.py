"""A withdrawal killed with SIGKILL part-way, then run again, leaves no trace of her.

A real race with a deadline: the test kills ``omipacs withdraw`` as soon as the first
of her blobs is gone (the tombstone is written, the removal under way, her index rows
and the rest not yet), then runs it again and scans every byte.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from omipacs.bootstrap import open_archive
from omipacs.index.changes import changes_since
from omipacs.index.db import make_engine, make_sessionmaker
from omipacs.index.models import Withdrawal
from omipacs.ingest.origin import IngestOrigin, OriginKind
from tests.conftest import make_settings, run_cli, write_config
from tests.withdrawal.builders import NHS_A, NHS_B, hits, index_bytes, mammo, write

HER_INSTANCES = 120


def _blobs(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root / "blobs"))


def test_killed_withdrawal_completes_when_run_again(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url)
    # Loading her images is not what is tested: no fsync for it (the withdrawal's own
    # process reads the same settings; deletes need no fsync to be complete).
    settings = dataclasses.replace(
        settings, storage=dataclasses.replace(settings.storage, fsync=False))
    root = settings.storage.root
    services = open_archive(settings)
    origin = IngestOrigin(OriginKind.IMPORT, ae_title="SITE_A")
    try:
        for n in range(HER_INSTANCES):
            path = write(tmp_path / "in" / f"{n}.dcm", mammo(NHS_A, 1000 + n))
            services.pipeline.ingest_file(path, origin)
        services.pipeline.ingest_file(write(tmp_path / "in" / "b.dcm", mammo(NHS_B, 7)), origin)
        with services.sessions() as session:
            feed = changes_since(session, 0, 10_000)
    finally:
        services.close()
    mine = feed[0].client_id
    assert mine is not None
    traces = {mine} | {
        uid for c in feed if c.client_id == mine
        for uid in (c.study_instance_uid, c.series_instance_uid, c.sop_instance_uid) if uid
    }
    other = {c.sop_instance_uid for c in feed if c.client_id != mine}
    stored = _blobs(root)
    assert stored == HER_INSTANCES + 1

    config = write_config(settings, tmp_path / "withdraw.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "omipacs", "--config", str(config), "withdraw",
         "--nhs-number", NHS_A, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while _blobs(root) == stored and proc.poll() is None:
            assert time.monotonic() < deadline, "the withdrawal never started removing"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "finished before it could be killed"
    # Killed part-way: the tombstone is written but not complete, and something of hers
    # (blobs, index rows) is still there.
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as session:
        completed = session.execute(select(Withdrawal.completed_at)).all()
    engine.dispose()
    assert completed == [(None,)]
    assert _blobs(root) > 1 or hits(index_bytes(db_url), traces)

    again = run_cli(settings, tmp_path, "withdraw", "--nhs-number", NHS_A, "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert not report["already_complete"] and report["instances"] > 0
    assert _blobs(root) == 1  # the other woman's image
    for path in root.rglob("*"):
        if path.is_file() and "audit" not in path.parts:
            assert not hits(path.read_bytes(), traces), path
    assert not hits(index_bytes(db_url), traces)
    # Nothing orphaned, nothing missing; the other woman's image is intact.
    verify = run_cli(settings, tmp_path, "verify", "--json")
    doc = json.loads(verify.stdout)
    assert doc["ok"] and doc["checked"] == 1, doc
    feed_after = run_cli(settings, tmp_path, "changes", "--json")
    kinds = [c["kind"] for c in json.loads(feed_after.stdout)["changes"]]
    assert kinds == ["instance-stored", "client-withdrawn"]
    assert other <= {c.get("sop_instance_uid") for c in
                     json.loads(feed_after.stdout)["changes"]}
