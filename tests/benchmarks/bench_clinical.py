"""Clinical statistics and cohort queries at OMI-DB scale, on PostgreSQL.

Builds an index of synthetic clients directly with ``COPY`` (no files, no pipeline):
per client 1-4 screening rounds three years apart (2.75 on average, so 470k clients
give about 1.3 million studies with the DBT assessments), each screening study with a
processed and an unprocessed image, a DBT study for about 2 % of clients (more often
for benign and malignant ones, as in the brochure's 3D table), outcomes in the
brochure's proportions, episodes, screening events, study links, and lesions with
pathology for the benign and malignant clients. The tally is then counted by
:func:`omipacs.clinical.tally.rebuild_tally`, and the last 500 instances are left
beyond the watermark, as a running archive has them between two syncs.

Times (median of ``--repeat`` runs, after one warm-up):

* ``stats``: the three brochure tables (:func:`omipacs.clinical.stats.stats`);
* ``cohort page``: the first 100 members of "malignant, grade 3, with Hologic DBT"
  (:func:`omipacs.cohorts.cohort_query` with ``count=False``);
* ``cohort page+count``: the same with exact member and study totals (these count every
  member, so they grow with the answer: 53 members at 47k clients, 454 at 470k);
* ``moderate page``: the first 100 of "malignant with DBT" (0.8 % of clients);
* ``broad page``: the first 100 of "normal, 2D, aged 50-60" (a third of the archive).

The database is given ``random_page_cost = 1.1``, the usual setting for a server on
SSD (PostgreSQL's default of 4 models spinning disks and makes the planner prefer
scanning whole tables over following indexes), and 4 GB of shared buffers (the default
128 MB holds about a tenth of the 470k-client index).

Usage: python tests/benchmarks/bench_clinical.py [--sizes 4700 47000] [--full]
``--full`` runs 47k and 470k clients (about 1.3 million studies; several minutes).
``--shapes`` also times the first page of more query shapes both as cohort_query walks it
and as one ``ORDER BY ... LIMIT`` query (what the planner does alone).
Target (issue): at most 3x the time for 10x the clients.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import Engine, Table, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from omipacs.clinical.codes import CaseOutcome  # noqa: E402
from omipacs.clinical.models import (  # noqa: E402
    Client,
    ClinicalState,
    Episode,
    Event,
    Lesion,
    LesionFinding,
    StudyLink,
)
from omipacs.clinical.stats import stats  # noqa: E402
from omipacs.clinical.tally import WATERMARK_KEY, rebuild_tally  # noqa: E402
from omipacs.cohorts import CohortFilters, PathologyFilter, cohort_query  # noqa: E402
from omipacs.demo.clinical import SEED_2D_CASES, allocate  # noqa: E402
from omipacs.demo.vendors import VENDORS  # noqa: E402
from omipacs.dicom.uids import (  # noqa: E402
    BREAST_TOMOSYNTHESIS,
    MG_FOR_PRESENTATION,
    MG_FOR_PROCESSING,
)
from omipacs.index import db  # noqa: E402
from omipacs.index.models import Instance, Patient, Series, Study  # noqa: E402
from tests.pg import PostgresServer, create_database  # noqa: E402

OUTCOMES = [CaseOutcome.NORMAL, CaseOutcome.BENIGN, CaseOutcome.MALIGNANT,
            CaseOutcome.INTERVAL_CANCER, CaseOutcome.UNKNOWN]
THREE_D = {CaseOutcome.NORMAL: 4_796, CaseOutcome.BENIGN: 1_457, CaseOutcome.MALIGNANT: 3_912,
           CaseOutcome.INTERVAL_CANCER: 49, CaseOutcome.UNKNOWN: 0}
MARKED = {CaseOutcome.BENIGN: 1_432, CaseOutcome.MALIGNANT: 7_160,
          CaseOutcome.INTERVAL_CANCER: 83}
MANUFACTURERS = [VENDORS[v].manufacturer for v in ("HOLOGIC", "GE", "SIEMENS")]
ROUND_P = [0.15, 0.25, 0.30, 0.30]
PENDING = 500
TYPICAL = CohortFilters(outcomes=("M",), dimensions=("3D",), manufacturers=("HOLOGIC",),
                        pathology=PathologyFilter(grades=("G3",)))
MODERATE = CohortFilters(outcomes=("M",), dimensions=("3D",))
BROAD = CohortFilters(outcomes=("N",), dimensions=("2D",), age_min=50, age_max=60)


class Plan:
    """Everything about the synthetic clients, as arrays (client i is pk i + 1)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        counts = allocate(n, SEED_2D_CASES)
        labels = np.concatenate([np.full(counts[o], k) for k, o in enumerate(OUTCOMES)])
        self.outcome = rng.permutation(labels)
        p3d = np.array([THREE_D[o] / SEED_2D_CASES[o] for o in OUTCOMES])
        p_marked = np.array([MARKED.get(o, 0) / SEED_2D_CASES[o] for o in OUTCOMES])
        self.has_3d = rng.random(n) < p3d[self.outcome]
        self.marked = rng.random(n) < p_marked[self.outcome]
        self.rounds = rng.choice(4, size=n, p=ROUND_P) + 1
        self.first = rng.integers(0, 5 * 365, size=n)
        self.age0 = rng.integers(50, 62, size=n)
        self.grade = rng.integers(1, 4, size=n)
        self.n = n
        self.studies = self.rounds + self.has_3d
        self.study_start = np.concatenate([[0], np.cumsum(self.studies)[:-1]])
        self.images = 2 * self.rounds + self.has_3d
        self.image_start = np.concatenate([[0], np.cumsum(self.images)[:-1]])
        self.episode_start = np.concatenate([[0], np.cumsum(self.rounds)[:-1]])

    def label(self, i: int) -> CaseOutcome:
        return OUTCOMES[int(self.outcome[i])]


