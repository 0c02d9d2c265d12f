"""Load the synthetic data set through the same ingest pipeline as real data.

Files are generated straight into the archive's spool (one at a time, so a full-size
data set never needs its own disk space) and each is ingested as soon as it is written,
exactly as a site's C-STORE would be: validated, de-identified, stored and indexed.
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from omipacs.annotations.importer import import_marks
from omipacs.bootstrap import open_archive
from omipacs.clinical.imaging import sync_imaging
from omipacs.clinical.importer import import_records
from omipacs.config import Settings
from omipacs.deid.keys import DeidKeys
from omipacs.demo.clinical import clinical_records_for
from omipacs.demo.generate import DemoManifest, plan_demo, write_demo
from omipacs.demo.marks import demo_marks
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.services import Services


@dataclass
class DemoSummary:
    """What ``omipacs demo`` loaded."""

    clients: int
    studies: int
    outcomes: Counter[str] = field(default_factory=Counter)

    def describe(self) -> str:
        """One line for people."""
        parts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(self.outcomes.items()))
        return f"demo: {self.clients} clients, {self.studies} studies; instances: {parts}"


def load_clinical(services: Services, plan: DemoManifest, seed: int) -> None:
    """Import the demo's NBSS-style records (same NHS numbers and dates as its images)
    through the clinical importer, then link them with the images."""
    keys = services.extras.get("deid.keys")
    if not isinstance(keys, DeidKeys):
        return
    with services.write_sessions() as session:
        import_records(session, clinical_records_for(plan, seed), keys)
    with services.write_sessions.begin() as session:
        sync_imaging(session, margin=timedelta(0))
    # Expert marks for most malignant and some benign cases, stored as SRs.
    with services.sessions() as session:
        records = demo_marks(session, seed=seed)
    import_marks(services, records)


def load_demo(
    settings: Settings,
    *,
    clients: int = 20,
    seed: int = 0,
    full_size: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> DemoSummary:
    """Generate and ingest a demo data set; idempotent for the same seed."""
    services = open_archive(settings, demo=True)
    out_dir = services.spool.dir / f"demo-{uuid.uuid4().hex[:8]}"
    plan = plan_demo(out_dir, clients=clients, seed=seed, full_size=full_size)
    total = len(plan.instances)
    summary = DemoSummary(clients=len(plan.clients), studies=len(plan.studies))
    try:
        for done, (path, instance) in enumerate(write_demo(plan), start=1):
            origin = IngestOrigin(OriginKind.DEMO, ae_title=instance.site, deidentify=True)
            result = services.pipeline.ingest_spooled(path, origin)
            summary.outcomes[result.outcome.value] += 1
            if on_progress:
                on_progress(done, total)
        load_clinical(services, plan, seed)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
        services.close()
    return summary
