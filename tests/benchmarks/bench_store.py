"""C-STORE ingest throughput and memory: omipacs against dcmtk's storescp.

Each server announces its own maximum PDU: storescp at most 128 KiB (dcmtk's limit),
omipacs its configured default (1 MiB). Rows: omipacs storing as received (peer
STORESCU, de-identification off for it) with and without fsync, and omipacs
de-identifying (peer SITE_A: header cleaned and rewritten, pixels copied by the kernel).

Sends the same full-size FFDM and DBT files with dcmtk ``storescu`` over 1 and 4
parallel associations, first to ``storescp`` (the ceiling: it only writes files, and
does not fsync) and then to ``omipacs serve`` (which validates, hashes, fsyncs, renames
and indexes every instance before acknowledging). Prints files/s, MB/s, the ratio to
storescp and the server's peak RSS.

Usage: python tests/benchmarks/bench_store.py [--ffdm 8] [--dbt 1] [--dbt-frames 120]
Targets (issue): >= 0.7x storescp with 4 associations; peak RSS < 400 MB with 1 GB+ DBT.
"""

from __future__ import annotations

import argparse
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
    free_port,
    peak_rss_mib,
    start_omipacs,
    stop,
    wait_port,
    write_config,
)


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


def run_storescp(files: list[Path], parallel: int, work: Path) -> tuple[float, float]:
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
        elapsed = send(files, port, parallel)
        rss = peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(out, ignore_errors=True)
    return elapsed, rss


def run_omipacs(files: list[Path], parallel: int, work: Path, fsync: bool,
                aet: str = "STORESCU") -> tuple[float, float]:
    port = free_port()
    wd = work / f"omipacs-{parallel}-{fsync}-{aet}"
    wd.mkdir()
    key = wd / "deid.key"
    key.write_text(secrets.token_hex(32) + "\n")
    proc = start_omipacs(
        write_config(wd, port, free_port(), fsync=fsync, deid_key=key), "--no-http"
    )
    try:
        elapsed = send(files, port, parallel, aet)
        rss = peak_rss_mib(proc.pid)
    finally:
        stop(proc)
        shutil.rmtree(wd, ignore_errors=True)
    return elapsed, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ffdm", type=int, default=8)
    ap.add_argument("--dbt", type=int, default=1)
    ap.add_argument("--dbt-frames", type=int, default=120, help="120 frames = 1.1 GB")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="omipacs-bench-", dir=args.workdir))
    try:
        files = make_files(work / "files", args.ffdm, args.dbt, args.dbt_frames)
        total_mb = sum(f.stat().st_size for f in files) / 1e6
        print(
            f"{len(files)} files, {total_mb:.0f} MB "
            f"({args.ffdm} FFDM 3328x4096, {args.dbt} DBT {args.dbt_frames}x2457x1890)"
        )
        print(
            f"{'server':<26}{'assoc':>6}{'s':>8}{'files/s':>9}{'MB/s':>8}{'ratio':>7}"
            f"{'peak RSS MiB':>14}"
        )
        for parallel in (1, 4):
            base, base_rss = run_storescp(files, parallel, work)
            rows = [("dcmtk storescp", base, base_rss)]
            for fsync in (True, False):
                t, rss = run_omipacs(files, parallel, work, fsync)
                rows.append((f"omipacs (fsync {'on' if fsync else 'off'})", t, rss))
            t, rss = run_omipacs(files, parallel, work, True, aet="SITE_A")
            rows.append(("omipacs de-identifying", t, rss))
            for name, t, rss in rows:
                print(
                    f"{name:<26}{parallel:>6}{t:>8.2f}{len(files) / t:>9.2f}"
                    f"{total_mb / t:>8.1f}{base / t:>7.2f}{rss:>14.0f}"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
