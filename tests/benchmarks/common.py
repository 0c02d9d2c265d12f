"""Helpers shared by the benchmark scripts (not part of the test run)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size (VmHWM) of a live process, MiB."""
    return _status_kib(pid, "VmHWM:") / 1024


def _status_kib(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (the server's gunicorn arbiter, its workers, the
    SCP processes), read from /proc."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def _pss_kib(pid: int) -> float:
    """Proportional set size: shared pages split among the processes sharing them, so
    the sum over a pre-forked server is what it really holds."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0.0


class TreeSampler:
    """Samples a server's whole process tree on a thread while a ``with`` block runs:
    once on entry (``first``), every ``interval`` seconds, and once on exit."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid, self.interval = pid, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self, first: bool = False) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Self:
        self.sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()


class TreeMemory(TreeSampler):
    """Samples the memory of a server's whole process tree on a thread.

    A pre-forked server's memory is spread over processes that come and go (gunicorn
    replaces a worker that dies), so the peak of one process's VmHWM says little: this
    records the peak of the tree's summed PSS and RSS, and the largest VmHWM of any
    process seen.
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(pid, interval)
        self.peak_pss_mib = self.peak_rss_mib = self.peak_process_mib = 0.0
        self.processes: set[int] = set()

    def sample(self, first: bool = False) -> None:
        pids = process_tree(self.pid)
        self.processes.update(pids)
        self.peak_pss_mib = max(self.peak_pss_mib, sum(map(_pss_kib, pids)) / 1024)
        self.peak_rss_mib = max(
            self.peak_rss_mib, sum(_status_kib(p, "VmRSS:") for p in pids) / 1024
        )
        self.peak_process_mib = max(
            [self.peak_process_mib, *(_status_kib(p, "VmHWM:") / 1024 for p in pids)]
        )


def write_config(
    workdir: Path,
    dimse_port: int,
    http_port: int,
    *,
    fsync: bool = True,
    deid_key: Path | None = None,
    database_url: str = "",
) -> Path:
    cfg = workdir / "config.toml"
    text = f"""
[storage]
root = "{workdir / "storage"}"
fsync = {"true" if fsync else "false"}
[database]
url = "{database_url}"
[dimse]
port = {dimse_port}
max_associations = 16
[[dimse.peers]]
ae_title = "STORESCU"
deidentify = false
[[dimse.peers]]
ae_title = "SITE_A"
[http]
port = {http_port}
"""
    if deid_key is not None:
        text += f'[deid]\nkey_file = "{deid_key}"\n'
    cfg.write_text(text)
    return cfg


def start_omipacs(cfg: Path, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "omipacs", "--config", str(cfg), "serve", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "READY":
            return proc
    raise RuntimeError("omipacs did not start")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}
