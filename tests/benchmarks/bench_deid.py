"""Ingest throughput with de-identification on vs off, in one run, on full-size FFDM.

Both runs go through the same pipeline (parse, validate, [de-identify + rewrite], hash,
fsync, rename, index) from the same spooled copies of the same files; only the cleaner
differs. Target (issue): on >= 0.8x of off.

Usage: python tests/benchmarks/bench_deid.py [--files 16]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from omipacs.config import DeidSettings, Settings, StorageSettings  # noqa: E402
from omipacs.deid.engine import Deidentifier  # noqa: E402
from omipacs.deid.keys import DeidKeys  # noqa: E402
from omipacs.demo import factory  # noqa: E402
from omipacs.ingest.origin import IngestOrigin, OriginKind  # noqa: E402
from omipacs.services import Services  # noqa: E402


def run(files: list[Path], root: Path, deid: bool) -> float:
    settings = Settings(storage=StorageSettings(root=root), deid=DeidSettings(enabled=deid))
    cleaner = Deidentifier(DeidKeys.from_secret(secrets.token_bytes(32))) if deid else None
    services = Services.create(settings, cleaner=cleaner)
    origin = IngestOrigin(OriginKind.IMPORT, ae_title="SITE_A", deidentify=deid)
    start = time.perf_counter()
    for f in files:
        services.pipeline.ingest_file(f, origin)
    elapsed = time.perf_counter() - start
    services.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=16)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="omipacs-bench-deid-"))
    try:
        files = []
        for i in range(args.files):
            path = work / f"ffdm{i}.dcm"
            factory.save(
                factory.make_mammo(rows=4096, columns=3328, rng=i, processed=i % 2 == 0), path
            )
            files.append(path)
        mb = sum(f.stat().st_size for f in files) / 1e6
        off = run(files, work / "off", deid=False)
        on = run(files, work / "on", deid=True)
        print(f"{len(files)} full-size FFDM files (3328x4096), {mb:.0f} MB")
        print(
            f"de-identification off: {off:6.2f} s  {len(files) / off:6.2f} files/s  "
            f"{mb / off:7.1f} MB/s"
        )
        print(
            f"de-identification on:  {on:6.2f} s  {len(files) / on:6.2f} files/s  "
            f"{mb / on:7.1f} MB/s"
        )
        print(f"ratio on/off throughput: {off / on:.2f} (target >= 0.8)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
