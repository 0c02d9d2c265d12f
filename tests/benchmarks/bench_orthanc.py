"""Side by side with the reference server: omipacs against Orthanc + DICOMweb.

On the same full-size FFDM files, one fresh server of each kind per row:

* C-STORE with 4 associations (dcmtk ``storescu``): dcmtk ``storescp --fork`` (the
  ceiling), Orthanc, omipacs storing as received and omipacs de-identifying (a
  screening site's peer); MB/s, ratio to ``storescp``, the server's peak RSS;
* STOW-RS with 4 client streams (one instance per request): Orthanc and omipacs;
* WADO-RS of single instances (as stored), one client, warm: against a plain read;
* study ``/metadata`` and ``/studies?includefield=all``: p50 of repeated requests.

Only ratios within one run mean anything on a shared machine.

Usage: python tests/benchmarks/bench_orthanc.py [--ffdm 8] [--orthanc /usr/sbin/Orthanc]
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
from tests.benchmarks.bench_store import run_storescp, send  # noqa: E402
from tests.benchmarks.common import (  # noqa: E402
    free_port,
    peak_rss_mib,
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
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{http}/system", timeout=2).ok:
                return Server(proc, dimse, f"http://127.0.0.1:{http}/dicom-web")
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("Orthanc did not start")


def start_ours(wd: Path) -> Server:
    wd.mkdir()
    key = wd / "deid.key"
    key.write_text(secrets.token_hex(32) + "\n")
    dimse, http = free_port(), free_port()
    proc = start_omipacs(write_config(wd, dimse, http, deid_key=key), "--http-workers", "4")
    return Server(proc, dimse, f"http://127.0.0.1:{http}/dicom-web")


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
    args = ap.parse_args()
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
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(files)} FFDM files 3328x4096, {mb:.0f} MB")

        base, base_rss = run_storescp(files, 4, work)
        rows = [("dcmtk storescp --fork", base, base_rss)]
        orthanc = start_orthanc(args.orthanc, work / "orthanc")
        try:
            t = send(files, orthanc.dimse, 4)
            rows.append(("Orthanc", t, peak_rss_mib(orthanc.proc.pid)))
            theirs = reads(orthanc, files)
        finally:
            orthanc.stop()
        ours_srv = start_ours(work / "ours")
        try:
            t = send(files, ours_srv.dimse, 4)
            rows.append(("omipacs as received", t, peak_rss_mib(ours_srv.proc.pid)))
            ours = reads(ours_srv, files)
        finally:
            ours_srv.stop()
        deid = start_ours(work / "ours-deid")
        try:
            t = send(files, deid.dimse, 4, aet="SITE_A")
            rows.append(("omipacs de-identifying", t, peak_rss_mib(deid.proc.pid)))
        finally:
            deid.stop()
        print("\nC-STORE, 4 associations")
        print(f"{'server':<26}{'s':>8}{'MB/s':>8}{'x storescp':>12}{'peak RSS MiB':>14}")
        for name, t, rss in rows:
            print(f"{name:<26}{t:>8.2f}{mb / t:>8.1f}{base / t:>12.2f}{rss:>14.0f}")

        o = start_orthanc(args.orthanc, work / "orthanc-stow")
        try:
            stow_orthanc = stow(o, files)
        finally:
            o.stop()
        s = start_ours(work / "ours-stow")
        try:
            stow_ours = stow(s, files)
        finally:
            s.stop()
        print("\nSTOW-RS, 4 client streams")
        print(f"Orthanc {mb / stow_orthanc:8.1f} MB/s   omipacs {mb / stow_ours:8.1f} MB/s"
              f"   -> {stow_orthanc / stow_ours:.2f}x Orthanc (target >= 2x)")

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
