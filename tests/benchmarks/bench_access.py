"""What access control and the audit trail cost: WADO-RS and QIDO-RS with them on vs off.

One archive (the same storage root and index, the same data) is served by four
``omipacs serve`` processes side by side, which differ only in their settings:

========  ==================================================================================
off       the baseline: ``[auth] mode = "none"`` and ``[audit] enabled = false``, so no
          token, no access check beyond the local user's and no audit trail, on /dicom-web
audit     ``mode = "none"`` with the audit trail on (the local single-user install as
          shipped): what auditing alone costs
admin     ``mode = "token"``, audit on: an admin's bearer token on /dicom-web (token
          resolution, the access check, the audit record)
licence   ``mode = "token"``, audit on: a researcher's token (bound to the licence) on
          ``/licences/{id}/dicom-web``: the licence's members within its scopes, so every
          query and retrieval also carries the licence's cohort and scope conditions
========  ==================================================================================

The licence's cohort holds every study and grants every scope, so all four serve the same
answers; the script checks that before timing anything. The audit trail writes its
JSON-lines file and the ``audit_event`` table as in production (one append per request,
batched inserts by a background thread); tokens are resolved again whenever the
``[auth] cache_seconds`` cache (2 s by default) expires, as in production.

Requests: QIDO-RS study search (OHIF's study-list query, with includefield) over
``--studies`` synthesised studies plus the real one, QIDO-RS instance search in a study,
WADO-RS of one FFDM instance (4096 x 3328, as bench_dicomweb.py), series metadata of the
DBT, and one DBT frame. Each request kind runs in ``--rounds`` rounds; a round times a
batch of requests against each server in turn, on one keep-alive connection, the order
alternating between rounds so that drift on a shared machine falls on every setting
alike. For each setting the best round is reported (median, p95, throughput, and the
server's CPU time per request, read from /proc for the server and its workers: the
figure least disturbed by other work on the machine), with the ratio of each setting's
throughput and CPU cost to the baseline's (target >= 0.95x: the issue's "auditing must
cost at most 5 %"). "paired" is the median, over rounds, of the throughput ratio of two
batches run back to back: on a busy machine the steadier of the two ratios.

Usage: python tests/benchmarks/bench_access.py [--ffdm 4] [--dbt-frames 16]
       [--studies 10000] [--rounds 7] [--database-url URL]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import func, insert, select  # noqa: E402

from omipacs.access import admin  # noqa: E402
from omipacs.clinical.models import ClinicalState  # noqa: E402
from omipacs.clinical.tally import WATERMARK_KEY  # noqa: E402
from omipacs.cohorts.models import Cohort, CohortMember  # noqa: E402
from omipacs.config import AuditSettings, DatabaseSettings, Settings, StorageSettings  # noqa: E402
from omipacs.demo import factory  # noqa: E402
from omipacs.dicom import uids  # noqa: E402
from omipacs.index.models import Instance, Patient, Series, Study  # noqa: E402
from omipacs.services import Services  # noqa: E402
from tests.benchmarks.bench_dicomweb import OHIF_STUDY_LIST  # noqa: E402
from tests.benchmarks.common import free_port, start_omipacs, stop, write_config  # noqa: E402

ALL_SCOPES = "2d,for-processing,3d,marks,clinical,density"
AS_STORED = "application/dicom; transfer-syntax=*"
FRAME = "multipart/related; type=application/octet-stream; transfer-syntax=*"


@dataclass
class Setting:
    """One server: how it is configured and how a client reaches it."""

    name: str
    mode: str
    audit: bool
    root: str = "/dicom-web"
    token: str = ""
    port: int = 0
    proc: subprocess.Popen[str] | None = None

    def headers(self, accept: str) -> dict[str, str]:
        out = {"Accept": accept}
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return out


@dataclass
class Workload:
    """One kind of request, timed in batches of ``count``."""

    label: str
    path: str
    """Below the DICOMweb root."""
    accept: str
    count: int


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its descendants (gunicorn's workers), from /proc: what
    the server spent, whatever else the machine was doing. Each thread's run time in
    nanoseconds (``schedstat``) where the kernel keeps it, else user + system time in
    clock ticks (10 ms: too coarse for a batch of short requests)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
            if Path(f"/proc/{p}/schedstat").exists():
                for t in tasks:
                    try:
                        total += int((t / "schedstat").read_text().split()[0]) / 1e9
                    except (FileNotFoundError, ProcessLookupError):
                        continue  # a thread that ended meanwhile
            else:
                stat = Path(f"/proc/{p}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            for task in tasks:
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


@dataclass
class Round:
    latencies: list[float]
    seconds: float
    nbytes: int
    cpu: float
    """Server CPU seconds over the batch."""

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.latencies, n=20)[-1]

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds


@dataclass
class Results:
    rounds: dict[str, list[Round]] = field(default_factory=dict)

    def best(self, name: str) -> tuple[float, float, float, float, float]:
        """(median, p95, requests/s, MB/s, server CPU seconds a request), each the best
        of the setting's rounds."""
        rs = self.rounds[name]
        return (
            min(r.median for r in rs),
            min(r.p95 for r in rs),
            max(r.per_second for r in rs),
            max(r.nbytes / 1e6 / r.seconds for r in rs),
            min(r.cpu / len(r.latencies) for r in rs),
        )

    def paired(self, name: str, baseline: str) -> float:
        """The median over rounds of the throughput ratio to ``baseline`` in the same
        round: each pair ran back to back, so a slow spell of the machine falls on both."""
        return statistics.median(
            r.per_second / b.per_second
            for r, b in zip(self.rounds[name], self.rounds[baseline], strict=True)
        )


