"""The dashboard's overview on an index of OMI-DB size (PostgreSQL, rows synthesised).

For each scale (a fraction of 470k clients / 1.3 M studies / 7 M instances, made by
tests/benchmarks/bigindex.py on a private PostgreSQL under /tmp) it starts
``omipacs serve`` with ``[auth] mode = "token"``, signs in to ``/ui/`` as an admin (the
whole archive) and as a researcher whose licence holds the malignant cases, and times
through the real server:

* ``GET /ui/``: the overview page (the brochure's tables, drawn with the page);
* each chart the page then fetches (``/ui/charts/<name>``): the first request of a run
  (computed) and the next ones (kept for ``CACHE_SECONDS`` per licence);
* the baseline, measured in the same run: ``GET /api/v1/stats`` (the JSON API's
  brochure tables) with the same token.

Target: the overview page under 1 s at full size (scale 1.0), and within 1.5× of the
JSON API's tables (the page is the same query plus a template).

Usage: python tests/benchmarks/bench_ui.py [--scales 0.1 1.0] [--repeat 15]
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import requests
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from omipacs.access import admin  # noqa: E402
from omipacs.cohorts import CohortFilters, save_cohort  # noqa: E402
from omipacs.index import db  # noqa: E402
from tests.benchmarks.bigindex import Size, fill  # noqa: E402
from tests.benchmarks.common import free_port, start_omipacs, stop, write_config  # noqa: E402
from tests.pg import PostgresServer, create_database  # noqa: E402

CHARTS = ("age", "year", "manufacturer", "density", "lesion-types", "grades")
_CSRF = re.compile(r'<meta name="csrf-token" content="([0-9a-f]{64})">')


def _ms(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000


def _timed(fn: Callable[[], requests.Response]) -> float:
    t0 = time.perf_counter()
    r = fn()
    elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"{r.url}: HTTP {r.status_code} {r.text[:200]}")
    return elapsed


def _repeat(fn: Callable[[], requests.Response], n: int) -> tuple[float, float]:
    _timed(fn)  # warm the connection pool and the plan cache
    return _ms([_timed(fn) for _ in range(n)])


def _users(url: str) -> tuple[str, str]:
    """An admin token and a token of a researcher licensed for the malignant cases."""
    engine = db.make_engine(url)
    try:
        with sessionmaker(engine).begin() as s:
            cohort = save_cohort(s, "malignant", CohortFilters(outcomes=("M",)))
            admin.add_user(s, "admin@bench.example", "admin")
            admin.add_user(s, "researcher@bench.example", "researcher")
            licence = admin.create_licence(
                s, title="bench", cohort_id=cohort.id, scopes="2d,3d,marks,clinical,density",
                ends=date.today() + timedelta(days=30), members=["researcher@bench.example"])
            admin_token, _ = admin.create_token(s, "admin@bench.example")
            researcher_token, _ = admin.create_token(s, "researcher@bench.example",
                                                     licence_id=licence.id)
            print(f"  licence: cohort of {cohort.client_count:,} malignant clients", flush=True)
    finally:
        engine.dispose()
    return admin_token, researcher_token


def _sign_in(base: str, token: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(f"{base}/ui/login", timeout=60)
    found = _CSRF.search(form.text)
    assert found, "no CSRF token on the login page"
    r = browser.post(f"{base}/ui/login", data={"token": token, "csrf_token": found.group(1)},
                     allow_redirects=False, timeout=60)
    assert r.status_code == 303, r.text
    return browser


def measure(base: str, who: str, token: str, repeat: int) -> dict[str, tuple[float, float]]:
    browser = _sign_in(base, token)
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    out: dict[str, tuple[float, float]] = {}
    out["api stats (baseline)"] = _repeat(
        lambda: api.get(f"{base}/api/v1/stats", timeout=120), repeat)
    out["overview page"] = _repeat(lambda: browser.get(f"{base}/ui/", timeout=120), repeat)
    for name in CHARTS:
        url = f"{base}/ui/charts/{name}"
        first = _timed(lambda url=url: browser.get(url, timeout=300))  # type: ignore[misc]
        out[f"chart {name}: first"] = (first * 1000, first * 1000)
        out[f"chart {name}: kept"] = _repeat(
            lambda url=url: browser.get(url, timeout=120), repeat)  # type: ignore[misc]
    print(f"  {who}:", flush=True)
    for label, (p50, p95) in out.items():
        print(f"    {label:<28} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms", flush=True)
    page, baseline = out["overview page"][0], out["api stats (baseline)"][0]
    print(f"    overview / api stats: {page / baseline:.2f}x", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[0.1, 1.0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    # A stopped run still stops its PostgreSQL and deletes its data under /tmp.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    work = Path(tempfile.mkdtemp(prefix="omipacs-bench-ui-"))
    pg = PostgresServer("-c shared_buffers=1GB -c work_mem=32MB -c max_wal_size=4GB")
    verdicts = []
    try:
        for scale in args.scales:
            url = create_database(pg.admin_url)
            print(f"filling {Size.at(scale)} (scale {scale})", flush=True)
            t0 = time.perf_counter()
            fill(url, scale)
            print(f"  filled in {time.perf_counter() - t0:.0f} s", flush=True)
            admin_token, researcher_token = _users(url)
            wd = work / f"s{scale}"
            wd.mkdir()
            key = wd / "deid.key"
            key.write_text(secrets.token_hex(32))
            http = free_port()
            cfg = write_config(wd, free_port(), http, deid_key=key, database_url=url)
            cfg.write_text(cfg.read_text() + '[auth]\nmode = "token"\n')
            proc = start_omipacs(cfg, "--http-workers", "2")
            try:
                base = f"http://127.0.0.1:{http}"
                for who, token in (("admin", admin_token), ("researcher", researcher_token)):
                    found = measure(base, who, token, args.repeat)
                    p50, p95 = found["overview page"]
                    ratio = p50 / found["api stats (baseline)"][0]
                    verdicts.append((scale, who, p95, ratio))
            finally:
                stop(proc)
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\noverview page, p95 (target < 1000 ms at scale 1.0; ratio to /api/v1/stats p50):")
    for scale, who, p95, ratio in verdicts:
        mark = "ok" if p95 < 1000 else "SLOW"
        print(f"  scale {scale:<5} {who:<11} p95 {p95:7.1f} ms  {ratio:.2f}x  {mark}")


if __name__ == "__main__":
    main()