BASE = date(2010, 1, 4)


def _day(plan: Plan, i: int, r: int) -> date:
    return BASE + timedelta(days=int(plan.first[i]) + 1092 * r)


def copy_rows(engine: Engine, table: Table, columns: list[str],
              rows: Iterator[tuple[Any, ...]]) -> int:
    """COPY ``rows`` into ``table``; NOT NULL columns not given get their Python default."""
    given = set(columns)
    extra = [c for c in table.columns if c.name not in given and not c.nullable
             and c.server_default is None and c.default is not None and c.default.is_scalar]
    names = columns + [c.name for c in extra]
    tail = tuple(c.default.arg for c in extra)  # type: ignore[union-attr]
    count = 0
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:  # type: ignore[attr-defined]
            sql = f'COPY "{table.name}" ({", ".join(names)}) FROM STDIN'
            with cur.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row + tail)
                    count += 1
        raw.commit()
    finally:
        raw.close()
    return count


def load(engine: Engine, plan: Plan) -> dict[str, int]:
    """Write every table; returns row counts."""
    n = plan.n
    cid = [f"OPTM{i:012d}" for i in range(n)]

    def patients() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            yield (i + 1, cid[i], "F")

    def studies() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            pk = int(plan.study_start[i]) + 1
            for r in range(int(plan.rounds[i])):
                yield (pk, f"2.25.{pk}", i + 1, _day(plan, i, r),
                       f"{int(plan.age0[i]) + 3 * r:03d}Y")
                pk += 1
            if plan.has_3d[i]:
                last = int(plan.rounds[i]) - 1
                yield (pk, f"2.25.{pk}", i + 1, _day(plan, i, last) + timedelta(days=21),
                       f"{int(plan.age0[i]) + 3 * last:03d}Y")

    def images() -> Iterator[tuple[int, int, str, str, str, str]]:
        """(image pk, study pk, class, intent, laterality, view)."""
        for i in range(n):
            pk = int(plan.image_start[i]) + 1
            study = int(plan.study_start[i]) + 1
            for r in range(int(plan.rounds[i])):
                side = "L" if (i + r) % 2 else "R"
                yield (pk, study, MG_FOR_PRESENTATION, "FOR PRESENTATION", side, "CC")
                yield (pk + 1, study, MG_FOR_PROCESSING, "FOR PROCESSING", side, "MLO")
                pk += 2
                study += 1
            if plan.has_3d[i]:
                yield (pk, study, BREAST_TOMOSYNTHESIS, "FOR PRESENTATION", "L", "")

    def series() -> Iterator[tuple[Any, ...]]:
        for pk, study, _, intent, _, _ in images():
            yield (pk, f"2.25.{pk}.1", study, "MG", intent)

    def instances() -> Iterator[tuple[Any, ...]]:
        for pk, _, cls, intent, side, view in images():
            manufacturer = MANUFACTURERS[(pk // 7) % 3]
            key = f"{pk:064d}"
            yield (pk, f"2.25.{pk}.2", pk, cls, "1.2.840.10008.1.2.1", side, view, intent,
                   manufacturer, key, 0, key, key)

    def clients() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            outcome = plan.label(i).value
            status = "N" if outcome == "U" else outcome
            yield (i + 1, cid[i], i + 1, True, True, status, outcome, bool(plan.marked[i]),
                   True, bool(plan.has_3d[i]), "A", int(i % 10) + 1)

    def episode_outcome(i: int, r: int) -> str:
        last = r == int(plan.rounds[i]) - 1
        label = plan.label(i)
        if last:
            return {"N": "N", "B": "B", "M": "M", "CI": "CIP", "U": ""}[label.value]
        if r == int(plan.rounds[i]) - 2 and label is CaseOutcome.MALIGNANT:
            return "MP"
        return "N"

    def episodes() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            for r in range(int(plan.rounds[i])):
                pk = int(plan.episode_start[i]) + r + 1
                day = _day(plan, i, r)
                yield (pk, i + 1, str(r + 1), "R", day, day, "N", episode_outcome(i, r) or None)

    def events() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            for r in range(int(plan.rounds[i])):
                pk = int(plan.episode_start[i]) + r + 1
                day = _day(plan, i, r)
                yield (pk, pk, "screening", day, json.dumps([day.isoformat()]), "ON", "ON")

    def links() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            study = int(plan.study_start[i]) + 1
            for r in range(int(plan.rounds[i])):
                yield (study + r, i + 1, int(plan.episode_start[i]) + r + 1, "episode_id")
            if plan.has_3d[i]:
                yield (study + int(plan.rounds[i]), i + 1,
                       int(plan.episode_start[i]) + int(plan.rounds[i]), "episode_id")

    diseased = [i for i in range(n) if plan.label(i) in (CaseOutcome.MALIGNANT,
                                                         CaseOutcome.BENIGN)]

    def lesions() -> Iterator[tuple[Any, ...]]:
        for k, i in enumerate(diseased):
            episode = int(plan.episode_start[i]) + int(plan.rounds[i])
            yield (k + 1, episode, "L", "1", "MA")

    def findings() -> Iterator[tuple[Any, ...]]:
        for k, i in enumerate(diseased):
            episode = int(plan.episode_start[i]) + int(plan.rounds[i])
            malignant = plan.label(i) is CaseOutcome.MALIGNANT
            yield (k + 1, k + 1, episode, "B5" if malignant else "B2",
                   f"G{int(plan.grade[i])}" if malignant else None,
                   "RP" if malignant and k % 5 == 0 else "RN")

    loads: list[tuple[Table, list[str], Callable[[], Iterator[tuple[Any, ...]]]]] = [
        (Patient.__table__, ["pk", "patient_id", "sex"], patients),  # type: ignore[list-item]
        (Study.__table__, ["pk", "study_instance_uid", "patient_pk", "study_date",  # type: ignore[list-item]
                           "patient_age"], studies),
        (Series.__table__, ["pk", "series_instance_uid", "study_pk", "modality",  # type: ignore[list-item]
                            "presentation_intent_type"], series),
        (Instance.__table__, ["pk", "sop_instance_uid", "series_pk", "sop_class_uid",  # type: ignore[list-item]
                              "transfer_syntax_uid", "laterality", "view_position",
                              "presentation_intent_type", "manufacturer", "blob_key",
                              "size_bytes", "sha256", "dataset_offset"], instances),
        (Client.__table__, ["pk", "client_id", "patient_pk", "linked", "has_clinical",  # type: ignore[list-item]
                            "status", "outcome", "is_marked", "has_2d", "has_3d", "ethnicity",
                            "imd_decile"], clients),
        (Episode.__table__, ["pk", "client_pk", "nbss_episode_id", "type", "opened_date",  # type: ignore[list-item]
                             "earliest_date", "status", "outcome"], episodes),
        (Event.__table__, ["pk", "episode_pk", "kind", "date_performed", "dates",  # type: ignore[list-item]
                           "left_opinion", "right_opinion"], events),
        (StudyLink.__table__, ["study_pk", "client_pk", "episode_pk", "method"], links),  # type: ignore[list-item]
        (Lesion.__table__, ["pk", "episode_pk", "side", "nbss_lesion_no", "description"],  # type: ignore[list-item]
         lesions),
        (LesionFinding.__table__, ["pk", "lesion_pk", "event_pk", "opinion",  # type: ignore[list-item]
                                   "disease_grade", "her2_status"], findings),
    ]
    rows = {}
    for table, columns, make in loads:
        rows[table.name] = copy_rows(engine, table, columns, make())
    with engine.begin() as conn:
        for table, _, _ in loads:
            if "pk" in table.c:
                conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'pk'), "
                    f"(SELECT max(pk) FROM \"{table.name}\"))"))
    with Session(engine) as s:
        rebuild_tally(s)
        s.merge(ClinicalState(key=WATERMARK_KEY, value=rows["instance"] - PENDING))
        s.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return rows