def fetch(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> int:
    """GET ``path`` and read the body into a reused buffer; returns the bytes read."""
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status} {resp.read(500)!r}")
    buf = memoryview(bytearray(1 << 20))
    got = 0
    while n := resp.readinto(buf):
        got += n
    return got


def batch(setting: Setting, work: Workload) -> Round:
    """``work.count`` requests on one keep-alive connection (after one untimed request)."""
    conn = http.client.HTTPConnection("127.0.0.1", setting.port, timeout=120)
    path = setting.root + work.path
    headers = setting.headers(work.accept)
    assert setting.proc is not None
    try:
        fetch(conn, path, headers)
        latencies = []
        nbytes = 0
        cpu = tree_cpu_seconds(setting.proc.pid)
        start = time.perf_counter()
        for _ in range(work.count):
            t = time.perf_counter()
            nbytes += fetch(conn, path, headers)
            latencies.append(time.perf_counter() - t)
        seconds = time.perf_counter() - start
        return Round(latencies, seconds, nbytes, tree_cpu_seconds(setting.proc.pid) - cpu)
    finally:
        conn.close()


def measure(settings: list[Setting], work: Workload, rounds: int) -> Results:
    """``rounds`` rounds over every setting, the order reversed every other round."""
    out = Results({s.name: [] for s in settings})
    for r in range(rounds):
        for s in settings if r % 2 == 0 else settings[::-1]:
            out.rounds[s.name].append(batch(s, work))
    return out


def synthesise(services: Services, studies: int) -> None:
    """Index rows for ``studies`` studies of 1 series and 1 MG instance each (no bytes)."""
    rng = secrets.SystemRandom()
    with services.engine.begin() as conn:
        for base in range(0, studies, 5000):
            n = min(5000, studies - base)
            ids = range(base, base + n)
            conn.execute(insert(Patient), [
                {"patient_id": f"OPTMSYN{i:09d}", "patient_name": f"OPTMSYN{i}",
                 "patient_name_search": f"OPTMSYN{i}", "issuer": "", "sex": "F"} for i in ids])
            patients = dict(conn.execute(select(Patient.patient_id, Patient.pk).where(
                Patient.patient_id.like("OPTMSYN%"))).all())
            conn.execute(insert(Study), [
                {"study_instance_uid": f"2.25.9{i}", "patient_pk": patients[f"OPTMSYN{i:09d}"],
                 "study_date": date(2010, 1, 1) + timedelta(days=rng.randrange(5000)),
                 "study_time": "101010", "accession_number": f"A{i}", "study_id": "1",
                 "study_description": "Screening Mammography", "referring_physician_name": "",
                 "patient_age": "055Y"} for i in ids])
            study_pks = dict(conn.execute(select(Study.study_instance_uid, Study.pk).where(
                Study.study_instance_uid.like("2.25.9%"))).all())
            conn.execute(insert(Series), [
                {"series_instance_uid": f"2.25.8{i}", "study_pk": study_pks[f"2.25.9{i}"],
                 "modality": "MG", "series_number": 1, "series_description": "L CC",
                 "body_part_examined": "BREAST", "presentation_intent_type": "FOR PRESENTATION"}
                for i in ids])
            series_pks = dict(conn.execute(select(Series.series_instance_uid, Series.pk).where(
                Series.series_instance_uid.like("2.25.8%"))).all())
            conn.execute(insert(Instance), [
                {"sop_instance_uid": f"2.25.7{i}", "series_pk": series_pks[f"2.25.8{i}"],
                 "sop_class_uid": uids.MG_FOR_PRESENTATION, "instance_number": 1,
                 "transfer_syntax_uid": "1.2.840.10008.1.2.1", "rows": 4096, "columns": 3328,
                 "laterality": "L", "view_position": "CC",
                 "presentation_intent_type": "FOR PRESENTATION", "blob_key": f"syn{i}",
                 "size_bytes": 27_000_000, "sha256": "0" * 64} for i in ids])


