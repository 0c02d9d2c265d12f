"""Revocation across HTTP worker processes: within ``[auth] cache_seconds``, everywhere.

Each gunicorn worker caches a resolved token for ``cache_seconds``; the process that
makes an admin change forgets its cache at once, but the others only notice when their
entry expires. These tests serve the archive with two workers, hold one kept-alive
connection to each (which worker owns a connection is read from /proc: the server side
of the socket), warm both caches, then change the access data from a separate process
(the ``omipacs`` CLI, as an operator would), so neither worker is told. Every request
sent ``cache_seconds`` after the change must then be refused by both workers.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.web.access_fixture import AccessArchive, build_for

pytestmark = pytest.mark.slow

CACHE_SECONDS = 1.5


@pytest.fixture(params=["sqlite", "postgresql"])
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AccessArchive]:
    yield from build_for(request, tmp_path_factory, "workers", workers=2,
                         cache_seconds=CACHE_SECONDS)


def _socket_inode(local_port: int, remote_port: int) -> str:
    """The inode of the TCP socket from ``local_port`` to ``remote_port`` on loopback."""
    want_local, want_remote = f":{local_port:04X}", f":{remote_port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(want_local) and fields[2].endswith(want_remote):
                return fields[9]
    raise AssertionError(f"no socket {local_port} -> {remote_port}")


def _owner(inode: str) -> int:
    """The process holding the socket ``inode``."""
    target = f"socket:[{inode}]"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return int(pid)
        except OSError:
            continue
    raise AssertionError(f"no process holds {target}")


def _get(conn: http.client.HTTPConnection, path: str, token: str) -> int:
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}",
                                       "Accept": "application/dicom+json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def _one_connection_per_worker(
    a: AccessArchive, path: str, token: str
) -> dict[int, http.client.HTTPConnection]:
    """Kept-alive connections until two different worker processes hold one each."""
    port = int(a.base.rsplit(":", 1)[1])
    by_worker: dict[int, http.client.HTTPConnection] = {}
    spare = []
    deadline = time.monotonic() + 60
    while len(by_worker) < 2:
        assert time.monotonic() < deadline, "the second worker never took a connection"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        assert _get(conn, path, token) == 200  # connected, served, kept alive
        assert conn.sock is not None
        worker = _owner(_socket_inode(port, conn.sock.getsockname()[1]))
        if worker in by_worker:
            spare.append(conn)  # held open, so the next connection may go elsewhere
        else:
            by_worker[worker] = conn
    for conn in spare:
        conn.close()
    return by_worker


def _refused_everywhere_within_the_cache_time(
    conns: dict[int, http.client.HTTPConnection], path: str, token: str, refused: int,
    changed_at: float,
) -> None:
    """Poll each worker; once ``cache_seconds`` have passed since the change, every
    answer must be ``refused``."""
    statuses: dict[int, list[int]] = {w: [] for w in conns}
    while True:
        started = time.monotonic()
        for worker, conn in conns.items():
            statuses[worker].append(_get(conn, path, token))
        if started > changed_at + CACHE_SECONDS:
            break
        time.sleep(0.1)
    for worker, seen in statuses.items():
        assert seen[-1] == refused, (worker, seen)
        # Once refused, never served again (a cache entry is not resurrected).
        first = seen.index(refused)
        assert set(seen[first:]) == {refused}, (worker, seen)


def _change_while_connected(
    conns: dict[int, http.client.HTTPConnection], path: str, token: str,
    change: Callable[[], subprocess.CompletedProcess[str]],
) -> float:
    """Run ``change`` (a CLI command: seconds on a busy machine) while every connection
    is kept from the server's keep-alive timeout by a request a second; returns when
    the change had been made (the command's end, a little after its commit)."""
    done = threading.Event()

    def ping() -> None:
        while not done.wait(1.0):
            for conn in conns.values():
                _get(conn, path, token)

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    try:
        finished = change()
    finally:
        done.set()
        pinger.join(30)
    assert finished.returncode == 0, finished.stderr
    return time.monotonic()


def _close(conns: dict[int, http.client.HTTPConnection]) -> None:
    for conn in conns.values():
        conn.close()


def test_a_token_revoked_from_the_cli_is_refused_by_every_worker(
    archive: AccessArchive, tmp_path: Path
) -> None:
    a = archive
    made = run_cli(a.services.settings, tmp_path, "token", "create", "--user",
                   "curator@a.example", "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["token"]
    conns = _one_connection_per_worker(a, "/dicom-web/studies", token)
    try:
        changed = _change_while_connected(conns, "/dicom-web/studies", token, lambda: run_cli(
            a.services.settings, tmp_path, "token", "revoke", token[:12]))
        _refused_everywhere_within_the_cache_time(
            conns, "/dicom-web/studies", token, 401, changed)
    finally:
        _close(conns)


def test_a_licence_suspended_from_the_cli_is_closed_on_every_worker(
    archive: AccessArchive, tmp_path: Path
) -> None:
    a = archive
    licence = a.licences["L1"]
    path = f"/licences/{licence}/dicom-web/studies"
    conns = _one_connection_per_worker(a, path, a.tokens["r1L1"])
    try:
        changed = _change_while_connected(conns, path, a.tokens["r1L1"], lambda: run_cli(
            a.services.settings, tmp_path, "licence", "suspend", str(licence)))
        _refused_everywhere_within_the_cache_time(conns, path, a.tokens["r1L1"], 404, changed)
    finally:
        _close(conns)
        reinstated = run_cli(a.services.settings, tmp_path, "licence", "reinstate",
                             str(licence))
        assert reinstated.returncode == 0, reinstated.stderr


def test_disabling_a_user_from_the_cli_closes_every_worker_to_their_tokens(
    archive: AccessArchive, tmp_path: Path
) -> None:
    a = archive
    assert run_cli(a.services.settings, tmp_path, "user", "add", "r9@lab.example",
                   "--role", "curator").returncode == 0
    made = run_cli(a.services.settings, tmp_path, "token", "create", "--user",
                   "r9@lab.example", "--json")
    token = json.loads(made.stdout)["token"]
    conns = _one_connection_per_worker(a, "/dicom-web/studies", token)
    try:
        changed = _change_while_connected(conns, "/dicom-web/studies", token, lambda: run_cli(
            a.services.settings, tmp_path, "user", "disable", "r9@lab.example"))
        _refused_everywhere_within_the_cache_time(conns, "/dicom-web/studies", token, 401, changed)
    finally:
        _close(conns)

