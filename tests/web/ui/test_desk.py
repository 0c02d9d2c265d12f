"""Applying for access and the curator's desk, through the real server and a signed-in
browser session: who may open which page, CSRF, the request → decision → licence flow,
licences and tokens, the quarantine (pixels, release, purge) and the audit trail."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image
from sqlalchemy import func, select

from omipacs.access.audit import AuditFilter, browse_events
from omipacs.demo import factory
from omipacs.index.models import Instance
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.ingest.quarantine import Quarantine
from omipacs.ingest.result import IngestOutcome
from omipacs.retrieve.review import preview
from tests.conftest import run_cli
from tests.web.access_fixture import AccessArchive, build_for
from tests.web.ui.conftest import csrf_of, sign_in

pytestmark = pytest.mark.slow

SC = "1.2.840.10008.5.1.4.1.1.7"
SITE = IngestOrigin(OriginKind.DIMSE, ae_title="SITE_A", deidentify=True)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AccessArchive]:
    """The access fixture's archive on both databases (the desk's queries run on each)."""
    yield from build_for(request, tmp_path_factory, "desk")


def _get(browser: requests.Session, a: AccessArchive, path: str) -> requests.Response:
    return browser.get(a.base + path, allow_redirects=False, timeout=30)


def _post(browser: requests.Session, a: AccessArchive, path: str, form_page: str,
          data: dict[str, object] | list[tuple[str, str]]) -> requests.Response:
    """POST ``data`` with the CSRF token of ``form_page`` (as the browser would)."""
    token = csrf_of(_get(browser, a, form_page).text)
    body = list(data.items()) if isinstance(data, dict) else list(data)
    return browser.post(a.base + path, data=[*body, ("csrf_token", token)],
                        allow_redirects=False, timeout=30)


def _hold(a: AccessArchive, tmp_path: Path, name: str) -> str:
    """A screenshot with a name drawn in and no BurnedInAnnotation: held for review."""
    ds = factory.make_secondary_capture(burned_in_annotation=None, rows=80, columns=120)
    path = tmp_path / f"{name}.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert a.services.pipeline.ingest_file(path, SITE).outcome is IngestOutcome.QUARANTINED
    return Quarantine(a.services.settings.storage.root).entries()[-1].id


def test_who_may_open_which_page(archive: AccessArchive) -> None:
    a = archive
    lic = a.licences["L1"]
    pages = {
        "/ui/requests": {"admin": 200, "curator": 200, "r1": 200},
        "/ui/requests/new": {"admin": 200, "curator": 200, "r1": 200},
        "/ui/desk/licences": {"admin": 200, "curator": 403, "r1": 403},
        f"/ui/desk/licences/{lic}": {"admin": 200, "curator": 403, "r1": 403},
        "/ui/desk/tokens": {"admin": 200, "curator": 403, "r1": 403},
        "/ui/desk/users": {"admin": 200, "curator": 403, "r1": 403},
        "/ui/desk/quarantine": {"admin": 200, "curator": 200, "r1": 403},
        "/ui/desk/audit": {"admin": 200, "curator": 200, "r1": 403},
        "/ui/desk/releases": {"admin": 200, "curator": 200, "r1": 403},
    }
    for who in ("admin", "curator", "r1"):
        browser = sign_in(a, who)
        for path, expect in pages.items():
            r = _get(browser, a, path)
            assert r.status_code == expect[who], (who, path, r.status_code)
            if r.status_code == 403:
                assert "Not allowed" in r.text and "<form" not in r.text.split("</header>")[1]
        nav = _get(browser, a, "/ui/requests").text.split("</nav>")[0]
        assert ("Licences" in nav) is (who == "admin")
        assert ("Quarantine" in nav) is (who != "r1")
        assert ("Audit" in nav) is (who != "r1")
    for path in pages:  # not signed in: to the login form
        r = requests.get(a.base + path, allow_redirects=False, timeout=30)
        assert r.status_code == 303 and r.headers["Location"].startswith("/ui/login")


def test_changes_need_the_csrf_token(archive: AccessArchive) -> None:
    a = archive
    admin_browser = sign_in(a, "admin")
    before = _get(admin_browser, a, "/ui/desk/tokens").text.count("<tr>")
    for path, data in (
        ("/ui/desk/tokens", {"user": "r2@lab.example"}),
        (f"/ui/desk/licences/{a.licences['L2']}/state", {"state": "suspended"}),
        ("/ui/requests", {"title": "t"}),
    ):
        for token in (None, "0" * 64):
            form = dict(data, **({"csrf_token": token} if token else {}))
            r = admin_browser.post(a.base + path, data=form, allow_redirects=False, timeout=30)
            assert r.status_code == 403 and "CSRF" in r.text, path
    assert _get(admin_browser, a, "/ui/desk/tokens").text.count("<tr>") == before
    assert "suspended" not in _get(admin_browser, a,
                                   f"/ui/desk/licences/{a.licences['L2']}").text.split(
        'id="licence-state">')[1][:20]
    # A signed-in researcher's own CSRF token does not open the admin's forms either.
    r1 = sign_in(a, "r1")
    r = _post(r1, a, "/ui/desk/tokens", "/ui/requests", {"user": "r1@lab.example"})
    assert r.status_code == 403


def test_request_decision_licence(archive: AccessArchive) -> None:
    a = archive
    r2 = sign_in(a, "r2")
    form = _get(r2, a, "/ui/requests/new").text
    assert 'name="technical_summary"' in form and 'name="lay_summary"' in form
    assert 'name="patient_benefit"' in form and 'name="data_types"' in form
    # Incomplete: back to the form with the reason, nothing filed.
    r = _post(r2, a, "/ui/requests", "/ui/requests/new", {"title": "Density and recall"})
    assert r.status_code == 400 and "technical_summary is required" in r.text
    assert 'value="Density and recall"' in r.text
    r = _post(r2, a, "/ui/requests", "/ui/requests/new", [
        ("title", "Density and recall"), ("organisation", "Lab"),
        ("technical_summary", "CNN on FFDM to predict recall."),
        ("lay_summary", "Teaching a computer to spot cancers earlier."),
        ("patient_benefit", "Fewer missed cancers."), ("data_types", "2d"),
        ("data_types", "clinical"), ("cohort_id", str(a.cohorts["C"])),
    ])
    assert r.status_code == 303 and "done=submitted" in r.headers["Location"]
    page = r2.get(a.base + r.headers["Location"], timeout=30)
    request_id = int(re.search(r"Request (\d+):", page.text).group(1))  # type: ignore[union-attr]
    assert "submitted" in page.text and "Your request has been submitted" in page.text
    assert "Record the committee" not in page.text  # the applicant does not decide
    # Another researcher does not see it; the curator (not the committee) neither.
    assert _get(sign_in(a, "r1"), a, f"/ui/requests/{request_id}").status_code == 404
    curator = sign_in(a, "curator")
    assert _get(curator, a, f"/ui/requests/{request_id}").status_code == 404
    r = _post(curator, a, f"/ui/requests/{request_id}/decisions", "/ui/requests",
              {"decision": "approved", "reason": "fine"})
    assert r.status_code == 403
    # The committee's queue shows it; a decision without a reason is refused.
    committee = sign_in(a, "admin")
    queue = _get(committee, a, "/ui/requests").text
    waiting = queue.split('id="waiting-title"')[1].split('id="decided-title"')[0]
    assert "Density and recall" in waiting and "r2@lab.example" in waiting
    show = f"/ui/requests/{request_id}"
    r = _post(committee, a, f"{show}/decisions", show, {"decision": "approved", "reason": ""})
    assert r.status_code == 400 and "Not recorded: reason is required" in r.text
    r = _post(committee, a, f"{show}/decisions", show,
              {"decision": "more-information", "reason": "Which vendors?"})
    assert r.status_code == 303
    mine = _get(r2, a, show).text
    assert "more information" in mine and "Which vendors?" in mine
    # The applicant answers and amends; the request waits for the committee again.
    assert "Answer the committee" in mine
    assert "Answer the committee" not in _get(committee, a, show).text
    api = f"{a.base}/api/v1/access-requests/{request_id}/resubmit"
    answer = {"title": "Density and recall", "technical_summary": "CNN on FFDM.",
              "lay_summary": "Spotting cancers earlier.", "patient_benefit": "Fewer missed.",
              "data_types": ["2d"], "response": "Hologic only."}
    assert requests.post(api, json=answer, headers=a.headers("r1"), timeout=30).status_code == 404
    r = _post(r2, a, f"{show}/resubmit", show, [
        ("response", "Hologic and GE only."), ("title", "Density and recall"),
        ("technical_summary", "CNN on FFDM (Hologic, GE) to predict recall."),
        ("lay_summary", "Teaching a computer to spot cancers earlier."),
        ("patient_benefit", "Fewer missed cancers."), ("data_types", "2d"),
        ("data_types", "clinical"), ("cohort_id", str(a.cohorts["C"])),
    ])
    assert r.status_code == 303 and "done=resubmitted" in r.headers["Location"]
    mine = _get(r2, a, show).text
    assert 'id="request-state">submitted' in mine and "Hologic and GE only." in mine
    assert "CNN on FFDM (Hologic, GE)" in mine and "Answer the committee" not in mine
    r = requests.post(api, json=answer, headers=a.headers("r2"), timeout=30)
    assert r.status_code == 400 and "more information" in r.json()["error"]
    r = _post(committee, a, f"{show}/decisions", show, [
        ("decision", "approved"), ("reason", "Sound plan."), ("scopes", "2d"),
        ("scopes", "clinical"),
    ])
    assert r.status_code == 303
    mine = _get(r2, a, show).text
    licence_id = int(re.search(r"Licence (\d+) created", mine).group(1))  # type: ignore[union-attr]
    assert 'id="request-state">approved' in mine and "Sound plan." in mine
    assert (mine.index("submitted") < mine.index("more information")
            < mine.index("resubmitted") < mine.index("Sound plan."))
    # The licence works for the applicant through the API at once.
    url = f"{a.base}/licences/{licence_id}/dicom-web/studies"
    deadline = time.monotonic() + 10
    while (code := requests.get(url, headers=a.headers("r2"), timeout=30).status_code) != 200:
        assert time.monotonic() < deadline, code
        time.sleep(0.2)
    # Decided: no second decision.
    r = _post(committee, a, f"{show}/decisions", show, {"decision": "rejected", "reason": "x"})
    assert r.status_code == 400 and "already approved" in r.text


def test_licences_and_tokens(archive: AccessArchive) -> None:
    a = archive
    browser = sign_in(a, "admin")
    r = _post(browser, a, "/ui/desk/licences", "/ui/desk/licences", [
        ("title", "Vendor study"), ("cohort_id", str(a.cohorts["C"])), ("scopes", "2d"),
        ("ends", "2030-01-31"), ("members", "r2@lab.example"),
    ])
    assert r.status_code == 303 and "done=licence-created" in r.headers["Location"]
    licence_id = int(r.headers["Location"].split("/licences/")[1].split("?")[0])
    page = f"/ui/desk/licences/{licence_id}"
    assert 'id="licence-state">active' in _get(browser, a, page).text
    r = _post(browser, a, "/ui/desk/licences", "/ui/desk/licences",
              {"title": "No cohort", "ends": "2030-01-31"})
    assert r.status_code == 400 and "choose the cohort" in r.text
    # A token bound to it: the secret is shown once, then only its prefix.
    r = _post(browser, a, "/ui/desk/tokens", "/ui/desk/tokens",
              {"user": "r2@lab.example", "licence_id": str(licence_id), "label": "laptop"})
    assert r.status_code == 201
    secret = re.search(r'id="new-token" type="text" readonly value="(omi_[^"]+)"', r.text)
    assert secret is not None
    token = secret.group(1)
    assert "no-store" in r.headers["Cache-Control"]
    listing = _get(browser, a, "/ui/desk/tokens").text
    assert token not in listing and token[:12] in listing
    assert "state-expired" in listing  # the fixture's expired token says so
    assert token not in _get(browser, a, page).text
    api = f"{a.base}/licences/{licence_id}/dicom-web/studies"
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(api, headers=bearer, timeout=30).status_code == 200
    # Suspend at once; revoke only after confirming.
    r = _post(browser, a, f"{page}/state", page, {"state": "suspended"})
    assert r.status_code == 303
    assert 'id="licence-state">suspended' in _get(browser, a, page).text
    r = _post(browser, a, f"{page}/state", page, {"state": "active"})
    assert 'id="licence-state">active' in _get(browser, a, page).text
    r = _post(browser, a, f"{page}/state", page, {"state": "revoked"})
    assert r.status_code == 200 and "Revoke the licence" in r.text
    assert 'name="confirm" value="yes"' in r.text
    assert 'id="licence-state">active' in _get(browser, a, page).text
    r = _post(browser, a, f"{page}/state", page, {"state": "revoked", "confirm": "yes"})
    assert r.status_code == 303
    assert 'id="licence-state">revoked' in _get(browser, a, page).text
    deadline = time.monotonic() + 10
    while requests.get(api, headers=bearer, timeout=30).status_code != 404:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    r = _post(browser, a, f"{page}/state", page, {"state": "active"})
    assert r.status_code == 400 and "cannot be reinstated" in r.text
    # Revoking a token: confirmation, then 401 for its holder.
    r = _post(browser, a, "/ui/desk/tokens", "/ui/desk/tokens", {"user": "r2@lab.example"})
    token = re.search(r'readonly value="(omi_[^"]+)"', r.text).group(1)  # type: ignore[union-attr]
    token_id = int(re.search(r'/ui/desk/tokens/(\d+)/revoke', r.text).group(1))  # type: ignore[union-attr]
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{a.base}/api/v1/access-requests", headers=bearer,
                        timeout=30).status_code == 200
    revoke = f"/ui/desk/tokens/{token_id}/revoke"
    r = _post(browser, a, revoke, "/ui/desk/tokens", {})
    assert r.status_code == 200 and "Revoke the token" in r.text
    r = _post(browser, a, revoke, "/ui/desk/tokens", {"confirm": "yes"})
    assert r.status_code == 303 and "done=token-revoked" in r.headers["Location"]
    deadline = time.monotonic() + 10
    while requests.get(f"{a.base}/api/v1/access-requests", headers=bearer,
                       timeout=30).status_code != 401:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_users(archive: AccessArchive) -> None:
    a = archive
    browser = sign_in(a, "admin")
    r = _post(browser, a, "/ui/desk/users", "/ui/desk/users",
              {"email": "not an email", "role": "researcher"})
    assert r.status_code == 400 and "email must look like" in r.text
    r = _post(browser, a, "/ui/desk/users", "/ui/desk/users",
              {"email": "R3@Lab.example", "role": "researcher", "organisation": "Lab"})
    assert r.status_code == 303 and "done=user-added" in r.headers["Location"]
    listing = _get(browser, a, "/ui/desk/users").text
    assert "r3@lab.example" in listing
    after = listing.split("r3@lab.example")[1]
    user_id = int(re.search(r"/ui/desk/users/(\d+)/disable", after).group(1))  # type: ignore[union-attr]
    r = _post(browser, a, "/ui/desk/tokens", "/ui/desk/tokens", {"user": "r3@lab.example"})
    token = re.search(r'readonly value="(omi_[^"]+)"', r.text).group(1)  # type: ignore[union-attr]
    bearer = {"Authorization": f"Bearer {token}"}
    api = f"{a.base}/api/v1/access-requests"
    assert requests.get(api, headers=bearer, timeout=30).status_code == 200
    disable = f"/ui/desk/users/{user_id}/disable"
    r = _post(browser, a, disable, "/ui/desk/users", {})
    assert r.status_code == 200 and "Disable the user" in r.text
    assert requests.get(api, headers=bearer, timeout=30).status_code == 200
    r = _post(browser, a, disable, "/ui/desk/users", {"confirm": "yes"})
    assert r.status_code == 303 and "done=user-disabled" in r.headers["Location"]
    deadline = time.monotonic() + 10
    while requests.get(api, headers=bearer, timeout=30).status_code != 401:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert _post(sign_in(a, "curator"), a, "/ui/desk/users", "/ui/requests",
                 {"email": "x@y.example", "role": "admin"}).status_code == 403


def _sc_instances(a: AccessArchive) -> int:
    with a.services.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Instance)
                            .where(Instance.sop_class_uid == SC)) or 0)


def test_quarantine_review_release_and_purge(archive: AccessArchive, tmp_path: Path) -> None:
    a = archive
    first, second = _hold(a, tmp_path, "one"), _hold(a, tmp_path, "two")
    curator = sign_in(a, "curator")
    listing = _get(curator, a, "/ui/desk/quarantine").text
    assert first[:8] in listing and second[:8] in listing
    page = _get(curator, a, f"/ui/desk/quarantine/{first}")
    assert page.status_code == 200 and "Secondary Capture Image Storage" in page.text
    assert "BurnedInAnnotation" in page.text or "burned" in page.text.lower()
    # The pixels, as the renderer draws them; never cached; curators and admins only.
    held = Quarantine(a.services.settings.storage.root)
    r = _get(curator, a, f"/ui/desk/quarantine/{first}/preview.png")
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert "no-store" in r.headers["Cache-Control"]
    assert r.content == preview(held.path(first))
    assert Image.open(io.BytesIO(r.content)).size == (120, 80)
    researcher = sign_in(a, "r1")
    for path in (f"/ui/desk/quarantine/{first}", f"/ui/desk/quarantine/{first}/preview.png"):
        assert _get(researcher, a, path).status_code == 403
    assert requests.get(f"{a.base}/ui/desk/quarantine/{first}/preview.png",
                        allow_redirects=False, timeout=30).status_code == 303
    for bad in ("not-an-entry", first.upper(), "0" * 32):
        assert _get(curator, a, f"/ui/desk/quarantine/{bad}").status_code == 404, bad
    # Release: filed into the archive (header de-identified), gone from the quarantine.
    before = _sc_instances(a)
    r = _post(curator, a, f"/ui/desk/quarantine/{first}/release",
              f"/ui/desk/quarantine/{first}", {})
    assert r.status_code == 303 and "done=released" in r.headers["Location"]
    assert _sc_instances(a) == before + 1
    assert all(e.id != first for e in held.entries())
    assert _get(curator, a, f"/ui/desk/quarantine/{first}").status_code == 404
    # Purge: confirmation first, then the held file is deleted.
    purge = f"/ui/desk/quarantine/{second}/purge"
    r = _post(curator, a, purge, f"/ui/desk/quarantine/{second}", {})
    assert r.status_code == 200 and "Purge it" in r.text
    assert held.path(second).exists()
    r = _post(curator, a, purge, f"/ui/desk/quarantine/{second}", {"confirm": "yes"})
    assert r.status_code == 303 and "done=purged" in r.headers["Location"]
    assert not (held.dir / f"{second}.dcm").exists()
    assert _sc_instances(a) == before + 1
    # Every look and every decision is in the audit trail, with the curator's name.
    a.services.audit.flush() if a.services.audit else None
    deadline = time.monotonic() + 10
    while True:
        with a.services.sessions() as s:
            events = browse_events(s, AuditFilter(user="curator@a.example",
                                                  resource=first), limit=50).events
        seen = {r.resource.split()[-1] for _, r in events}
        if {f"/ui/desk/quarantine/{first}/preview.png",
                f"/ui/desk/quarantine/{first}/release"} <= seen:
            break
        assert time.monotonic() < deadline, seen
        time.sleep(0.2)


def test_an_unreadable_held_file_can_still_be_purged(
    archive: AccessArchive, tmp_path: Path
) -> None:
    a = archive
    entry = _hold(a, tmp_path, "broken")
    held = Quarantine(a.services.settings.storage.root)
    held.path(entry).write_bytes(b"not DICOM at all")
    curator = sign_in(a, "curator")
    page = _get(curator, a, f"/ui/desk/quarantine/{entry}")
    assert page.status_code == 200 and "cannot be read" in page.text and "Purge" in page.text
    assert _get(curator, a, f"/ui/desk/quarantine/{entry}/preview.png").status_code == 400
    r = _post(curator, a, f"/ui/desk/quarantine/{entry}/purge",
              f"/ui/desk/quarantine/{entry}", {"confirm": "yes"})
    assert r.status_code == 303 and all(e.id != entry for e in held.entries())


def test_audit_page_filters(archive: AccessArchive) -> None:
    a = archive
    # A denied request to find.
    assert requests.get(f"{a.base}/api/v1/admin/users", headers=a.headers("r2"),
                        timeout=30).status_code == 403
    curator = sign_in(a, "curator")
    deadline = time.monotonic() + 10
    while True:
        page = _get(curator, a, "/ui/desk/audit?user=r2@lab.example&outcome=denied").text
        if "/api/v1/admin/users" in page:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    rows = page.split("<tbody>")[1].split("</tbody>")[0]
    assert "r2@lab.example" in rows and "curator@a.example" not in rows
    assert "outcome-allowed" not in rows
    assert _get(curator, a, "/ui/desk/audit?since=yesterday").status_code == 400
    assert _get(curator, a, "/ui/desk/audit?door=smtp").status_code == 400
    everything = _get(curator, a, "/ui/desk/audit?door=http").text
    assert everything.count("<tr class=") > 5
    # The same events as CSV: a header, then rows matching the filters.
    r = _get(curator, a, "/ui/desk/audit.csv?user=r2@lab.example&outcome=denied")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    lines = list(csv.DictReader(io.StringIO(r.text)))
    assert lines and all(row["user_email"] == "r2@lab.example" for row in lines)
    assert all(row["outcome"] == "denied" for row in lines)
    assert any(row["resource"].endswith("/api/v1/admin/users") for row in lines)
    assert _get(sign_in(a, "r1"), a, "/ui/desk/audit.csv").status_code == 403
    # Paging back: the "older" link keeps the filters.
    first = _get(curator, a, "/ui/desk/audit").text
    older = re.search(r'href="(/ui/desk/audit\?[^"]*before=\d+[^"]*)"', first)
    if older is not None:  # more than one page
        assert _get(curator, a, older.group(1).replace("&amp;", "&")).status_code == 200


def test_releases_page(archive: AccessArchive, tmp_path: Path) -> None:
    a = archive
    lic = str(a.licences["L1"])
    out = tmp_path / "releases"
    done = run_cli(a.services.settings, tmp_path, "release", "create", "--licence", lic,
                   "--to", str(out), "--json")
    assert done.returncode == 0, done.stderr
    curator = sign_in(a, "curator")
    page = _get(curator, a, "/ui/desk/releases")
    assert page.status_code == 200
    rows = page.text.split("<tbody>")[1].split("</tbody>")[0]
    assert "L1" in rows and "state-complete" in rows and "not verified" in rows
    assert str(out) in rows and 'value="100"' in rows
    assert "hx-trigger" not in page.text  # nothing running: no refreshing
    assert _get(curator, a, "/ui/desk/releases/table").status_code == 200
    assert _get(sign_in(a, "r1"), a, "/ui/desk/releases").status_code == 403
    done = run_cli(a.services.settings, tmp_path, "release", "verify", "--licence", lic,
                   "--release", "1", "--to", str(out))
    assert done.returncode == 0, done.stderr
    rows = _get(curator, a, "/ui/desk/releases").text.split("<tbody>")[1]
    assert ">passed<" in rows
