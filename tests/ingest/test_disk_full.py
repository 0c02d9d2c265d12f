"""A full disk: ingest is refused cleanly below the free-space reserve; reads go on.

The archive runs on a small tmpfs when the test may mount one (as root), and sends
instances until the reserve is reached; otherwise it is restarted with a reserve above
the free space. Either way C-STORE must answer 0xA700 (not abort), STOW-RS 507 with
FailureReason 0xA700, QIDO and WADO keep answering, and files match index rows.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from omipacs.demo import factory
from omipacs.errors import DimseStatus
from omipacs.services import Services
from tests.conftest import make_settings, start_server
from tests.ingest import doors

pytestmark = pytest.mark.slow

MIB = 1024**2


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path | None]:
    """A 24 MiB tmpfs, or None where mounting is not allowed."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        timeout=30,
    )
    yield mnt if done.returncode == 0 else None
    if done.returncode == 0:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _instance(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"i{n}.dcm"
    path.write_bytes(factory.to_bytes(factory.make_mammo(rows=768, columns=640)))  # ~1 MB
    return path


def test_below_the_reserve_ingest_is_refused_and_reads_go_on(
    tmp_path: Path, small_fs: Path | None
) -> None:
    base = make_settings(tmp_path)
    root = (small_fs or tmp_path) / "storage"
    reserve = 8 * MIB if small_fs else 0
    settings = dataclasses.replace(
        base,
        storage=dataclasses.replace(base.storage, root=root, min_free_bytes=reserve),
    )
    server = start_server(settings, tmp_path)
    try:
        first = _instance(tmp_path, 0)
        assert doors.c_store(server.dimse_port, first).accepted
        if small_fs is None:
            server.stop()
            huge = dataclasses.replace(settings.storage, min_free_bytes=1 << 60)
            server = start_server(dataclasses.replace(settings, storage=huge), tmp_path)
        told = None
        for n in range(1, 40):
            told = doors.c_store(server.dimse_port, _instance(tmp_path, n))
            if not told.accepted:
                break
        assert told is not None and told.status == DimseStatus.OUT_OF_RESOURCES, told
        code, doc = doors.stow(server.base_url, _instance(tmp_path, 99).read_bytes())
        assert code == 507, doc
        assert doc["00081198"]["Value"][0]["00081197"]["Value"] == [0xA700]
        # Reads keep working.
        listed = requests.get(f"{server.base_url}/instances", timeout=30)
        assert listed.status_code == 200
        uid = listed.json()[0]["00080018"]["Value"][0]
        study = listed.json()[0]["0020000D"]["Value"][0]
        series = listed.json()[0]["0020000E"]["Value"][0]
        got = requests.get(
            f"{server.base_url}/studies/{study}/series/{series}/instances/{uid}",
            headers={"Accept": 'multipart/related; type="application/dicom"'},
            timeout=30,
        )
        assert got.status_code == 200
        # Files match rows, nothing left in the spool.
        svc = Services.create(server.settings, migrate=False)
        try:
            assert len(list(svc.blobs.keys())) == doors.instance_count(svc) == len(
                listed.json()
            )
            assert doors.leftovers(svc) == []
        finally:
            svc.close()
        # Echo still answers.
        assoc = doors.scu().associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
        try:
            assert assoc.send_c_echo().Status == 0
        finally:
            assoc.release()
    finally:
        server.stop()
