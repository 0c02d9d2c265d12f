"""Leftovers of a server killed mid-transfer: reported by ``omipacs verify`` whatever
their age, and swept when the archive starts again (a transfer cut off while the server
lives is tests/ingest/test_residue.py's)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

from omipacs.demo import factory
from tests.conftest import ServerProcess, run_cli, start_server
from tests.ingest import doors

pytestmark = pytest.mark.slow


def _spool_files(server: ServerProcess) -> list[Path]:
    base = server.settings.storage.root / "spool"
    return [p for p in base.rglob("*") if p.is_file() and p.suffix != ".lock"]


def _wait_for(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _start_big_store(server: ServerProcess, path: Path) -> tuple[object, threading.Thread]:
    """A slow C-STORE of ``path``, running in a thread."""
    ae = doors.scu(sop_class=str(factory.make_dbt(frames=1, rows=8, columns=8).SOPClassUID))
    assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
    assert assoc.is_established
    # A slow sender (about 4 MB/s), so the transfer lasts seconds.
    sock = assoc.dul.socket
    plain_send = sock.send

    def slow_send(data: bytes) -> None:
        time.sleep(len(data) / 4e6)
        plain_send(data)

    sock.send = slow_send

    def send() -> None:
        try:
            assoc.send_c_store(path)
        except Exception:
            pass

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return assoc, thread


def _big_dbt(tmp_path: Path) -> Path:
    path = tmp_path / "big.dcm"
    path.write_bytes(factory.to_bytes(factory.make_dbt(frames=40, rows=512, columns=416)))
    return path


def test_kill_9_leftovers_are_reported_by_verify_and_swept_at_start(
    server: ServerProcess, tmp_path: Path
) -> None:
    path = _big_dbt(tmp_path)
    _assoc, _thread = _start_big_store(server, path)
    assert _wait_for(lambda: _spool_files(server), 60)
    server.stop(signal.SIGKILL)
    left = _spool_files(server)
    assert left, "the killed server left no partial file to find"
    # Just written, yet reported: the process that owned them is gone.
    report = run_cli(server.settings, tmp_path, "verify", "--json")
    assert report.returncode in (0, 1), report.stderr
    doc = json.loads(report.stdout[report.stdout.index("{") :])
    assert doc["spool_leftovers"] == len(left)
    restarted = start_server(server.settings, tmp_path)
    try:
        assert _spool_files(restarted) == []
    finally:
        restarted.stop()
