"""The index at OMI-DB size: query latency and C-STORE ingest as the index grows.

For each scale (a fraction of 470k clients / 1.3 M studies / 7 M instances, rows
synthesised by tests/benchmarks/bigindex.py on a private PostgreSQL under /tmp) it
starts ``omipacs serve`` on that index and measures, through the real server:

* OHIF's study list (``/studies?limit=101&includefield=00081030,00080060``): a list;
* a client's studies by PatientID: a lookup;
* studies in a one-month StudyDate range: a list;
* the mammography instance filters (ImageLaterality + ViewPosition +
  PresentationIntentType + Manufacturer) on ``/instances``: a list;
* ``includefield=all`` on a client's studies: a lookup;
* series ``/metadata`` (served from the index's stored DICOM JSON, no blob read): a lookup;
* C-STORE ingest rate (4 associations, dcmtk ``storescu``, small MG files stored as
  received) into the filled index, against the rate into an empty index in the same run.

Lookups pick a different client / series each time (so no result is cached), lists are
the same request repeated. All sizes are served at once and take turns request by
request (and the two ingest targets batch by batch), so load from elsewhere on a shared
machine weighs on every size alike: only the ratios are meant to be read.

Beside the latency through the server, each request's time inside PostgreSQL is read
from ``pg_stat_statements`` (execution time of every statement the servers sent, per
database, divided by the requests): the part of a request that grows with the index.
So is the number of 8 KiB pages those statements touched (shared buffers hit or read):
a count of work that no other load on the machine changes.
Targets: lookups grow ≤ 1.2× and lists ≤ 2× for 10× the data; ingest into the full
index ≥ 0.9× of the empty one.

``--sqlite`` also copies the imaging tables of each scale into a SQLite index and times
the study list there: the embedded default's limit.

Usage: python tests/benchmarks/bench_index.py [--scales 0.01 0.1] [--sqlite]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pydicom
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from omipacs.demo import factory  # noqa: E402
from omipacs.index import db  # noqa: E402
from tests.benchmarks.bigindex import Size, _libpq, fill  # noqa: E402
from tests.benchmarks.common import free_port, start_omipacs, stop, write_config  # noqa: E402
from tests.pg import PostgresServer, create_database  # noqa: E402

OHIF_STUDY_LIST = {"limit": "101", "offset": "0", "fuzzymatching": "false",
                   "includefield": "00081030,00080060"}
MAMMO_FILTER = {"ImageLaterality": "L", "ViewPosition": "CC",
                "PresentationIntentType": "FOR PRESENTATION", "Manufacturer": "HOLOGIC, Inc.",
                "limit": "101"}
REPEAT = 30
_OWN = "query NOT LIKE '%%pg_stat_statements%%'"


def _ms(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples) * 1000, p95 * 1000


def _time(fn: Callable[[int], None], n: int = REPEAT) -> tuple[float, float]:
    fn(0)  # warm the connection pool and the plan cache
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i + 1)
        out.append(time.perf_counter() - t0)
    return _ms(out)


def _get(url: str, params: dict[str, str] | None = None, want: int = 200) -> bytes:
    r = requests.get(url, params=params, timeout=600)
    if r.status_code != want:
        raise RuntimeError(f"{url} {params}: {r.status_code} {r.text[:200]}")
    return r.content


def _samples(url: str, n: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Patient IDs and (study, series) UIDs to look up, chosen at random."""
    rng = random.Random(1)
    with psycopg.connect(_libpq(url)) as conn:
        n_patients = int(conn.execute("SELECT max(pk) FROM patient").fetchone()[0])  # type: ignore[index]
        n_series = int(conn.execute("SELECT max(pk) FROM series").fetchone()[0])  # type: ignore[index]
        patients = [r[0] for r in conn.execute(
            "SELECT patient_id FROM patient WHERE pk = ANY(%s)",
            (rng.sample(range(1, n_patients + 1), min(n, n_patients)),))]
        series = [(r[0], r[1]) for r in conn.execute(
            "SELECT st.study_instance_uid, se.series_instance_uid"
            " FROM series se JOIN study st ON st.pk = se.study_pk WHERE se.pk = ANY(%s)",
            (rng.sample(range(1, n_series + 1), min(n, n_series)),))]
    return patients, series


