"""DICOMweb figures against a live omipacs server, each with an in-process baseline.

1. WADO-RS instance retrieval throughput vs a plain read of the same files (target >= 0.8x).
2. DBT frame latency, last frame vs first frame (target <= 1.2x).
3. Series /metadata latency vs parsing the same files with pydicom (target >= 10x faster).
4. QIDO p50/p95 for OHIF's study-list query at 10k and 100k studies (index rows
   synthesised directly), target: p95 grows at most 2x.

Usage: python tests/benchmarks/bench_dicomweb.py [--ffdm 8] [--dbt-frames 60]
       [--studies 10000 100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pydicom
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import insert, select  # noqa: E402

from omipacs.config import DatabaseSettings, Settings, StorageSettings  # noqa: E402
from omipacs.demo import factory  # noqa: E402
from omipacs.index.models import Patient, Series, Study  # noqa: E402
from omipacs.services import Services  # noqa: E402
from tests.benchmarks.common import free_port, start_omipacs, stop, write_config  # noqa: E402

OHIF_STUDY_LIST = {"limit": "101", "offset": "0", "fuzzymatching": "false",
                   "includefield": "00081030,00080060"}


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def best_of(n: int, fn, before=None) -> float:  # type: ignore[no-untyped-def]
    """The fastest of ``n`` runs of ``fn``, calling ``before`` (untimed) ahead of each."""
    out = []
    for _ in range(n):
        if before is not None:
            before()
        out.extend(timed(fn, 1))
    return min(out)


def drop_cache(files: list[Path]) -> None:
    """Evict files from the page cache so the next read comes from disk."""
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def plain_read(files: list[Path]) -> None:
    """Read each file through a reused buffer: the fastest plain read, no allocation."""
    buf = memoryview(bytearray(1 << 20))
    for f in files:
        with f.open("rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def raw_sendfile(files: list[Path]) -> None:
    """The same bytes over a loopback socket with no HTTP: what the machine allows."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        def send() -> None:
            conn, _ = srv.accept()
            with conn:
                for f in files:
                    with f.open("rb") as fh:
                        conn.sendfile(fh)
        t = threading.Thread(target=send)
        t.start()
        with socket.create_connection(srv.getsockname()) as c:
            buf = memoryview(bytearray(1 << 20))
            while c.recv_into(buf):
                pass
        t.join()


