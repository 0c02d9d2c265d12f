"""``omipacs verify``: index and bytes compared, and repaired; crash consistency."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from omipacs.config import Settings
from omipacs.demo import factory
from omipacs.index.models import Instance
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.integrity.verify import verify
from omipacs.services import Services
from tests.conftest import run_cli as _cli
from tests.conftest import start_server, write_config

ORIGIN = IngestOrigin(OriginKind.IMPORT, deidentify=False)


def _store(services: Services, tmp_path: Path, n: int) -> list[str]:
    uids = []
    for i in range(n):
        ds = factory.make_mammo(rows=32, columns=32, rng=i)
        path = tmp_path / f"{i}.dcm"
        factory.save(ds, path)
        uids.append(services.pipeline.ingest_file(path, ORIGIN).sop_instance_uid)
    return uids


def _blob(services: Services, uid: str) -> Path:
    with services.sessions() as s:
        key = s.scalars(select(Instance.blob_key).where(Instance.sop_instance_uid == uid)).one()
    path = services.blobs.local_path(key)
    assert path is not None
    return path


def test_clean_archive_verifies(services: Services, tmp_path: Path) -> None:
    _store(services, tmp_path, 3)
    report = verify(services, grace_seconds=0)
    assert report.ok and report.checked == 3


def test_missing_orphan_and_flipped_byte_are_reported_and_repaired(
    services: Services, tmp_path: Path
) -> None:
    uids = _store(services, tmp_path, 4)
    _blob(services, uids[0]).unlink()  # a deleted file
    flipped = _blob(services, uids[1])
    data = bytearray(flipped.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte
    flipped.write_bytes(bytes(data))
    stray_key = uuid.uuid4().hex  # a stray blob with no index row
    stray = services.settings.storage.root / "blobs" / stray_key[:2] / stray_key[2:4] / stray_key
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"orphan")
    # A spool file of a process that has ended (its owner lock is free), just written:
    dead = services.spool.base / "p1-0123456789ab"
    dead.mkdir()
    (dead / "leftover.dcm").write_bytes(b"partial")
    # ...and one of this live process, which is in flight and not a leftover.
    (services.spool.dir / "in-flight.dcm").write_bytes(b"partial")

    report = verify(services, grace_seconds=0)
    assert report.missing == [uids[0]]
    assert report.corrupt == [uids[1]]
    assert report.orphans == [stray_key]
    assert report.spool_leftovers == 1
    assert not report.ok

    repaired = verify(services, repair=True, grace_seconds=0)
    assert repaired.repaired
    assert not dead.exists() and (services.spool.dir / "in-flight.dcm").exists()
    (services.spool.dir / "in-flight.dcm").unlink()
    after = verify(services, grace_seconds=0)
    assert after.ok and after.checked == 2
    assert (services.settings.storage.root / "corrupt").is_dir()
    assert (services.settings.storage.root / "corrupt").stat().st_mode & 0o777 == 0o700


def test_young_orphans_are_left_alone(services: Services) -> None:
    key = uuid.uuid4().hex
    path = services.settings.storage.root / "blobs" / key[:2] / key[2:4] / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"in flight")
    assert verify(services, grace_seconds=600).orphans == []


def test_kill_9_during_c_store_loses_no_acknowledged_instance(
    settings: Settings, tmp_path: Path
) -> None:
    server = start_server(settings, tmp_path)
    sent: dict[str, pydicom.Dataset] = {}
    acked: list[str] = []
    stop = threading.Event()

    def sender() -> None:
        ae = AE(ae_title="PYNETDICOM")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.1.2")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.13.1.3")
        assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
        i = 0
        while not stop.is_set() and assoc.is_established:
            ds = (
                factory.make_dbt(frames=20, rows=128, columns=128, rng=i)
                if i % 3 == 0
                else factory.make_mammo(rows=256, columns=208, rng=i)
            )
            sent[ds.SOPInstanceUID] = ds
            try:
                status = assoc.send_c_store(ds)
            except Exception:
                break
            if status and status.Status == 0:
                acked.append(ds.SOPInstanceUID)
            i += 1
        if assoc.is_established:
            assoc.abort()

    thread = threading.Thread(target=sender)
    thread.start()
    deadline = time.monotonic() + 120
    while len(acked) < 15 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the sender did not stop after the server was killed"
    assert len(acked) >= 15, "".join(server.log[-20:])

    # Restart, then verify: every acknowledged instance is present and intact.
    server = start_server(settings, tmp_path)
    server.stop()
    result = _cli(settings, tmp_path, "verify", "--repair", "--grace", "0", "--json")
    report = json.loads(result.stdout)
    assert report["missing"] == [] and report["corrupt"] == []
    clean = json.loads(_cli(settings, tmp_path, "verify", "--grace", "0", "--json").stdout)
    assert clean["ok"] is True
    services = Services.create(settings, migrate=False)
    try:
        for uid in acked:
            stored = pydicom.dcmread(_blob(services, uid))
            assert stored.PixelData == sent[uid].PixelData
        assert not [p for p in services.spool.dir.iterdir()]
    finally:
        services.close()


def test_kill_9_during_import_then_reimport_completes(settings: Settings, tmp_path: Path) -> None:
    src = tmp_path / "site"
    src.mkdir()
    for i in range(60):
        factory.save(factory.make_mammo(rows=256, columns=208, rng=i), src / f"{i}.dcm")
    config = write_config(settings, tmp_path / "imp.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "omipacs", "--config", str(config), "import", str(src)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    index = settings.storage.root / "index.sqlite"
    deadline = time.time() + 120
    while time.time() < deadline:
        if index.exists():
            services = Services.create(settings, migrate=False)
            try:
                with services.sessions() as s:
                    n = len(list(s.scalars(select(Instance.pk))))
            except OperationalError:  # the importer is still creating the schema
                n = 0
            finally:
                services.close()
            if n >= 10:
                break
        time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError("the import stored fewer than 10 instances in 120 s")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert (
        json.loads(_cli(settings, tmp_path, "verify", "--repair", "--grace", "0", "--json").stdout)[
            "missing"
        ]
        == []
    )
    again = json.loads(_cli(settings, tmp_path, "import", "--json", str(src)).stdout)
    assert again["rejected"] == 0
    assert again["stored"] + again["already_stored"] == 60
    assert json.loads(_cli(settings, tmp_path, "verify", "--grace", "0", "--json").stdout)["ok"]


@pytest.mark.parametrize("flag", ["--no-checksums", None])
def test_verify_cli_exit_codes(settings: Settings, tmp_path: Path, flag: str | None) -> None:
    services = Services.create(settings)
    uids = _store(services, tmp_path, 2)
    _blob(services, uids[0]).unlink()
    services.close()
    args = ["verify", "--grace", "0"] + ([flag] if flag else [])
    assert _cli(settings, tmp_path, *args).returncode == 1
    assert _cli(settings, tmp_path, *args, "--repair").returncode == 0
    assert _cli(settings, tmp_path, *args).returncode == 0
