"""C-STORE ingest throughput and memory: omipacs against dcmtk's storescp.

Each server announces its own maximum PDU: storescp at most 128 KiB (dcmtk's limit),
omipacs its configured default (1 MiB). Rows: omipacs storing as received (peer
STORESCU, de-identification off for it) with and without fsync, and omipacs
de-identifying (peer SITE_A: header cleaned and rewritten, pixel words cleaned of bits
outside Bits Stored), with one SCP process and with ``--dimse-processes N`` (N processes
sharing the port, as ``storescp --fork`` forks a process per association).

Besides wall-clock figures it prints the CPU seconds the server's whole process tree
spent per GB received: on a shared machine that moves far less with load than MB/s.

Sends the same full-size FFDM and DBT files with dcmtk ``storescu`` over 1 and 4
parallel associations, first to ``storescp`` (the ceiling: it only writes files, and
does not fsync) and then to ``omipacs serve`` (which validates, hashes, fsyncs, renames
and indexes every instance before acknowledging). Prints files/s, MB/s, the ratio to
storescp and the server's peak RSS.

Usage: python tests/benchmarks/bench_store.py [--ffdm 8] [--dbt 1] [--dbt-frames 120]
       [--dimse-processes 1,2]
Targets (issue 12): >= 0.9x storescp with 4 associations, de-identifying; peak RSS
< 400 MB per process with 1 GB+ DBT.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from omipacs.demo import factory  # noqa: E402
from tests.benchmarks.common import (  # noqa: E402
    TreeSampler,
    free_port,
    peak_rss_mib,
    process_tree,
    start_omipacs,
    stop,
    wait_port,
    write_config,
)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one live process (its own, not its children's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return -1.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TreeCpu(TreeSampler):
    """CPU seconds a server's process tree spends while the block runs.

    Samples every process in the tree (``storescp --fork``'s children live one
    association; the SCP processes and HTTP workers of ``omipacs serve`` live on) and
    sums each one's growth from its first sighting to its last, so a child that ends
    loses at most one sampling interval and nothing is counted twice.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(pid, interval)
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def sample(self, first: bool = False) -> None:
        for pid in process_tree(self.pid):
            cpu = _cpu_seconds(pid)
            if cpu < 0:
                continue
            # A process first seen after the start began at zero.
            self.first.setdefault(pid, cpu if first else 0.0)
            self.last[pid] = cpu

    @property
    def seconds(self) -> float:
        return sum(self.last[p] - self.first[p] for p in self.last)


class Run:
    """One measured run: seconds, server CPU seconds, peak RSS (MiB) of its largest process."""

    def __init__(self, seconds: float, cpu: float, rss: float) -> None:
        self.seconds, self.cpu, self.rss = seconds, cpu, rss