def queries(base: str, patients: list[str],
            series: list[tuple[str, str]]) -> dict[str, Callable[[int], bytes]]:
    """Each measured request against the server at ``base``; ``i`` picks the sample."""
    return {
        "study list (OHIF)": lambda _i: _get(f"{base}/studies", OHIF_STUDY_LIST),
        "PatientID": lambda i: _get(f"{base}/studies", {
            "PatientID": patients[i], "includefield": "00081030,00080060"}),
        "StudyDate month": lambda _i: _get(f"{base}/studies", {
            "StudyDate": "20150301-20150331", "limit": "101",
            "includefield": "00081030,00080060"}),
        "mammo instance filter": lambda _i: _get(f"{base}/instances", MAMMO_FILTER),
        "includefield=all (client)": lambda i: _get(
            f"{base}/studies", {"PatientID": patients[i], "includefield": "all"}),
        "includefield=all (list)": lambda _i: _get(
            f"{base}/studies", {"limit": "101", "includefield": "all"}),
        "series /metadata": lambda i: _get(
            f"{base}/studies/{series[i][0]}/series/{series[i][1]}/metadata"),
    }


def _sql_work(url: str) -> tuple[float, float]:
    """Milliseconds PostgreSQL spent executing statements in ``url``'s database since
    the last reset, and the pages they touched (``pg_stat_statements``; the benchmark's
    own reads excluded)."""
    with psycopg.connect(_libpq(url)) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(total_exec_time), 0),"
            " coalesce(sum(shared_blks_hit + shared_blks_read), 0) FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            f" AND {_OWN}").fetchone()
    return (float(row[0]), float(row[1])) if row else (0.0, 0.0)


def _reset_sql(url: str) -> None:
    with psycopg.connect(_libpq(url)) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def measure_interleaved(
    servers: dict[float, tuple[str, str]], n: int = REPEAT
) -> tuple[dict[float, dict[str, tuple[float, float]]],
           dict[float, dict[str, tuple[float, float]]]]:
    """p50/p95 of every query on every server, the servers taking turns request by
    request, so load from elsewhere on a shared machine falls on all sizes alike; and
    the mean time per request spent inside PostgreSQL."""
    plans = {scale: queries(base, *_samples(url, n + 1))
             for scale, (base, url) in servers.items()}
    times: dict[float, dict[str, list[float]]] = {s: {} for s in servers}
    sql: dict[float, dict[str, tuple[float, float]]] = {s: {} for s in servers}
    for name in plans[next(iter(plans))]:
        for scale, (_, url) in servers.items():
            plans[scale][name](0)  # warm-up
            _reset_sql(url)
        for i in range(1, n + 1):
            for scale in servers:
                t0 = time.perf_counter()
                plans[scale][name](i)
                times[scale].setdefault(name, []).append(time.perf_counter() - t0)
        for scale, (_, url) in servers.items():
            ms, pages = _sql_work(url)
            sql[scale][name] = (ms / n, pages / n)
    return {s: {name: _ms(v) for name, v in t.items()} for s, t in times.items()}, sql


KINDS = {"study list (OHIF)": "list", "PatientID": "lookup", "StudyDate month": "list",
         "mammo instance filter": "list", "includefield=all (client)": "lookup",
         "includefield=all (list)": "list", "series /metadata": "lookup"}


def make_ingest_files(out: Path, n: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        lat, view = [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")][i % 4]
        ds = factory.make_mammo(laterality=lat, view=view, rows=256, columns=208,
                                processed=i % 2 == 0, rng=i)
        path = out / f"mg{i}.dcm"
        factory.save(ds, path)
        files.append(path)
    return files


def store(files: list[Path], port: int, parallel: int = 4) -> float:
    """Seconds to send ``files`` with ``storescu`` over ``parallel`` associations."""
    groups = [files[i::parallel] for i in range(parallel)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["storescu", "-aet", "STORESCU", "-aec", "OMIPACS", "127.0.0.1",
                               str(port), *map(str, g)], stderr=subprocess.PIPE, text=True)
             for g in groups]
    for p in procs:
        _, err = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"storescu failed: {err[-500:]}")
    return time.perf_counter() - t0


