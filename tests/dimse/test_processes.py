"""Several SCP processes on one port: one index, one blob store, one association limit."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from omipacs.demo import factory
from omipacs.index.models import Instance
from omipacs.services import Services
from tests.conftest import child_pids, make_settings, start_server
from tests.dimse.test_scp import _scu

pytestmark = pytest.mark.slow

PROCESSES, LIMIT = 3, 4


def test_scp_processes_share_the_port_the_archive_and_the_limit(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_associations=LIMIT, processes=PROCESSES)
    server = start_server(settings, tmp_path, "--no-http")
    try:
        # serve, and under it one process per SCP.
        assert len(child_pids(server.process.pid)) == PROCESSES
        port = server.dimse_port

        # The limit holds across the processes: LIMIT associations open, the next one
        # is refused "local limit exceeded" (transient), whichever process it reached.
        held = [_scu().associate("127.0.0.1", port, ae_title="OMIPACS") for _ in range(LIMIT)]
        assert all(a.is_established for a in held)
        for _ in range(3):
            extra = _scu().associate("127.0.0.1", port, ae_title="OMIPACS")
            assert extra.is_rejected
            assert (
                extra.acceptor.primitive.result,
                extra.acceptor.primitive.result_source,
                extra.acceptor.primitive.diagnostic,
            ) == (2, 3, 2)
        for a in held:
            assert a.send_c_echo().Status == 0
            a.release()

        # Slots come back when associations end: LIMIT parallel senders store into the
        # one index, every instance exactly once.
        study = pydicom.uid.generate_uid()
        batches = [
            [factory.make_mammo(rows=64, columns=52, study_uid=study, rng=a * 100 + i)
             for i in range(10)]
            for a in range(LIMIT)
        ]  # fmt: skip

        def send(batch: list[pydicom.Dataset]) -> list[int]:
            deadline = time.monotonic() + 30
            while True:  # a slot freed by a release a moment ago may not be back yet
                assoc = _scu().associate("127.0.0.1", port, ae_title="OMIPACS")
                if assoc.is_established or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert assoc.is_established
            try:
                return [int(assoc.send_c_store(ds).Status) for ds in batch]
            finally:
                assoc.release()

        with ThreadPoolExecutor(LIMIT) as pool:
            statuses = [s for result in pool.map(send, batches) for s in result]
        assert statuses == [0] * (LIMIT * 10)
        svc = Services.create(settings, migrate=False)
        try:
            with svc.sessions() as s:
                stored = set(s.scalars(select(Instance.sop_instance_uid)))
        finally:
            svc.close()
        assert stored == {ds.SOPInstanceUID for batch in batches for ds in batch}
    finally:
        server.stop()
    assert server.process.returncode == 0
    # The SCP processes were forked while the parent ran no other thread.
    assert not [line for line in server.log if "while threads run" in line]


def _established(pid: int, port: int) -> int:
    """TCP connections to ``port`` that process ``pid`` holds (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def test_associations_spread_over_the_processes(tmp_path: Path) -> None:
    """A busier process leaves a new association to an idle one, as a process per
    association would: 4 associations over 2 processes are served 2 and 2 (the kernel's
    SO_REUSEPORT hash put 3 or 4 on one process in more than half of the runs)."""
    settings = make_settings(tmp_path, max_associations=8, processes=2)
    server = start_server(settings, tmp_path, "--no-http")
    try:
        port = server.dimse_port
        pids = child_pids(server.process.pid)
        assert len(pids) == 2
        for _ in range(3):
            held = []
            for _ in range(4):
                assoc = _scu().associate("127.0.0.1", port, ae_title="OMIPACS")
                assert assoc.is_established
                held.append(assoc)
            assert sorted(_established(pid, port) for pid in pids) == [2, 2]
            for assoc in held:
                assoc.release()
            deadline = time.monotonic() + 10
            while any(_established(pid, port) for pid in pids):
                assert time.monotonic() < deadline, "associations did not end"
                time.sleep(0.1)
            time.sleep(0.6)  # each process republishes its load within its poll interval
    finally:
        server.stop()