def make_files(out: Path, n_ffdm: int, n_dbt: int, dbt_frames: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n_ffdm):
        path = out / f"ffdm{i}.dcm"
        lat, view = [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")][i % 4]
        factory.save(
            factory.make_mammo(
                laterality=lat, view=view, rows=4096, columns=3328, processed=i % 2 == 0, rng=i
            ),
            path,
        )
        files.append(path)
    for j in range(n_dbt):
        path = out / f"dbt{j}.dcm"
        factory.save(
            factory.make_dbt(frames=dbt_frames, rows=2457, columns=1890, rng=100 + j), path
        )
        files.append(path)
    return files


def warm_files(out: Path, n: int = 4) -> list[Path]:
    """Small mammograms sent before a measured run, one per association, so imports
    and caches are warm in every SCP process (their UIDs differ from the measured files')."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        path = out / f"warm{i}.dcm"
        factory.save(factory.make_mammo(rows=256, columns=208, rng=1000 + i), path)
        files.append(path)
    return files


def send(files: list[Path], port: int, parallel: int, aet: str = "STORESCU") -> float:
    groups = [files[i::parallel] for i in range(parallel)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                "storescu",
                "-R",
                "-aet",
                aet,
                "-aec",
                "OMIPACS",
                "127.0.0.1",
                str(port),
                *map(str, g),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for g in groups
        if g
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"storescu failed: {err}")
    return time.perf_counter() - start


def run_storescp(files: list[Path], parallel: int, work: Path) -> Run:
    port = free_port()
    out = work / f"storescp-{parallel}"
    out.mkdir()
    args = ["storescp", "-aet", "OMIPACS", "+xa", "-od", str(out), "--max-pdu", "131072"]
    if parallel > 1:
        args.append("--fork")
    proc = subprocess.Popen(
        [*args, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_port(port)
    try:
        with TreeCpu(proc.pid) as cpu:
            elapsed = send(files, port, parallel)
        rss = peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(out, ignore_errors=True)
    return Run(elapsed, cpu.seconds, rss)


def tree_peak_rss_mib(pid: int) -> float:
    """The largest peak RSS of any process in the tree (the limit is per process)."""
    return max(peak_rss_mib(p) for p in process_tree(pid))


def run_omipacs(files: list[Path], parallel: int, work: Path, fsync: bool,
                aet: str = "STORESCU", processes: int = 1,
                warm: list[Path] | None = None) -> Run:
    port = free_port()
    wd = work / f"omipacs-{parallel}-{fsync}-{aet}-{processes}"
    wd.mkdir()
    key = wd / "deid.key"
    key.write_text(secrets.token_hex(32) + "\n")
    key.chmod(0o600)
    proc = start_omipacs(
        write_config(wd, port, free_port(), fsync=fsync, deid_key=key), "--no-http",
        "--dimse-processes", str(processes),
    )
    try:
        if warm:
            send(warm, port, len(warm), aet)
        with TreeCpu(proc.pid) as cpu:
            elapsed = send(files, port, parallel, aet)
        rss = tree_peak_rss_mib(proc.pid)
    finally:
        stop(proc)
        shutil.rmtree(wd, ignore_errors=True)
    return Run(elapsed, cpu.seconds, rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ffdm", type=int, default=8)
    ap.add_argument("--dbt", type=int, default=1)
    ap.add_argument("--dbt-frames", type=int, default=120, help="120 frames = 1.1 GB")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--dimse-processes", default="1,2",
                    help="SCP process counts for the de-identifying rows (comma-separated)")
    args = ap.parse_args()
    counts = [int(n) for n in args.dimse_processes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="omipacs-bench-", dir=args.workdir))
    try:
        files = make_files(work / "files", args.ffdm, args.dbt, args.dbt_frames)
        warm = warm_files(work / "warm")
        total_mb = sum(f.stat().st_size for f in files) / 1e6
        print(
            f"{len(files)} files, {total_mb:.0f} MB "
            f"({args.ffdm} FFDM 3328x4096, {args.dbt} DBT {args.dbt_frames}x2457x1890)"
        )
        print(
            f"{'server':<30}{'assoc':>6}{'s':>8}{'files/s':>9}{'MB/s':>8}{'ratio':>7}"
            f"{'CPU s/GB':>10}{'peak RSS MiB':>14}"
        )
        for parallel in (1, 4):
            base = run_storescp(files, parallel, work)
            rows = [("dcmtk storescp" + (" --fork" if parallel > 1 else ""), base)]
            for fsync in (True, False):
                rows.append((f"omipacs (fsync {'on' if fsync else 'off'})",
                             run_omipacs(files, parallel, work, fsync, warm=warm)))
            for n in counts:
                rows.append((f"omipacs de-identifying x{n}",
                             run_omipacs(files, parallel, work, True, "SITE_A", n, warm)))
            for name, run in rows:
                t = run.seconds
                print(
                    f"{name:<30}{parallel:>6}{t:>8.2f}{len(files) / t:>9.2f}"
                    f"{total_mb / t:>8.1f}{base.seconds / t:>7.2f}"
                    f"{run.cpu / (total_mb / 1000):>10.2f}{run.rss:>14.0f}"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