MULTIPART_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def lean_get(port: int, paths: list[str],
             accept: str = "application/dicom; transfer-syntax=*") -> None:
    """Retrieve instances over one keep-alive connection into a reused buffer."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    buf = memoryview(bytearray(1 << 20))
    for path in paths:
        conn.request("GET", path, headers={"Accept": accept})
        resp = conn.getresponse()
        while resp.readinto(buf):
            pass
    conn.close()


def synthesise(settings: Settings, studies: int) -> None:
    """Add index rows for ``studies`` studies (1 series, 1 instance each; no bytes)."""
    services = Services.create(settings)
    rng = secrets.SystemRandom()
    with services.engine.begin() as conn:
        have = conn.execute(select(Study.pk)).all()
        start = len(have)
        batch = 5000
        for base in range(start, studies, batch):
            n = min(batch, studies - base)
            conn.execute(insert(Patient), [
                {"patient_id": f"OPTMSYN{base + i:09d}", "patient_name": f"OPTMSYN{base + i}",
                 "patient_name_search": f"OPTMSYN{base + i}", "issuer": "", "sex": "F"}
                for i in range(n)])
            pks = dict(conn.execute(select(Patient.patient_id, Patient.pk).where(
                Patient.patient_id.like("OPTMSYN%"))).all())
            conn.execute(insert(Study), [
                {"study_instance_uid": f"2.25.9{base + i}", "patient_pk":
                 pks[f"OPTMSYN{base + i:09d}"], "study_date": dt.date(2010, 1, 1)
                 + dt.timedelta(days=rng.randrange(5000)), "study_time": "101010",
                 "accession_number": f"A{base + i}", "study_id": "1", "study_description":
                 "Screening Mammography", "referring_physician_name": "", "patient_age": "055Y"}
                for i in range(n)])
            spk = dict(conn.execute(select(Study.study_instance_uid, Study.pk).where(
                Study.study_instance_uid.like("2.25.9%"))).all())
            conn.execute(insert(Series), [
                {"series_instance_uid": f"2.25.8{base + i}", "study_pk": spk[f"2.25.9{base + i}"],
                 "modality": "MG", "series_number": 1, "series_description": "L CC",
                 "body_part_examined": "BREAST", "presentation_intent_type": "FOR PRESENTATION"}
                for i in range(n)])
    services.close()


def in_parallel(n: int, fn, items: list) -> None:  # type: ignore[no-untyped-def,type-arg]
    """``fn`` over ``n`` interleaved shares of ``items``, one thread each."""
    threads = [threading.Thread(target=fn, args=(items[k::n],)) for k in range(n)
               if items[k::n]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ffdm", type=int, default=8)
    ap.add_argument("--dbt-frames", type=int, default=60)
    ap.add_argument("--studies", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--database-url", default="")
    ap.add_argument("--http-workers", type=int, default=4,
                    help="gunicorn worker processes; also the parallel clients of row 1c")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="omipacs-bench-web-"))
    try:
        files = []
        study = pydicom.uid.generate_uid()
        patient = factory.fake_patient(factory.as_rng(1))
        for i in range(args.ffdm):
            p = work / f"ffdm{i}.dcm"
            factory.save(factory.make_mammo(rows=4096, columns=3328, rng=i, study_uid=study,
                                            patient=patient), p)
            files.append(p)
        dbt = work / "dbt.dcm"
        factory.save(factory.make_dbt(frames=args.dbt_frames, rows=2457, columns=1890, rng=99,
                                      study_uid=study, patient=patient), dbt)
        key = work / "deid.key"
        key.write_text(secrets.token_hex(32) + "\n")
        dimse, http = free_port(), free_port()
        cfg = write_config(work, dimse, http, deid_key=key, database_url=args.database_url)
        settings = Settings(storage=StorageSettings(root=work / "storage"),
                            database=DatabaseSettings(url=args.database_url))
        subprocess.run([sys.executable, "-m", "omipacs", "--config", str(cfg), "import",
                        "--no-deidentify", *map(str, files), str(dbt)], check=True,
                       capture_output=True)
        workers = ("--http-workers", str(args.http_workers))
        proc = start_omipacs(cfg, *workers)
        base = f"http://127.0.0.1:{http}/dicom-web"
        try:
            s = requests.Session()
            inst = s.get(f"{base}/instances", params={"limit": "1000"}).json()
            mg = [i for i in inst if i["00080016"]["Value"][0].endswith(".1.2")]
            dbt_row = next(i for i in inst if i["00080016"]["Value"][0].endswith("13.1.3"))

            def url(i: dict) -> str:  # type: ignore[type-arg]
                return (f"{base}/studies/{i['0020000D']['Value'][0]}/series/"
                        f"{i['0020000E']['Value'][0]}/instances/{i['00080018']['Value'][0]}")

            # 1. instance retrieval vs plain read: warm (page cache) and cold (from disk)
            everything = [*files, dbt]
            blobs = [b for b in (work / "storage").rglob("*") if b.is_file()]
            paths = [url(i).split(f":{http}", 1)[1] for i in mg]
            study_path = paths[0].split("/series/", 1)[0]
            total = sum(f.stat().st_size for f in files)
            total_all = sum(f.stat().st_size for f in everything)
            print("1. WADO-RS retrieval vs a plain read of the same files "
                  "(read into a reused 1 MiB buffer; lean client: http.client readinto)")
            for cold in (False, True):
                evict = (lambda fs=files + [dbt] + blobs: drop_cache(fs)) if cold else None
                where = "cold (from disk)" if cold else "warm (page cache)"
                rows = [
                    (f"{len(mg)} FFDM instances, one request each", total,
                     lambda: plain_read(files),
                     lambda: lean_get(http, paths)),
                    (f"{len(mg)} FFDM instances, {args.http_workers} clients in parallel "
                     f"({args.http_workers} HTTP workers; the plain read {args.http_workers} "
                     "threads)", total,
                     lambda: in_parallel(args.http_workers, plain_read, files),
                     lambda: in_parallel(args.http_workers, lambda ps: lean_get(http, ps),
                                         paths)),
                    (f"whole study ({len(everything)} instances incl. DBT), one multipart "
                     "response", total_all,
                     lambda: plain_read(everything),
                     lambda: lean_get(http, [study_path], MULTIPART_AS_STORED)),
                ]
                for label, size, read, fetch in rows:
                    plain = best_of(3, read, evict)
                    ceiling = best_of(3, lambda fs=everything if "study" in label else files:
                                      raw_sendfile(fs), evict)
                    wado = best_of(3, fetch, evict)
                    print(f"   {where}, {label} ({size / 1e6:.0f} MB): plain "
                          f"{size / 1e6 / plain:6.0f} MB/s, loopback sendfile without HTTP "
                          f"{size / 1e6 / ceiling:6.0f} MB/s, WADO-RS {size / 1e6 / wado:6.0f} "
                          f"MB/s -> {plain / wado:.2f}x plain (target >= 0.8x), "
                          f"{ceiling / wado:.2f}x the socket ceiling")
            start = time.perf_counter()
            got = 0
            for i in mg:
                r = s.get(url(i), headers={"Accept": "application/dicom; transfer-syntax=*"},
                          stream=True)
                for chunk in r.iter_content(1 << 20):
                    got += len(chunk)
            wado = time.perf_counter() - start
            print(f"   warm, with requests (iter_content 1 MiB): {got / 1e6 / wado:6.0f} MB/s")
            # 2. DBT frame latency, last vs first
            accept = {"Accept": "multipart/related; type=application/octet-stream; "
                                "transfer-syntax=*"}
            first = timed(lambda: s.get(f"{url(dbt_row)}/frames/1", headers=accept).content, 20)
            last = timed(lambda: s.get(f"{url(dbt_row)}/frames/{args.dbt_frames}",
                                       headers=accept).content, 20)
            print(f"2. DBT frame latency: first {statistics.median(first) * 1e3:6.1f} ms, last "
                  f"{statistics.median(last) * 1e3:6.1f} ms -> "
                  f"{statistics.median(last) / statistics.median(first):.2f}x (target <= 1.2x)")
            # 3. series metadata vs pydicom parse of the same file
            series_url = url(dbt_row).rsplit("/instances/", 1)[0] + "/metadata"
            meta = timed(lambda: s.get(series_url).content, 20)
            parse = timed(lambda: pydicom.dcmread(dbt).to_json_dict(), 3)
            print(f"3. series /metadata: {statistics.median(meta) * 1e3:6.1f} ms vs pydicom "
                  f"parse {statistics.median(parse) * 1e3:7.1f} ms -> "
                  f"{statistics.median(parse) / statistics.median(meta):.0f}x faster "
                  "(target >= 10x)")
            # 4. QIDO study list at growing index sizes
            p95s = []
            for n in args.studies:
                stop(proc)
                synthesise(settings, n)
                proc = start_omipacs(cfg, *workers)
                for _ in range(5):
                    s.get(f"{base}/studies", params=OHIF_STUDY_LIST)
                lat = timed(lambda: s.get(f"{base}/studies", params=OHIF_STUDY_LIST).content, 60)
                lat_f = timed(lambda: s.get(f"{base}/studies", params={
                    **OHIF_STUDY_LIST, "PatientName": "*SYN12*"}).content, 30)
                p95s.append(pct(lat, 95))
                print(f"4. QIDO study list at {n:>7} studies: p50 {pct(lat, 50) * 1e3:6.1f} ms, "
                      f"p95 {pct(lat, 95) * 1e3:6.1f} ms; with PatientName=*SYN12*: p50 "
                      f"{pct(lat_f, 50) * 1e3:6.1f} ms, p95 {pct(lat_f, 95) * 1e3:6.1f} ms")
            if len(p95s) > 1:
                print(f"   p95 growth {args.studies[0]} -> {args.studies[-1]}: "
                      f"{p95s[-1] / p95s[0]:.2f}x (target <= 2x)")
        finally:
            stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
