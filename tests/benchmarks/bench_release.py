"""Release throughput and the exporter's memory, against a plain copy of the same bytes.

Builds an archive with the export fixture (tests/export/archive.py) plus one large
tomosynthesis object (1 GiB by default) in a member study, then, in the same run:

* folder: a plain copy of the release's stored files (``shutil.copyfile`` and fsync,
  one file after another) against ``omipacs release create --to <folder>``, once with
  every copied byte re-hashed (``--check sha256``, the default) and once checked by size
  against the SHA-256 recorded at ingest (``--check size``), interleaved over
  ``--rounds`` rounds (the median ratio is printed: the machine is shared);
* S3 (moto's server on loopback): s3fs ``put_file`` of the same files against
  ``omipacs release create --to s3://…``.

The exporter is timed from the release's start to its manifest (the ``release`` row's
times: planning, tables and copies, not the interpreter's start-up) and end to end, and
its peak RSS (VmHWM, sampled while it runs) is reported, with the CPU seconds each
side spent (a plain copy is the kernel's; the exporter adds the hash).

Usage: python tests/benchmarks/bench_release.py [--dbt-frames 110] [--workers 4]
       [--rounds 3] [--no-s3]
Targets (issue): >= 0.8x the plain copy; exporter peak RSS < 400 MB with a 1 GB DBT.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import select  # noqa: E402

from omipacs.bootstrap import open_archive  # noqa: E402
from omipacs.demo import factory  # noqa: E402
from omipacs.demo.vendors import DBT_FULL_SIZE  # noqa: E402
from omipacs.export.models import Release  # noqa: E402
from omipacs.export.release import _images  # noqa: E402
from tests.benchmarks.common import peak_rss_mib  # noqa: E402
from tests.conftest import make_settings, write_config  # noqa: E402
from tests.export.archive import build  # noqa: E402
from tests.objectstores import MotoS3, environment_without_cloud_credentials  # noqa: E402
from tests.query.archive import ORIGIN, uid  # noqa: E402


def add_big_dbt(root: Path, frames: int) -> None:
    services = open_archive(make_settings(root))  # the same root: same key, same index
    rows, columns = DBT_FULL_SIZE
    ds = factory.make_dbt(frames=frames, rows=rows, columns=columns, vendor="HOLOGIC",
                          study_uid=uid("1"), series_uid=uid("1.9"), sop_uid=uid("1.9.1"),
                          PatientID="P001", PatientName="O'Brien^Mary")
    path = root / "big-dbt.dcm"
    factory.save(ds, path)
    del ds
    result = services.pipeline.ingest_file(path, ORIGIN)
    path.unlink()
    assert result.outcome.value == "stored", result
    services.close()


def stored_files(root: Path, licence: int) -> list[tuple[Path, int]]:
    """The stored blob files of the licence's release and their sizes."""
    services = open_archive(make_settings(root))
    try:
        with services.sessions() as session:
            images = list(_images(session, licence))
        out = []
        for image in images:
            local = services.blobs.local_path(image.key)
            assert local is not None
            out.append((local, image.bytes))
        return out
    finally:
        services.close()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_export(config: Path, licence: int, to: str, options: list[str], workers: int,
               root: Path) -> tuple[float, float, float, float]:
    """(seconds in the release, seconds end to end, peak RSS MiB, CPU seconds) of one
    export."""
    cpu = children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "omipacs", "--config", str(config), "release", "create",
         "--licence", str(licence), "--to", to, "--workers", str(workers), "--json",
         *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, peak_rss_mib(proc.pid))
        time.sleep(0.02)
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    cpu = children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"export failed: {err[-2000:]}")
    number = json.loads(out)["number"]
    services = open_archive(make_settings(root))
    with services.sessions() as session:
        row = session.scalar(select(Release).where(Release.licence_pk == licence,
                                                   Release.number == number))
        assert row is not None and row.started_at and row.completed_at
        inside = (row.completed_at - row.started_at).total_seconds()
    services.close()
    return inside, wall, peak, cpu