def quiet_clinical_sync(services: Services) -> None:
    """Record the clinical sync's watermark past the synthesised instances.

    Every ``omipacs serve`` folds new instances into the clinical layer a minute after it
    starts; left to do it here, one of the four servers would spend minutes of CPU on the
    synthesised studies while the others are timed, inflating its CPU per request and
    slowing every server on the machine. Nothing timed here reads the clinical layer.
    """
    with services.write_sessions.begin() as s:
        top = s.scalar(select(func.max(Instance.pk))) or 0
        state = s.get(ClinicalState, WATERMARK_KEY)
        if state is None:
            s.add(ClinicalState(key=WATERMARK_KEY, value=top))
        else:
            state.value = top


def grant_everything(services: Services) -> tuple[int, dict[str, str]]:
    """A cohort of every study, a licence on it with every scope, an admin and a
    researcher with a token each; returns (licence ID, tokens)."""
    with services.write_sessions.begin() as s:
        members = s.execute(select(Patient.patient_id, Study.study_instance_uid).join(
            Study, Study.patient_pk == Patient.pk)).all()
        cohort = Cohort(name="bench-all", version=1, definition={}, definition_sha256="0" * 64,
                        members_sha256="0" * 64, client_count=len({m[0] for m in members}),
                        study_count=len(members))
        s.add(cohort)
        s.flush()
        s.execute(insert(CohortMember), [
            {"cohort_pk": cohort.pk, "client_id": client, "study_instance_uid": study}
            for client, study in members])
        admin.add_user(s, "admin@bench.example", "admin")
        admin.add_user(s, "researcher@bench.example", "researcher")
        licence = admin.create_licence(
            s, title="bench", purpose="benchmark", cohort_id=cohort.pk, scopes=ALL_SCOPES,
            ends=date.today() + timedelta(days=365), members=["researcher@bench.example"])
        tokens = {
            "admin": admin.create_token(s, "admin@bench.example")[0],
            "licence": admin.create_token(s, "researcher@bench.example",
                                          licence_id=licence.id)[0],
        }
    return licence.id, tokens


def write_setting(work: Path, setting: Setting, key: Path, database_url: str) -> Path:
    """A config file for ``setting`` over the shared storage root."""
    setting.port = free_port()
    base = write_config(work, free_port(), setting.port, deid_key=key,
                        database_url=database_url)
    cfg = work / f"{setting.name}.toml"
    cfg.write_text(base.read_text() + f'[auth]\nmode = "{setting.mode}"\n'
                   f"[audit]\nenabled = {str(setting.audit).lower()}\n")
    return cfg