def timed(run: Callable[[], object], repeat: int) -> float:
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(engine: Engine, repeat: int) -> dict[str, float]:
    with Session(engine) as s:
        typical = cohort_query(s, TYPICAL, limit=100)
        assert typical.client_count > 0, "the typical cohort must not be empty"
        return {
            "stats": timed(lambda: stats(s), repeat),
            "cohort page": timed(lambda: cohort_query(s, TYPICAL, count=False), repeat),
            "cohort page+count": timed(lambda: cohort_query(s, TYPICAL), repeat),
            "moderate page": timed(lambda: cohort_query(s, MODERATE, count=False), repeat),
            "broad page": timed(lambda: cohort_query(s, BROAD, count=False), repeat),
            "typical members": float(typical.client_count),
        }


SHAPES = {
    "typical": TYPICAL,
    "grade 3 alone": CohortFilters(pathology=PathologyFilter(grades=("G3",))),
    "HER2+ alone": CohortFilters(pathology=PathologyFilter(her2_positive=True)),
    "GE images": CohortFilters(manufacturers=("GE",)),
    "Hologic DBT": CohortFilters(dimensions=("3D",), manufacturers=("HOLOGIC",)),
    "CIP priors": CohortFilters(episode_outcomes=("CIP",)),
    "moderate": MODERATE,
    "broad": BROAD,
}