def plain_folder_copy(files: list[tuple[Path, int]], dest: Path) -> float:
    start = time.perf_counter()
    dest.mkdir(parents=True)
    for i, (src, _size) in enumerate(files):
        target = dest / f"{i}.dcm"
        shutil.copyfile(src, target)
        fd = os.open(target, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return time.perf_counter() - start


def plain_s3_copy(files: list[tuple[Path, int]], fs: object, prefix: str) -> float:
    start = time.perf_counter()
    for i, (src, _size) in enumerate(files):
        fs.put_file(str(src), f"{prefix}/{i}.dcm")  # type: ignore[attr-defined]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dbt-frames", type=int, default=110,
                        help="frames of the big DBT (110 full-size frames: about 1 GiB)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved folder rounds (the median is printed)")
    parser.add_argument("--no-s3", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-release-"))
    try:
        archive = build(root)
        archive.services.close()
        add_big_dbt(root, args.dbt_frames)
        licence = archive.licences["full"]
        files = stored_files(root, licence)
        total = sum(size for _, size in files)
        print(f"release: {len(files)} DICOM files, {total / 2**20:.0f} MiB "
              f"(largest {max(s for _, s in files) / 2**20:.0f} MiB)")
        config = write_config(archive.settings, root / "bench.toml")
        rows: list[tuple[str, float, float, float, float, float, float]] = []

        checks: dict[str, list[tuple[float, ...]]] = {"sha256": [], "size": []}
        for n in range(args.rounds):
            for check, runs in checks.items():
                cpu = own_cpu()
                base = plain_folder_copy(files, root / "plain")
                base_cpu = own_cpu() - cpu
                shutil.rmtree(root / "plain")
                out = root / f"out-{check}-{n}"
                inside, wall, peak, ex_cpu = run_export(
                    config, licence, str(out), ["--check", check], args.workers, root)
                shutil.rmtree(out)
                runs.append((base / inside, base, inside, wall, peak, ex_cpu, base_cpu))
                print(f"  round {n + 1} folder --check {check}: ratio {base / inside:.2f}",
                      flush=True)
        for check, runs in checks.items():
            runs.sort()
            _ratio, base, inside, wall, peak, ex_cpu, base_cpu = runs[len(runs) // 2]
            rows.append((f"folder/{check}", base, inside, wall,
                         max(r[4] for r in runs), ex_cpu, base_cpu))

        if not args.no_s3:
            environment_without_cloud_credentials()
            server = MotoS3()
            try:
                bucket = server.bucket()
                # moto assembles a completed multipart upload in memory: for 1 GiB on a busy
                # machine that can outlast botocore's 60 s read timeout (then a retry fails).
                bucket.options["config_kwargs"] = {"read_timeout": 900}
                fs = bucket.fs()
                prefix = bucket.url.split("://", 1)[1]
                base = plain_s3_copy(files, fs, prefix + "-plain")
                options = []
                for k, v in bucket.options.items():
                    options += ["--storage-option",
                                f"{k}={json.dumps(v) if isinstance(v, dict) else v}"]
                inside, wall, peak, ex_cpu = run_export(
                    config, licence, bucket.url + "-release", options, args.workers, root)
                rows.append(("s3 (moto)", base, inside, wall, peak, ex_cpu, float("nan")))
            finally:
                server.stop()

        mib = total / 2**20
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'target':14} {'plain MiB/s':>12} {'release MiB/s':>14} {'ratio':>6} "
              f"{'end-to-end MiB/s':>17} {'peak RSS MiB':>13} {'CPU s':>6} {'plain CPU s':>12}")
        for name, base, inside, wall, peak, ex_cpu, base_cpu in rows:
            print(f"{name:14} {mib / base:12.1f} {mib / inside:14.1f} {base / inside:6.2f} "
                  f"{mib / wall:17.1f} {peak:13.0f} {ex_cpu:6.1f} {base_cpu:12.1f}")
        print("targets: ratio >= 0.8; peak RSS < 400 MiB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
