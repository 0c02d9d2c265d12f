"""Releases to the S3 API (moto server, s3fs) and the GCS API (fake-gcs-server, gcsfs):
written, verified, and a tampered or missing object found."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.conftest import run_cli, write_config
from tests.export.archive import ReleaseArchive, build
from tests.objectstores import Bucket, FakeGcs
from tests.query.archive import uid


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReleaseArchive]:
    built = build(tmp_path_factory.mktemp("bucket-release"))
    built.services.close()
    yield built


def options(bucket: Bucket) -> list[str]:
    out = []
    for key, value in bucket.options.items():
        out += ["--storage-option",
                f"{key}={json.dumps(value) if isinstance(value, dict) else value}"]
    return out


def test_release_to_a_bucket_verifies_and_detects_tampering(
    archive: ReleaseArchive, bucket: Bucket
) -> None:
    lic = archive.licences["full"]
    done = run_cli(archive.settings, archive.workdir, "release", "create", "--licence",
                   str(lic), "--to", bucket.url, "--json", *options(bucket))
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["state"] == "complete"
    fs = bucket.fs()
    root = bucket.url.split("://", 1)[1] + f"/licence-{lic}/release-{info['number']:04d}"
    manifest = json.loads(fs.cat_file(f"{root}/manifest.json"))
    image = f"P001/{uid('1')}/{uid('1.1')}/{uid('1.1.1')}.dcm"
    entry = {f["path"]: f for f in manifest["files"]}[image]
    assert fs.info(f"{root}/{image}")["size"] == entry["bytes"]
    verify = ["release", "verify", "--licence", str(lic), "--release", str(info["number"]),
              "--to", bucket.url, "--json", *options(bucket)]
    ok = run_cli(archive.settings, archive.workdir, *verify)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # One object's bytes changed, another gone: both reported, non-zero exit.
    data = bytearray(fs.cat_file(f"{root}/{image}"))
    data[-1] ^= 0xFF
    fs.rm_file(f"{root}/{image}")  # replaced, as a careless sync would
    fs.pipe_file(f"{root}/{image}", bytes(data))
    other = f"P001/{uid('1')}/{uid('1.2')}/{uid('1.2.1')}.dcm"
    fs.rm_file(f"{root}/{other}")
    bad = run_cli(archive.settings, archive.workdir, *verify)
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["ok"] is False
    assert report["mismatched"] == [f"licence-{lic}/release-{info['number']:04d}/{image}"]
    assert report["missing"] == [f"licence-{lic}/release-{info['number']:04d}/{other}"]


def test_kill_9_mid_export_to_gcs_then_resume(archive: ReleaseArchive, fake_gcs: FakeGcs) -> None:
    """Objects finished before the kill keep their generation: none is uploaded twice."""
    bucket = fake_gcs.bucket()
    lic = archive.licences["2d"]
    config = write_config(archive.settings, archive.workdir / "kill-gcs.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "omipacs", "--config", str(config), "release", "create",
         "--licence", str(lic), "--to", bucket.url, "--workers", "1",
         "--max-bytes-per-second", "3000", "--json", *options(bucket)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    fs = bucket.fs()
    root = bucket.url.split("://", 1)[1] + f"/licence-{lic}"

    def finished() -> dict[str, str]:
        fs.invalidate_cache()
        try:
            found = fs.find(root, detail=True)
        except FileNotFoundError:
            return {}
        return {p: str(i["generation"]) for p, i in found.items() if p.endswith(".dcm")}

    deadline = time.monotonic() + 120
    before: dict[str, str] = {}
    while time.monotonic() < deadline and len(before) < 2:
        time.sleep(0.1)
        assert proc.poll() is None, "the export ended before it could be killed"
        before = finished()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = finished()
    assert 2 <= len(before) < 5
    done = run_cli(archive.settings, archive.workdir, "release", "create", "--licence",
                   str(lic), "--to", bucket.url, "--json", *options(bucket))
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["state"] == "complete"
    after = finished()
    assert len(after) == 5
    assert {p: after[p] for p in before} == before  # not uploaded again
    verified = run_cli(archive.settings, archive.workdir, "release", "verify", "--licence",
                       str(lic), "--release", str(info["number"]), "--to", bucket.url,
                       "--json", *options(bucket))
    assert verified.returncode == 0, verified.stdout + verified.stderr
