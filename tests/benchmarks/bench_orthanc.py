"""Side by side with the reference server: omipacs against Orthanc + DICOMweb.

On the same full-size FFDM files, one fresh server of each kind per row:

* C-STORE with 4 associations (dcmtk ``storescu``): dcmtk ``storescp --fork`` (the
  ceiling), Orthanc, omipacs storing as received and omipacs de-identifying (a
  screening site's peer) with 1 and N SCP processes (``--dimse-processes``); MB/s,
  ratio to ``storescp``, the CPU seconds per GB the server's process tree spent (less
  load-sensitive than MB/s on a shared machine) and the largest per-process peak RSS;
* STOW-RS with 4 client streams (one instance per request): Orthanc and omipacs with
  ``--http-workers`` 1, 2 and 4 (pre-forked worker processes), de-identifying;
* WADO-RS of single instances (as stored), one client, warm: against a plain read;
* study ``/metadata`` and ``/studies?includefield=all``: p50 of repeated requests.

Only ratios within one run mean anything on a shared machine.

Usage: python tests/benchmarks/bench_orthanc.py [--ffdm 8] [--orthanc /usr/sbin/Orthanc]
       [--dimse-processes 1,2] [--http-workers 1,2,4] [--no-reads]
Targets (issue 12): C-STORE de-identifying >= 0.9x storescp; STOW >= 2x Orthanc.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pydicom
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from omipacs.demo import factory  # noqa: E402
from tests.benchmarks.bench_store import (  # noqa: E402
    Run,
    TreeCpu,
    run_storescp,
    send,
    tree_peak_rss_mib,
    warm_files,
)
from tests.benchmarks.common import (  # noqa: E402
    free_port,
    start_omipacs,
    stop,
    write_config,
)

DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'


class Server:
    """A running server: its DIMSE port, DICOMweb base URL and process."""

    def __init__(self, proc: subprocess.Popen[str], dimse: int, base: str) -> None:
        self.proc, self.dimse, self.base = proc, dimse, base

    def stop(self) -> None:
        stop(self.proc)


def start_orthanc(binary: str, wd: Path) -> Server:
    wd.mkdir()
    dimse, http = free_port(), free_port()
    config = {
        "Name": "bench", "StorageDirectory": str(wd / "storage"),
        "IndexDirectory": str(wd / "index"), "HttpPort": http, "DicomPort": dimse,
        "DicomAet": "OMIPACS", "DicomCheckCalledAet": False, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "StorageCompression": False,
        "DicomAlwaysAllowStore": True, "UnknownSopClassAccepted": True,
        "HttpThreadsCount": 50, "Plugins": [DICOMWEB_PLUGIN],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full",
                     "SeriesMetadata": "Full"},
    }
    cfg = wd / "orthanc.json"
    cfg.write_text(json.dumps(config))
    proc = subprocess.Popen([binary, str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 180  # a loaded machine can take a minute
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{http}/system", timeout=2).ok:
                return Server(proc, dimse, f"http://127.0.0.1:{http}/dicom-web")
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("Orthanc did not start")


def start_ours(wd: Path, http_workers: int = 4, dimse_processes: int = 1) -> Server:
    wd.mkdir()
    key = wd / "deid.key"
    key.write_text(secrets.token_hex(32) + "\n")
    key.chmod(0o600)
    dimse, http = free_port(), free_port()
    proc = start_omipacs(
        write_config(wd, dimse, http, deid_key=key),
        "--http-workers", str(http_workers), "--dimse-processes", str(dimse_processes),
    )
    return Server(proc, dimse, f"http://127.0.0.1:{http}/dicom-web")


def c_store(server: Server, files: list[Path], aet: str = "STORESCU",
            warm: list[Path] | None = None) -> Run:
    """C-STORE ``files`` over 4 associations, after ``warm`` (not measured)."""
    if warm:
        send(warm, server.dimse, len(warm), aet)
    with TreeCpu(server.proc.pid) as cpu:
        t = send(files, server.dimse, 4, aet)
    return Run(t, cpu.seconds, tree_peak_rss_mib(server.proc.pid))


def stow_run(server: Server, files: list[Path], warm: list[Path] | None = None) -> Run:
    """STOW-RS ``files`` over 4 client streams, after ``warm`` (not measured)."""
    if warm:
        stow(server, warm)
    with TreeCpu(server.proc.pid) as cpu:
        t = stow(server, files)
    return Run(t, cpu.seconds, tree_peak_rss_mib(server.proc.pid))


def stow(server: Server, files: list[Path], streams: int = 4) -> float:
    """Seconds to STOW ``files``, one instance per request, over ``streams`` threads."""
    errors: list[str] = []

    def worker(mine: list[Path]) -> None:
        with requests.Session() as s:
            for f in mine:
                boundary = secrets.token_hex(8)
                body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                        + f.read_bytes() + f"\r\n--{boundary}--\r\n".encode())
                r = s.post(f"{server.base}/studies", data=body, timeout=600, headers={
                    "Content-Type": f'multipart/related; type="application/dicom"; '
                                    f"boundary={boundary}",
                    "Accept": "application/dicom+json"})
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=worker, args=(files[i::streams],))
               for i in range(streams)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    if errors:
        raise RuntimeError(f"STOW failed: {errors[0]}")
    return time.perf_counter() - t0


def best(fn: Callable[[], object], n: int = 3) -> float:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def p50(fn: Callable[[], object], n: int = 15) -> float:
    fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def get(url: str, accept: str = "application/dicom+json",
        params: dict[str, str] | None = None) -> int:
    with requests.get(url, headers={"Accept": accept}, params=params, stream=True,
                      timeout=600) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")
        return sum(len(c) for c in r.iter_content(1 << 20))


def reads(server: Server, files: list[Path]) -> dict[str, float]:
    """WADO of each instance, study metadata, includefield=all (seconds)."""
    heads = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    urls = [f"{server.base}/studies/{h.StudyInstanceUID}/series/{h.SeriesInstanceUID}"
            f"/instances/{h.SOPInstanceUID}" for h in heads]
    study = heads[0].StudyInstanceUID
    return {
        "wado": best(lambda: [get(u, AS_STORED) for u in urls]),
        "metadata": p50(lambda: get(f"{server.base}/studies/{study}/metadata")),
        "all": p50(lambda: get(f"{server.base}/studies", params={"includefield": "all"})),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ffdm", type=int, default=8)
    ap.add_argument("--orthanc", default="/usr/sbin/Orthanc")
    ap.add_argument("--dimse-processes", default="1,2",
                    help="SCP process counts for the de-identifying C-STORE rows")
    ap.add_argument("--http-workers", default="1,2,4",
                    help="HTTP worker counts for the STOW-RS rows")
    ap.add_argument("--no-reads", action="store_true", help="ingest rows only")
    args = ap.parse_args()
    processes = [int(n) for n in args.dimse_processes.split(",")]
    workers = [int(n) for n in args.http_workers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="omipacs-bench-orthanc-"))
    try:
        study = pydicom.uid.generate_uid()
        patient = factory.fake_patient(factory.as_rng(1))
        files = []
        for i in range(args.ffdm):
            lat, view = [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")][i % 4]
            path = work / f"ffdm{i}.dcm"
            factory.save(factory.make_mammo(laterality=lat, view=view, rows=4096,
                                            columns=3328, rng=i, study_uid=study,
                                            patient=patient), path)
            files.append(path)
        warm = warm_files(work / "warm")
        mb = sum(f.stat().st_size for f in files) / 1e6
        gb = mb / 1000
        print(f"{len(files)} FFDM files 3328x4096, {mb:.0f} MB")

        base = run_storescp(files, 4, work)
        rows = [("dcmtk storescp --fork", base)]
        orthanc = start_orthanc(args.orthanc, work / "orthanc")
        try:
            rows.append(("Orthanc", c_store(orthanc, files)))
            theirs = None if args.no_reads else reads(orthanc, files)
        finally:
            orthanc.stop()
        ours_srv = start_ours(work / "ours")
        try:
            rows.append(("omipacs as received", c_store(ours_srv, files, warm=warm)))
            ours = None if args.no_reads else reads(ours_srv, files)
        finally:
            ours_srv.stop()
        for n in processes:
            deid = start_ours(work / f"ours-deid-{n}", dimse_processes=n)
            try:
                rows.append((f"omipacs de-identifying x{n}",
                             c_store(deid, files, "SITE_A", warm)))
            finally:
                deid.stop()
        print("\nC-STORE, 4 associations (xN: --dimse-processes N)")
        print(f"{'server':<30}{'s':>8}{'MB/s':>8}{'x storescp':>12}{'CPU s/GB':>10}"
              f"{'peak RSS MiB':>14}")
        for name, run in rows:
            print(f"{name:<30}{run.seconds:>8.2f}{mb / run.seconds:>8.1f}"
                  f"{base.seconds / run.seconds:>12.2f}{run.cpu / gb:>10.2f}{run.rss:>14.0f}")

        o = start_orthanc(args.orthanc, work / "orthanc-stow")
        try:
            stow_orthanc = stow_run(o, files)
        finally:
            o.stop()
        stows = [("Orthanc", stow_orthanc)]
        for n in workers:
            s = start_ours(work / f"ours-stow-{n}", http_workers=n)
            try:
                stows.append((f"omipacs de-identifying x{n}", stow_run(s, files, warm)))
            finally:
                s.stop()
        print("\nSTOW-RS, 4 client streams (xN: --http-workers N; target >= 2x Orthanc)")
        print(f"{'server':<30}{'s':>8}{'MB/s':>8}{'x Orthanc':>12}{'CPU s/GB':>10}"
              f"{'peak RSS MiB':>14}")
        for name, run in stows:
            print(f"{name:<30}{run.seconds:>8.2f}{mb / run.seconds:>8.1f}"
                  f"{stow_orthanc.seconds / run.seconds:>12.2f}{run.cpu / gb:>10.2f}"
                  f"{run.rss:>14.0f}")

        if theirs is None or ours is None:
            return
        plain = best(lambda: [f.read_bytes() for f in files])
        print("\nReads (warm), one client")
        print(f"{'':<34}{'Orthanc':>12}{'omipacs':>12}{'omipacs/Orthanc speed':>24}")
        print(f"{'WADO-RS single instances MB/s':<34}{mb / theirs['wado']:>12.0f}"
              f"{mb / ours['wado']:>12.0f}{theirs['wado'] / ours['wado']:>23.2f}x"
              f"   (plain read {mb / plain:.0f} MB/s; omipacs {plain / ours['wado']:.2f}x of it)")
        for key, label in (("metadata", "study /metadata p50 ms"),
                           ("all", "QIDO includefield=all p50 ms")):
            print(f"{label:<34}{theirs[key] * 1000:>12.1f}{ours[key] * 1000:>12.1f}"
                  f"{theirs[key] / ours[key]:>23.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