def serve(work: Path, name: str, url: str) -> tuple[subprocess.Popen[str], str, int]:
    wd = work / name
    wd.mkdir()
    key = wd / "deid.key"
    key.write_text(secrets.token_hex(32) + "\n")
    dimse, http = free_port(), free_port()
    cfg = write_config(wd, dimse, http, fsync=True, deid_key=key, database_url=url)
    proc = start_omipacs(cfg, "--http-workers", "2")
    return proc, f"http://127.0.0.1:{http}/dicom-web", dimse


def fresh_copies(files: list[Path], out: Path) -> list[Path]:
    """``files`` with new Study/Series/SOP Instance UIDs (each ingest stores new data)."""
    out.mkdir()
    copies = []
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesInstanceUID = pydicom.uid.generate_uid()
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = out / f"{i}.dcm"
        ds.save_as(path)
        copies.append(path)
    return copies


def ingest_interleaved(work: Path, targets: dict[float, str], files: list[Path],
                       rounds: int = 4) -> dict[float, float]:
    """Instances/s into each index (4 associations), in alternating batches."""
    procs, dimse, batches = {}, {}, {}
    try:
        for scale, url in targets.items():
            procs[scale], _, dimse[scale] = serve(work, f"ingest-{scale}", url)
            copies = fresh_copies(files, work / f"files-{scale}")
            store(copies[:20], dimse[scale])  # warm-up, not timed
            per = (len(copies) - 20) // rounds
            batches[scale] = [copies[20 + r * per: 20 + (r + 1) * per] for r in range(rounds)]
        spent = dict.fromkeys(targets, 0.0)
        for r in range(rounds):
            for scale in targets:
                spent[scale] += store(batches[scale][r], dimse[scale])
    finally:
        for proc in procs.values():
            stop(proc)
    return {s: sum(len(b) for b in batches[s]) / spent[s] for s in targets}


