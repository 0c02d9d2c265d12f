"""The web dashboard in headless Chromium against a live ``omipacs serve`` with demo data.

A curator and a researcher sign in with their tokens (``tests/e2e/ui/check.mjs``, driven
by playwright-core from ``tests/e2e/ohif/node_modules`` and Debian's Chromium): the
curator's overview draws every chart and downloads one as PNG and SVG, the curator
builds a cohort of marked cases and saves it, and opens a marked client's timeline,
whose thumbnails must show the red mark outlines (counted in the pixels); the
researcher sees her licence's charts, her member's timeline with its marks, a 404 for a
client outside her licence, and no page she reaches names any client outside it.
Screenshots are kept in ``tests/e2e/ui/artifacts/`` (printed at the end).

Needs Chromium, Node.js and playwright-core: ``bash tests/e2e/ohif/setup.sh``. Missing
tooling fails the test (it never skips).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select

from omipacs.access import admin
from omipacs.bootstrap import open_archive
from omipacs.clinical.models import Client
from omipacs.cohorts import CohortFilters, StudyScope, get_cohort, save_cohort
from omipacs.config import UiSettings
from tests.conftest import ServerProcess, make_settings, start_server, write_config
from tests.e2e.ohif_check import CHROMIUM, SETUP_HINT, missing_tooling

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

HERE = Path(__file__).resolve().parent
CHECK = HERE / "ui" / "check.mjs"
ARTIFACTS = HERE / "ui" / "artifacts"
DEMO_CLIENTS = 20
RESEARCHER = "researcher@lab.example"
CURATOR = "curator@archive.example"
OHIF = "http://127.0.0.1:9/viewer?StudyInstanceUIDs={study}&root={dicomweb}"
#: Resource errors the pages provoke on purpose (the researcher's refused pages).
EXPECTED = ("status of 403", "status of 404")


@dataclass(frozen=True)
class Dashboard:
    server: ServerProcess
    base: str
    curator_token: str
    researcher_token: str
    licence: int
    members: list[str]
    outside: list[str]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A token-only demo archive, a curator, and a researcher licensed for marked cases."""
    missing = missing_tooling(dist=None)
    if missing:
        pytest.fail("dashboard end-to-end tooling missing: " + "; ".join(missing)
                    + f"; {SETUP_HINT}")
    root = tmp_path_factory.mktemp("ui-e2e")
    settings = make_settings(root)
    settings = replace(settings, auth=replace(settings.auth, mode="token"),
                       ui=UiSettings(ohif_url=OHIF))
    config = write_config(settings, root / "config.toml")
    subprocess.run([sys.executable, "-m", "omipacs", "--config", str(config), "demo",
                    "--clients", str(DEMO_CLIENTS)],
                   check=True, capture_output=True, text=True, timeout=600, cwd=root)
    services = open_archive(settings)
    try:
        with services.write_sessions.begin() as session:
            cohort = save_cohort(session, "marked cases",
                                 CohortFilters(marked=True, scope=StudyScope.ALL))
            admin.add_user(session, RESEARCHER, "researcher")
            admin.add_user(session, CURATOR, "curator")
            licence = admin.create_licence(
                session, title="dashboard check", cohort_id=cohort.id,
                scopes="2d,3d,marks,clinical", ends=date.today() + timedelta(days=30),
                members=[RESEARCHER])
            researcher_token, _ = admin.create_token(session, RESEARCHER)
            curator_token, _ = admin.create_token(session, CURATOR)
        with services.sessions() as session:
            members = sorted(get_cohort(session, cohort.id).client_ids)
            everyone = set(session.scalars(select(Client.client_id)))
    finally:
        services.close()
    outside = sorted(everyone - set(members))
    assert members and outside, f"the demo should have marked and unmarked clients: {members}"
    server = start_server(settings, root)
    try:
        yield Dashboard(server, f"http://127.0.0.1:{settings.http.port}", curator_token,
                        researcher_token, licence.id, members, outside)
    finally:
        server.stop()