def shapes(engine: Engine, repeat: int) -> None:
    """The first page of several query shapes, two ways: the walk that cohort_query uses,
    and the same page asked of PostgreSQL in one ORDER BY ... LIMIT query."""
    from omipacs.clinical.models import Client as C
    from omipacs.cohorts.query import _page
    from omipacs.cohorts.sql import client_select

    with Session(engine) as s:
        for name, filters in SHAPES.items():
            stmt = client_select(filters).add_columns(C.outcome).order_by(C.client_id).limit(100)
            one = timed(lambda st=stmt: s.execute(st).all(), repeat)  # type: ignore[misc]
            walk = timed(lambda f=filters: _page(s, f, 100, 0, None), repeat)  # type: ignore[misc]
            print(f"    {name:<14} walk {walk:7.1f} ms   one query {one:7.1f} ms")


def explain(engine: Engine) -> str:
    from omipacs.clinical.models import Client as C
    from omipacs.cohorts.sql import client_select

    stmt = client_select(TYPICAL).order_by(C.client_id).limit(100)
    compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        lines = conn.execute(text(f"EXPLAIN ANALYZE {compiled}")).scalars().all()
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4_700, 47_000])
    parser.add_argument("--full", action="store_true", help="47k and 470k clients")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--explain", action="store_true", help="print the cohort page plan")
    parser.add_argument("--shapes", action="store_true",
                        help="first pages of more query shapes: walk vs one query")
    args = parser.parse_args()
    sizes = [47_000, 470_000] if args.full else args.sizes
    # Memory as a database server would be given it (the default 128 MB of shared
    # buffers holds a tenth of the 470k-client index).
    server = PostgresServer("-c shared_buffers=4GB -c effective_cache_size=12GB")
    results: dict[int, dict[str, float]] = {}
    try:
        for n in sizes:
            url = create_database(server.admin_url)
            name = url.rsplit("/", 1)[1]
            with db.make_engine(server.admin_url).connect().execution_options(
                isolation_level="AUTOCOMMIT"
            ) as conn:
                # the cost model of a server on SSD (PostgreSQL's default assumes disks)
                conn.execute(text(f'ALTER DATABASE "{name}" SET random_page_cost = 1.1'))
            engine = db.make_engine(url)
            db.upgrade(engine)
            start = time.perf_counter()
            rows = load(engine, Plan(n))
            loaded = time.perf_counter() - start
            results[n] = measure(engine, args.repeat)
            print(f"{n:>8,} clients: {rows['study']:,} studies, {rows['instance']:,} instances,"
                  f" {rows['episode']:,} episodes; loaded in {loaded:.0f} s")
            for name, value in results[n].items():
                unit = "" if name == "typical members" else " ms"
                print(f"    {name:<18} {value:10.1f}{unit}")
            if args.shapes:
                shapes(engine, args.repeat)
            if args.explain:
                print(explain(engine))
            engine.dispose()
    finally:
        server.stop()
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        print(f"growth {small:,} -> {large:,} clients ({large / small:.0f}x data):")
        for name in results[small]:
            if name != "typical members":
                print(f"    {name:<18} {results[large][name] / results[small][name]:6.2f}x")


if __name__ == "__main__":
    main()