def copy_to_sqlite(pg_url: str, path: Path) -> None:
    """The imaging tables of ``pg_url`` in a new SQLite index at ``path`` (the embedded
    default), copied row by row through the sqlite3 module (tuples: fast enough)."""
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    lite = sqlite3.connect(path)
    lite.execute("PRAGMA synchronous=OFF")
    try:
        with psycopg.connect(_libpq(pg_url)) as src:
            for name in ("patient", "study", "series", "instance"):
                cols = [r[1] for r in lite.execute(f"PRAGMA table_info({name})")]
                insert = (f"INSERT INTO {name} ({', '.join(cols)})"
                          f" VALUES ({', '.join('?' for _ in cols)})")
                with src.cursor(name=f"copy_{name}") as cur:
                    cur.execute(f"SELECT {', '.join(cols)} FROM {name} ORDER BY pk")
                    while batch := cur.fetchmany(50000):
                        lite.executemany(insert, [
                            tuple(v.isoformat(" ") if isinstance(v, dt.datetime) else
                                  v.isoformat() if isinstance(v, dt.date) else v for v in r)
                            for r in batch])
                lite.commit()
        lite.execute("ANALYZE")
        lite.commit()
    finally:
        lite.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[0.01, 0.1])
    ap.add_argument("--ingest-files", type=int, default=220)
    ap.add_argument("--sqlite", action="store_true")
    ap.add_argument("--repeat", type=int, default=REPEAT, help="requests per query and size")
    args = ap.parse_args()
    # A stopped run still stops its PostgreSQL and deletes its data under /tmp.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    work = Path(tempfile.mkdtemp(prefix="omipacs-bench-index-"))
    pg = PostgresServer("-c shared_buffers=1GB -c work_mem=32MB -c max_wal_size=4GB"
                        " -c shared_preload_libraries=pg_stat_statements")
    sqlite_list: dict[float, tuple[float, float]] = {}
    try:
        files = make_ingest_files(work / "files", args.ingest_files)
        empty = create_database(pg.admin_url)
        eng = db.make_engine(empty)
        db.upgrade(eng)
        eng.dispose()
        urls = {}
        for scale in args.scales:
            urls[scale] = create_database(pg.admin_url)
            print(f"filling {Size.at(scale)} (scale {scale})", flush=True)
            fill(urls[scale], scale)
            with psycopg.connect(_libpq(urls[scale]), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        procs = []
        try:
            servers = {}
            for scale, url in urls.items():
                proc, base, _ = serve(work, f"q{scale}", url)
                procs.append(proc)
                servers[scale] = (base, url)
            results, sql = measure_interleaved(servers, args.repeat)
        finally:
            for proc in procs:
                stop(proc)
        largest = max(urls)
        ingest = ingest_interleaved(work, {0.0: empty, largest: urls[largest]}, files)
        if args.sqlite:
            for scale, url in urls.items():
                (work / f"lite{scale}").mkdir()
                lite = work / f"lite{scale}" / "index.sqlite"
                t0 = time.perf_counter()
                copy_to_sqlite(url, lite)
                print(f"copied {scale} to SQLite in {time.perf_counter() - t0:.0f} s", flush=True)
                proc, base, _ = serve(work, f"lite-q{scale}", f"sqlite:///{lite}")
                try:
                    sqlite_list[scale] = _time(
                        lambda _i, b=base: _get(f"{b}/studies", OHIF_STUDY_LIST), 5)
                finally:
                    stop(proc)
        report(results, sql, ingest, sqlite_list)
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict[float, dict[str, tuple[float, float]]],
           sql: dict[float, dict[str, tuple[float, float]]], ingest: dict[float, float],
           sqlite_list: dict[float, tuple[float, float]]) -> None:
    scales = sorted(results)
    lo, hi = scales[0], scales[-1]
    growth = hi / lo
    print(f"\nPostgreSQL index, p50 / p95 ms; growth = largest / smallest ({growth:.0f}x data)")
    head = "".join(f"{f'{Size.at(s).studies:,} st':>20}" for s in scales)
    print(f"{'query':<28}{'kind':>7}{head}{'growth p50':>12}{'target':>8}")
    for name in results[lo]:
        cells = "".join(f"{results[s][name][0]:>10.1f}/{results[s][name][1]:<9.1f}" for s in scales)
        ratio = results[hi][name][0] / results[lo][name][0]
        kind = KINDS[name]
        target = 1.2 if kind == "lookup" else 2.0
        print(f"{name:<28}{kind:>7}{cells}{ratio:>11.2f}x{'≤' + str(target) + 'x':>8}")
    print("\nInside PostgreSQL per request: execution ms / pages touched (pg_stat_statements)")
    print(f"{'query':<28}{'kind':>7}{head}{'growth ms':>11}{'pages':>8}{'target':>8}")
    for name in sql[lo]:
        cells = "".join(f"{sql[s][name][0]:>10.2f}/{sql[s][name][1]:<9.0f}" for s in scales)
        grow = [sql[hi][name][k] / sql[lo][name][k] if sql[lo][name][k] else float("nan")
                for k in (0, 1)]
        target = 1.2 if KINDS[name] == "lookup" else 2.0
        print(f"{name:<28}{KINDS[name]:>7}{cells}{grow[0]:>10.2f}x{grow[1]:>7.2f}x"
              f"{'≤' + str(target) + 'x':>8}")
    print("\nC-STORE, 4 associations, small MG files stored as received (instances/s)")
    print(f"{'index':<28}{'rate':>10}{'vs empty':>10}")
    for s, rate in sorted(ingest.items()):
        label = "empty" if s == 0 else f"{Size.at(s).instances:,} instances"
        print(f"{label:<28}{rate:>10.1f}{rate / ingest[0.0]:>9.2f}x")
    if sqlite_list:
        print("\nSQLite (embedded default), OHIF study list p50 / p95 ms")
        for s, (p50, p95) in sorted(sqlite_list.items()):
            print(f"{Size.at(s).studies:>12,} studies {p50:>10.1f} / {p95:.1f}")


if __name__ == "__main__":
    main()
