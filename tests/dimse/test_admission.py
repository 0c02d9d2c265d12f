"""Silent sockets cannot lock peers out: pending connections are bounded per address and in
time, and only accepted associations count against the association limit.

The hostile sockets connect from 127.0.0.2 and the legitimate peer from 127.0.0.1 (both
loopback), so the per-address limit is seen as it works between hosts.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from omipacs.demo import factory
from omipacs.dimse.admission import Admission
from tests.conftest import ServerProcess, make_settings, start_server
from tests.ingest import doors

pytestmark = pytest.mark.slow

ATTACKER = "127.0.0.2"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[ServerProcess]:
    settings = make_settings(
        tmp_path, max_associations=2, request_timeout=3.0, max_pending_per_address=4
    )
    server = start_server(settings, tmp_path)
    yield server
    server.stop()


def _silent(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(10)
        s.bind((ATTACKER, 0))
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks


def _closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, TimeoutError, OSError):
        return True


def test_twenty_silent_sockets_do_not_stop_ingest(guarded: ServerProcess, tmp_path: Path) -> None:
    port = guarded.dimse_port
    socks = _silent(port, 20)
    try:
        # The legitimate peer is served at once, C-ECHO and C-STORE.
        path = tmp_path / "m.dcm"
        path.write_bytes(factory.to_bytes(factory.make_mammo(rows=32, columns=32)))
        assert doors.c_store(port, path).accepted
        assoc = doors.scu().associate("127.0.0.1", port, ae_title="OMIPACS")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        assoc.release()
        # Over the per-address limit, sockets were closed at once; the rest by the
        # request timeout (3 s here), each within the deadline of its recv.
        started = time.monotonic()
        assert all(_closed_by_server(s) for s in socks)
        assert time.monotonic() - started < 10
    finally:
        for s in socks:
            s.close()


def test_only_accepted_associations_count_against_the_limit(
    guarded: ServerProcess,
) -> None:
    port = guarded.dimse_port
    socks = _silent(port, 4)  # pending, not associations
    held = []
    try:
        for _ in range(2):
            assoc = doors.scu().associate("127.0.0.1", port, ae_title="OMIPACS")
            assert assoc.is_established
            held.append(assoc)
        third = doors.scu().associate("127.0.0.1", port, ae_title="OMIPACS")
        assert third.is_rejected
        rj = third.acceptor.primitive
        assert (rj.result, rj.result_source, rj.diagnostic) == (0x02, 0x03, 0x02)
        held.pop().release()
        again = doors.scu().associate("127.0.0.1", port, ae_title="OMIPACS")
        assert again.is_established
        held.append(again)
    finally:
        for assoc in held:
            assoc.release()
        for s in socks:
            s.close()


def test_admission_bookkeeping() -> None:
    door = Admission(
        max_associations=1, max_pending=3, max_pending_per_address=2, request_timeout=5
    )
    a, b = socket.socketpair()
    try:
        assert door.admit(a, ("10.0.0.1", 1)) and door.admit(a, ("10.0.0.1", 2))
        assert not door.admit(a, ("10.0.0.1", 3))  # per address
        assert door.admit(a, ("10.0.0.2", 1))
        assert not door.admit(a, ("10.0.0.3", 1))  # in total
        assert door.requested(("10.0.0.1", 1)) and door.pending == 2
        assert not door.requested(("10.0.0.1", 2))  # one association at a time
        door.closed(("10.0.0.1", 1))
        assert door.established == 0
        assert door.expire(now=time.monotonic() + 6) == 1  # ("10.0.0.2", 1)
        assert door.pending == 0
    finally:
        a.close()
        b.close()
