"""No identifiable residue (issue 14, item 6): partial C-STORE spool files, the archive's
own spool and quarantined originals, through the running archive."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from pynetdicom import AE, evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RQ

from omipacs.blobs.spool import Spool
from omipacs.config import Settings
from omipacs.demo import factory
from omipacs.ingest.quarantine import Quarantine
from omipacs.ingest.residue import discard_partial, sweep_residue
from tests.conftest import make_settings, start_server
from tests.deid.test_linking import send

DEADLINE = 20.0


def wait_for(condition: Callable[[], bool], deadline: float = DEADLINE) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def spool_files(settings: Settings) -> list[Path]:
    """Files in every process's spool directory (owner locks aside)."""
    spool = settings.storage.root / "spool"
    if not spool.exists():
        return []
    return [p for p in spool.rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_pynetdicom_keeps_the_partial_data_set_where_the_archive_looks() -> None:
    """handle_closed reads pynetdicom 3.0 internals: fail loudly if they change."""
    message = C_STORE_RQ()
    assert message._data_set_path is None and message._data_set_file is None
    assert "message" in DIMSEServiceProvider.__init__.__code__.co_names


def test_discard_partial_only_touches_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    inside = spool.new_path()
    inside.write_bytes(b"x")
    outside = tmp_path / "elsewhere.dcm"
    outside.write_bytes(b"x")
    assert discard_partial(spool, inside) and not inside.exists()
    assert not discard_partial(spool, outside) and outside.exists()
    assert not discard_partial(spool, None)


@pytest.mark.slow
def test_an_aborted_c_store_leaves_nothing_in_the_spool(tmp_path: Path) -> None:
    server = start_server(make_settings(tmp_path), tmp_path)
    try:
        ds = factory.make_mammo(rows=1024, columns=1024)  # 2 MiB: several P-DATA PDUs
        paused, resume = threading.Event(), threading.Event()
        sent = [0]

        def on_pdu_sent(event: evt.Event) -> None:
            sent[0] += 1
            if sent[0] == 4:  # association request + some of the data set
                paused.set()
                resume.wait(DEADLINE)

        ae = AE(ae_title="SITE_A")
        ae.add_requested_context(ds.SOPClassUID, ["1.2.840.10008.1.2.1"])
        ae.maximum_pdu_size = 65536
        assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS",
                             evt_handlers=[(evt.EVT_PDU_SENT, on_pdu_sent)])
        assert assoc.is_established
        sender = threading.Thread(target=lambda: assoc.send_c_store(ds), daemon=True)
        sender.start()
        assert paused.wait(DEADLINE)
        # The archive is receiving: the partial, identifiable data set is in its spool.
        assert wait_for(lambda: bool(spool_files(server.settings)))
        assoc.dul.socket.socket.shutdown(socket.SHUT_RDWR)  # the connection drops
        resume.set()
        sender.join(DEADLINE)
        assert wait_for(lambda: not spool_files(server.settings)), spool_files(server.settings)
    finally:
        server.stop()


@pytest.mark.slow
def test_stale_spool_swept_at_start_and_quarantine_purged_by_itself(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings = replace(settings, deid=replace(
        settings.deid, quarantine_retention_days=3 / 86400, residue_sweep_seconds=1.0))
    stale = Spool(settings.storage.root).new_path()
    stale.write_bytes(b"\0" * 128 + b"DICM partial CANARYSTALE")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    server = start_server(settings, tmp_path)
    try:
        assert not stale.exists()
        held = factory.make_secondary_capture(burned_in_annotation="YES", rows=64, columns=64)
        assert send(server.dimse_port, "SITE_A", [held]) == [0]
        quarantine = Quarantine(settings.storage.root)
        assert len(quarantine.entries()) == 1
        assert wait_for(lambda: not list(quarantine.dir.iterdir()))
    finally:
        server.stop()


def test_sweep_residue_counts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    spool, quarantine = Spool(settings.storage.root), Quarantine(settings.storage.root)
    old = spool.new_path()
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    fresh = spool.new_path()
    fresh.write_bytes(b"x")
    swept = sweep_residue(spool, quarantine, settings.deid)
    assert (swept.spool_files, swept.quarantine_entries) == (1, 0)
    assert fresh.exists() and not old.exists()