def _run(d: Dashboard, out: Path) -> dict[str, Any]:
    opts = {
        "base": d.base, "outDir": str(out), "curatorToken": d.curator_token,
        "researcherToken": d.researcher_token, "markedClient": d.members[0],
        "memberClient": d.members[0], "outsideClient": d.outside[0],
        "executablePath": CHROMIUM, "timeoutMs": 60_000, "deadlineMs": 480_000,
    }
    done = subprocess.run(["node", str(CHECK), json.dumps(opts)], capture_output=True,
                          text=True, timeout=540, cwd=HERE / "ui")
    try:
        found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise AssertionError(
            f"check.mjs failed: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        ) from None
    return found


def _report(result: dict[str, Any]) -> str:
    lines = [f"{'ok ' if s['ok'] else 'FAIL'} {s['name']}: {str(s['detail'])[:800]}"
             for s in result["steps"]]
    return "\n".join(lines + [f"console: {result['consoleErrors']}",
                              f"5xx: {result['failedRequests']}"])


def test_dashboard_in_chromium(dashboard: Dashboard) -> None:
    d = dashboard
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    result = _run(d, ARTIFACTS)
    print(f"\ndashboard screenshots: {ARTIFACTS}")
    report = _report(result)
    steps = {s["name"]: s for s in result["steps"]}
    assert all(s["ok"] for s in result["steps"]), report + "\n" + "".join(d.server.log[-30:])

    overview = steps["curator: overview charts"]["detail"]
    assert len(overview["titles"]) >= 8, report
    assert overview["a11y"] == {"unlabelled": [], "noAlt": [], "main": True, "nav": True}
    downloads = steps["curator: chart downloads"]["detail"]
    assert downloads["png"].startswith("\x89PNG") and downloads["svg"].startswith("<svg"), report
    assert steps["curator: keyboard reaches the skip link first"]["detail"] == "Skip to content"

    built = steps["curator: build a cohort"]["detail"]
    assert int(built["after"]) < int(built["before"]) and built["thumbs"] >= 1, report
    assert any(img["red"] > 0 for img in built["red"]), report
    saved = steps["curator: save the cohort"]["detail"]
    assert "version" in saved["heading"] and int(saved["clients"]) == int(built["after"])

    curator_client = steps["curator: client timeline with marks"]["detail"]
    assert curator_client["thumbs"] >= 4 and curator_client["red"], report
    assert all(img["red"] > 0 for img in curator_client["red"]), report
    assert curator_client["ohif"] and "StudyInstanceUIDs=" in curator_client["ohif"][0]

    researcher_client = steps["researcher: member client timeline with marks"]["detail"]
    assert researcher_client["red"] and all(i["red"] > 0 for i in researcher_client["red"])
    assert all(f"licence={d.licence}" in i["src"] for i in researcher_client["red"]), report
    licence_root = quote(f"/licences/{d.licence}/dicom-web", safe="")
    assert all(licence_root in link for link in researcher_client["ohif"]), report
    assert steps["researcher: outside client is not found"]["detail"] == 404
    assert steps["researcher: cohort builder is not for researchers"]["detail"] == 403
    assert "Cohort builder" not in steps["researcher: navigation"]["detail"]

    researcher_pages = {k: v for k, v in result["pages"].items() if k.startswith("researcher")}
    assert len(researcher_pages) >= 5, sorted(result["pages"])
    leaks = {(name, cid) for name, text in researcher_pages.items() for cid in d.outside
             if cid in text}
    assert not leaks, leaks
    # The curator does see clients outside the licence (the scan is not vacuous).
    assert any(cid in result["pages"]["curator-cohort-builder-all"] for cid in d.outside)

    unexpected = [e for e in result["consoleErrors"] if not any(x in e for x in EXPECTED)]
    assert not unexpected and not result["failedRequests"], report
    names = {Path(p).stem for p in result["screenshots"]}
    assert {"curator-overview", "curator-cohort-builder", "curator-saved-cohort",
            "curator-client", "researcher-overview", "researcher-client"} <= names
