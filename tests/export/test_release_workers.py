"""With a PostgreSQL index, two ``omipacs release worker`` processes share one release
through procrastinate's queue (in the same PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.export.archive import build
from tests.pg import create_database


@pytest.mark.postgres
def test_two_workers_share_one_release(tmp_path: Path, postgres: str) -> None:
    archive = build(tmp_path, create_database(postgres))
    archive.services.close()
    config = write_config(archive.settings, tmp_path / "queue.toml")
    with open(config, "a") as f:
        f.write('[release]\nqueue = "procrastinate"\nbatch_files = 1\n')
    base = [sys.executable, "-m", "omipacs", "--config", str(config), "release"]
    # Each worker slowed a little, so that neither takes every batch before the other starts.
    workers = [
        subprocess.Popen(base + ["worker", "--workers", "1", "--max-bytes-per-second", "20000"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    out = tmp_path / "out"
    lic = archive.licences["full"]
    try:
        done = subprocess.run(base + ["create", "--licence", str(lic), "--to", str(out),
                                      "--json"], capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        info = json.loads(done.stdout)
        assert info["state"] == "complete"
        assert info["files_done"] == info["files_total"] == 8
    finally:
        logs = []
        for w in workers:
            w.terminate()
            try:
                logs.append(w.communicate(timeout=30)[1])
            except subprocess.TimeoutExpired:
                w.kill()
                logs.append(w.communicate()[1])
    copied = [log.count("copied batch") for log in logs]
    assert sum(copied) == 8, logs
    assert all(n > 0 for n in copied), copied  # both workers took part
    verified = subprocess.run(base + ["verify", "--licence", str(lic), "--release", "1",
                                      "--to", str(out), "--json"],
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
