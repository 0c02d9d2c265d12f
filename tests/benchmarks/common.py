"""Helpers shared by the benchmark scripts (not part of the test run)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size (VmHWM) of a live process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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