def same_answers(settings: list[Setting], paths: list[tuple[str, str]]) -> None:
    """Every setting answers each request with the same bytes (or the same JSON)."""
    for path, accept in paths:
        answers = []
        for s in settings:
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
            conn.request("GET", s.root + path, headers=s.headers(accept))
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status != 200:
                raise RuntimeError(f"{s.name}: GET {path}: {resp.status} {body[:300]!r}")
            boundary = resp.getheader("Content-Type", "").partition("boundary=")[2]
            if boundary:  # random in each multipart response
                body = body.replace(boundary.strip('"').encode(), b"BOUNDARY")
            # Absolute URLs (RetrieveURL, BulkDataURI, a part's Content-Location) name
            # each setting's own root.
            body = body.replace(f"127.0.0.1:{s.port}{s.root}".encode(), b"ROOT")
            answers.append(body)
        if len(set(answers)) != 1:
            raise RuntimeError(f"the settings answer {path} differently: not the same data")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ffdm", type=int, default=4)
    ap.add_argument("--dbt-frames", type=int, default=16)
    ap.add_argument("--studies", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--database-url", default="")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="omipacs-bench-access-"))
    settings = [Setting("off", "none", False), Setting("audit", "none", True),
                Setting("admin", "token", True), Setting("licence", "token", True)]
    try:
        study = pydicom.uid.generate_uid()
        patient = factory.fake_patient(factory.as_rng(1))
        files = []
        for i in range(args.ffdm):
            p = work / f"ffdm{i}.dcm"
            factory.save(factory.make_mammo(rows=4096, columns=3328, rng=i, study_uid=study,
                                            patient=patient), p)
            files.append(p)
        dbt = work / "dbt.dcm"
        dbt_ds = factory.make_dbt(frames=args.dbt_frames, rows=2457, columns=1890, rng=99,
                                  study_uid=study, patient=patient)
        factory.save(dbt_ds, dbt)
        mammo = pydicom.dcmread(files[0], stop_before_pixels=True)
        key = work / "deid.key"
        key.write_text(secrets.token_hex(32) + "\n")
        cfgs = {s.name: write_setting(work, s, key, args.database_url) for s in settings}
        subprocess.run([sys.executable, "-m", "omipacs", "--config", str(cfgs["off"]), "import",
                        "--no-deidentify", *map(str, files), str(dbt)], check=True,
                       capture_output=True)
        services = Services.create(Settings(
            storage=StorageSettings(root=work / "storage"),
            database=DatabaseSettings(url=args.database_url),
            audit=AuditSettings(enabled=False)))
        try:
            synthesise(services, args.studies)
            quiet_clinical_sync(services)
            licence, tokens = grant_everything(services)
            with services.sessions() as s:
                n_studies = s.scalar(select(func.count()).select_from(Study))
        finally:
            services.close()
        for s in settings:
            if s.name == "licence":
                s.root = f"/licences/{licence}/dicom-web"
            s.token = tokens.get(s.name, "")
            s.proc = start_omipacs(cfgs[s.name])

        ffdm_path = (f"/studies/{study}/series/{mammo.SeriesInstanceUID}/instances/"
                     f"{mammo.SOPInstanceUID}")
        dbt_series = f"/studies/{study}/series/{dbt_ds.SeriesInstanceUID}"
        dbt_path = f"{dbt_series}/instances/{dbt_ds.SOPInstanceUID}"
        dicom_json = "application/dicom+json"
        workloads = [
            Workload(f"QIDO-RS study search, OHIF's study list ({n_studies} studies)",
                     f"/studies?{urlencode(OHIF_STUDY_LIST)}", dicom_json, 20),
            Workload(f"QIDO-RS instance search in a study ({args.ffdm + 1} instances)",
                     f"/studies/{study}/instances?includefield=00200013,00280010,00280011",
                     dicom_json, 150),
            Workload(f"WADO-RS one FFDM instance ({files[0].stat().st_size / 1e6:.0f} MB)",
                     ffdm_path, AS_STORED, 30),
            Workload(f"WADO-RS series metadata (DBT, {args.dbt_frames} frames)",
                     f"{dbt_series}/metadata", dicom_json, 150),
            Workload(f"WADO-RS one DBT frame ({2457 * 1890 * 2 / 1e6:.1f} MB)",
                     f"{dbt_path}/frames/{args.dbt_frames // 2}", FRAME, 60),
        ]
        same_answers(settings, [(w.path, w.accept) for w in workloads if "FFDM" not in w.label]
                     + [(ffdm_path, AS_STORED)])
        print(f"Access control and audit, on vs off ({args.rounds} rounds alternating; best "
              f"round of each; {'PostgreSQL' if args.database_url else 'SQLite'})")
        print("  off = [auth] mode none + [audit] enabled false; audit = mode none + audit on;")
        print("  admin = admin token on /dicom-web + audit; licence = researcher token on "
              "/licences/{id}/dicom-web + audit")
        worst: dict[str, float] = {}
        cpu_worst: dict[str, float] = {}
        for w in workloads:
            results = measure(settings, w, args.rounds)
            print(f"\n{w.label}, {w.count} requests a round")
            base = results.best("off")
            for s in settings:
                median, p95, rate, mbs, cpu = results.best(s.name)
                ratio = rate / base[2]
                worst[s.name] = min(worst.get(s.name, ratio), ratio)
                cpu_worst[s.name] = min(cpu_worst.get(s.name, base[4] / cpu), base[4] / cpu)
                flow = f" {mbs:5.0f} MB/s" if mbs > 50 else " " * 11
                paired = results.paired(s.name, "off")
                verdict = "" if s.name == "off" else (
                    f"  -> {ratio:.3f}x off " + ("ok" if ratio >= 0.95 else "MISSES 0.95x")
                    + f" (paired {paired:.3f}x); CPU {base[4] / cpu:.3f}x")
                print(f"  {s.name:<8} p50 {median * 1e3:7.2f} ms  p95 {p95 * 1e3:7.2f} ms  "
                      f"{rate:7.1f} req/s{flow}  server CPU {cpu * 1e3:6.2f} ms/req{verdict}")
        print("\nLowest throughput ratio over the five request kinds (target >= 0.95x): "
              + ", ".join(f"{n} {r:.3f}x" for n, r in worst.items() if n != "off"))
        print("Lowest server-CPU ratio (off CPU per request / setting's; robust to a busy "
              "machine): " + ", ".join(f"{n} {r:.3f}x" for n, r in cpu_worst.items()
                                        if n != "off"))
        audit_file = work / "storage" / "audit" / "audit.jsonl"
        lines = audit_file.read_text().splitlines() if audit_file.exists() else []
        users = sorted({json.loads(line)["user_email"] for line in lines})
        print(f"Audit trail: {len(lines)} events in the JSON-lines file ({', '.join(users)})")
    finally:
        for s in settings:
            if s.proc is not None:
                stop(s.proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
