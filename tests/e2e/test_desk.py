"""Applying for access and the curator's desk in headless Chromium against a live server.

The access fixture's archive (tests/web/access_fixture.py) with one screenshot held in
quarantine (a patient's name drawn into its pixels, no Burned In Annotation): a
researcher fills in and submits the data access request form by its labels, the
committee approves it, and a curator opens the quarantine, sees the held pixels (read
back from the page's own <img>), releases the instance and finds the release in the audit
trail (``tests/e2e/desk/check.mjs``, playwright-core from ``tests/e2e/ohif/node_modules``
and Debian's Chromium). Screenshots are kept in ``tests/e2e/desk/artifacts/``.

Needs Chromium, Node.js and playwright-core: ``bash tests/e2e/ohif/setup.sh``. Missing
tooling fails the test (it never skips).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from omipacs.access.models import AccessRequest, Licence
from omipacs.demo import factory
from omipacs.index.models import Instance
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.ingest.quarantine import Quarantine
from omipacs.ingest.result import IngestOutcome
from tests.e2e.ohif_check import CHROMIUM, SETUP_HINT, TOOLING
from tests.web.access_fixture import AccessArchive, build

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

HERE = Path(__file__).resolve().parent
CHECK = HERE / "desk" / "check.mjs"
ARTIFACTS = HERE / "desk" / "artifacts"
SC = "1.2.840.10008.5.1.4.1.1.7"


def _missing() -> list[str]:
    missing = []
    if shutil.which("node") is None:
        missing.append("node (Node.js >= 20)")
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium at {CHROMIUM}")
    if not (TOOLING / "node_modules" / "playwright-core" / "package.json").exists():
        missing.append(f"playwright-core in {TOOLING / 'node_modules'}")
    return missing


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccessArchive]:
    missing = _missing()
    if missing:
        pytest.fail("end-to-end tooling missing: " + "; ".join(missing) + f"; {SETUP_HINT}")
    yield from build(tmp_path_factory.mktemp("desk-e2e"), "", "sqlite")


def _hold(a: AccessArchive, folder: Path) -> str:
    ds = factory.make_secondary_capture(burned_in_annotation=None, rows=256, columns=384)
    path = folder / "screenshot.dcm"
    ds.save_as(path, enforce_file_format=True)
    origin = IngestOrigin(OriginKind.DIMSE, ae_title="SITE_A", deidentify=True)
    assert a.services.pipeline.ingest_file(path, origin).outcome is IngestOutcome.QUARANTINED
    return Quarantine(a.services.settings.storage.root).entries()[-1].id


def _count(a: AccessArchive, what: Any, *where: Any) -> int:
    with a.services.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(what).where(*where)) or 0)


def test_apply_decide_and_release_in_chromium(
    archive: AccessArchive, tmp_path: Path
) -> None:
    a = archive
    entry = _hold(a, tmp_path)
    stored_before = _count(a, Instance, Instance.sop_class_uid == SC)
    licences_before = _count(a, Licence)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    opts = {
        "base": a.base, "outDir": str(ARTIFACTS), "curatorToken": a.tokens["curator"],
        "researcherToken": a.tokens["r2"], "adminToken": a.tokens["admin"], "entry": entry,
        "executablePath": CHROMIUM, "timeoutMs": 30_000,
    }
    done = subprocess.run(["node", str(CHECK), json.dumps(opts)], capture_output=True,
                          text=True, timeout=400, cwd=HERE / "desk")
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise AssertionError(f"check.mjs failed: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
                             ) from None
    print(f"\ndesk screenshots: {ARTIFACTS}")
    report = "\n".join(f"{'ok ' if s['ok'] else 'FAIL'} {s['name']}: {str(s['detail'])[:600]}"
                       for s in result["steps"])
    assert all(s["ok"] for s in result["steps"]), report
    steps = {s["name"]: s["detail"] for s in result["steps"]}

    applied = steps["researcher: apply for access (keyboard and labels)"]
    assert applied["state"] == "submitted" and "submitted" in applied["status"], report
    assert applied["a11y"] == {"unlabelled": [], "noAlt": []}, report
    with a.services.sessions() as s:
        filed = s.scalars(select(AccessRequest).order_by(AccessRequest.pk.desc())).first()
    assert filed is not None and filed.data_types == "2d,clinical"
    assert filed.title == "Recall prediction from prior mammograms"

    decided = steps["committee: queue and approval"]
    assert "Recall prediction" in decided["waiting"] and "r2@lab.example" in decided["waiting"]
    assert decided["state"] == "approved" and "Licence" in decided["history"], report
    assert _count(a, Licence) == licences_before + 1

    issued = steps["admin: licence and a new token shown once"]
    assert issued["licence"] == "active" and issued["prefix"].startswith("omi_"), report
    assert issued["secretLength"] >= 40 and issued["shownAgain"] is False, report
    assert issued["licenceA11y"] == issued["tokensA11y"] == {"unlabelled": [], "noAlt": []}

    listed = steps["curator: quarantine list"]
    assert listed["rows"] >= 1 and entry[:8] in listed["text"]
    held = steps["curator: held pixels"]
    seen = held["seen"]
    assert (seen["width"], seen["height"]) == (384, 256), report
    assert seen["min"] < 60 and seen["max"] > 200 and seen["bright"] > 50, seen  # the text
    assert seen["shownWidth"] >= 300, seen  # shown large enough to read
    assert "Secondary Capture" in held["summary"] and held["reason"]
    assert held["a11y"] == {"unlabelled": [], "noAlt": []}, report
    released = steps["curator: release"]
    assert "released" in released["status"] and released["listed"] == 0
    assert _count(a, Instance, Instance.sop_class_uid == SC) == stored_before + 1
    audited = steps["curator: audit trail"]
    assert f"/ui/desk/quarantine/{entry}/release" in audited["rows"]
    assert "curator@a.example" in audited["rows"]
    assert audited["a11y"]["unlabelled"] == []

    errors = [e[:60] for e in result["consoleErrors"]]
    assert not errors and not result["failedRequests"], (
        errors, result["failedRequests"], result["clientErrors"])
    names = {Path(p).stem for p in result["screenshots"]}
    assert {"researcher-request-form", "researcher-request-submitted", "committee-queue",
            "committee-decided", "admin-licence", "admin-token-issued", "curator-quarantine",
            "curator-quarantine-entry", "curator-released", "curator-audit"} <= names
    for file in result["screenshots"]:
        assert Path(file).stat().st_size > 1000
