"""Two runs of ``release create`` on one unfinished release share its batches: each
batch is started once, by whichever claims it (omipacs/export/claims.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from omipacs.bootstrap import open_archive
from omipacs.export.claims import claim
from omipacs.export.models import ReleaseBatch
from tests.conftest import run_cli, write_config
from tests.export.archive import build


def test_two_resumers_never_copy_the_same_batch(tmp_path: Path) -> None:
    archive = build(tmp_path)
    archive.services.close()
    config = write_config(archive.settings, tmp_path / "claims.toml")
    with open(config, "a") as f:
        f.write("[release]\nbatch_files = 1\n")
    lic = archive.licences["full"]
    out = tmp_path / "out"
    # Slowed to 1 kB/s (37 kB in all): the first still has most of its files to copy when
    # the second (another interpreter, slow to start on a busy machine) resumes.
    command = [sys.executable, "-m", "omipacs", "--config", str(config), "release", "create",
               "--licence", str(lic), "--to", str(out), "--workers", "1",
               "--max-bytes-per-second", "1000", "--json"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    folder = out / f"licence-{lic}" / "release-0001"
    deadline = time.monotonic() + 120
    while not list(folder.rglob("*.dcm")):  # the first is copying: start the second
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    outputs = [p.communicate(timeout=240) for p in (first, second)]
    for proc, (stdout, stderr) in zip((first, second), outputs, strict=True):
        assert proc.returncode == 0, stderr
        assert json.loads(stdout)["number"] == 1 and json.loads(stdout)["state"] == "complete"

    services = open_archive(archive.settings)
    try:
        with services.sessions() as session:
            batches = list(session.scalars(select(ReleaseBatch)))
        assert len(batches) >= 8
        assert [b.attempts for b in batches] == [1] * len(batches)  # none started twice
        # A claim is exclusive while held and free once released.
        with claim(services, batches[0].release_pk, 1) as mine:
            assert mine
            with claim(services, batches[0].release_pk, 1) as again:
                assert not again
        with claim(services, batches[0].release_pk, 1) as mine:
            assert mine
    finally:
        services.close()
    verified = run_cli(archive.settings, tmp_path, "release", "verify", "--licence", str(lic),
                       "--release", "1", "--to", str(out), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
