"""Administration over HTTP and the lifecycle of licences, tokens and users.

Through the real server on a real socket, on SQLite and PostgreSQL: a suspended or
expired licence stops working within the cache time, revoked tokens and disabled users
get 401, the admin API creates what the CLI does, and a data access request approved by
the committee becomes a licence the applicant can use.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta

import pytest
import requests
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from omipacs.access.models import Licence
from tests.web.access_fixture import AccessArchive, build_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AccessArchive]:
    yield from build_for(request, tmp_path_factory, "admin")


def _call(
    a: AccessArchive, who: str, method: str, path: str, body: object = None
) -> requests.Response:
    headers = a.headers(who) if who in a.tokens or who in ("none", "malformed") else {
        "Authorization": f"Bearer {who}"
    }
    return requests.request(method, a.base + path, headers=headers, json=body, timeout=30)


def _eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "did not happen in time"
        time.sleep(0.1)


def _instance_url(a: AccessArchive, licence: str) -> str:
    t = a.targets["2d-member"]
    return (f"/licences/{a.licences[licence]}/dicom-web/studies/{t.study}/series/{t.series}"
            f"/instances/{t.sop}/metadata")


def test_suspending_and_reinstating_a_licence_takes_effect_within_seconds(
    archive: AccessArchive,
) -> None:
    a = archive
    url = _instance_url(a, "L1")
    assert _call(a, "r1L1", "GET", url).status_code == 200
    r = _call(a, "admin", "POST", f"/api/v1/admin/licences/{a.licences['L1']}/state",
              {"state": "suspended"})
    assert r.status_code == 200 and r.json()["state"] == "suspended"
    _eventually(lambda: _call(a, "r1L1", "GET", url).status_code == 404)
    _call(a, "admin", "POST", f"/api/v1/admin/licences/{a.licences['L1']}/state",
          {"state": "active"})
    _eventually(lambda: _call(a, "r1L1", "GET", url).status_code == 200)


def test_an_expired_licence_stops_working(archive: AccessArchive) -> None:
    a = archive
    url = _instance_url(a, "L1")
    assert _call(a, "r1", "GET", url).status_code == 200
    with a.services.write_sessions.begin() as s:
        s.execute(update(Licence).where(Licence.pk == a.licences["L1"])
                  .values(ends=date.today() - timedelta(days=1)))
    try:
        _eventually(lambda: _call(a, "r1", "GET", url).status_code == 404)
        shown = _call(a, "admin", "GET", f"/api/v1/admin/licences/{a.licences['L1']}").json()
        assert shown["state"] == "expired"
    finally:
        with a.services.write_sessions.begin() as s:
            s.execute(update(Licence).where(Licence.pk == a.licences["L1"])
                      .values(ends=date.today() + timedelta(days=30)))


def test_tokens_users_and_licences_through_the_admin_api(archive: AccessArchive) -> None:
    a = archive
    r = _call(a, "admin", "POST", "/api/v1/admin/users",
              {"email": "New@Lab.example", "role": "researcher", "organisation": "Lab"})
    assert r.status_code == 201 and r.json()["email"] == "new@lab.example"
    assert _call(a, "admin", "POST", "/api/v1/admin/users",
                 {"email": "new@lab.example", "role": "researcher"}).status_code == 400
    assert _call(a, "admin", "POST", "/api/v1/admin/users",
                 {"email": "x@lab.example", "role": "owner"}).status_code == 400
    lic = _call(a, "admin", "POST", "/api/v1/admin/licences", {
        "title": "New study", "cohort_id": a.cohorts["C"], "scopes": ["3d"],
        "ends": (date.today() + timedelta(days=10)).isoformat(), "members": ["new@lab.example"],
    })
    assert lic.status_code == 201, lic.text
    doc = lic.json()
    assert doc["scopes"] == ["3d"] and doc["state"] == "active"
    assert doc["cohort_version"] == 1 and doc["members"] == ["new@lab.example"]
    bad = _call(a, "admin", "POST", "/api/v1/admin/licences", {
        "title": "x", "cohort_id": a.cohorts["C"], "scopes": ["everything"], "ends": "2030-01-01"
    })
    assert bad.status_code == 400 and "unknown data scope" in bad.json()["error"]
    made = _call(a, "admin", "POST", "/api/v1/admin/tokens",
                 {"user": "new@lab.example", "licence_id": doc["id"]})
    assert made.status_code == 201
    secret = made.json()["token"]
    assert secret.startswith("omi_") and len(secret) >= 47  # 256 random bits
    listed = _call(a, "admin", "GET", "/api/v1/admin/tokens?user=new@lab.example").json()
    assert [t["prefix"] for t in listed] == [secret[:12]]
    assert secret not in json.dumps(listed)
    t = a.targets["3d-member"]
    url = (f"/licences/{doc['id']}/dicom-web/studies/{t.study}/series/{t.series}"
           f"/instances/{t.sop}/metadata")
    assert _call(a, secret, "GET", url).status_code == 200
    tokens_url = "/api/v1/admin/tokens?user=new@lab.example"
    _eventually(lambda: bool(_call(a, "admin", "GET", tokens_url).json()[0]["last_used_at"]))
    # Revoking the token: 401 at once in this process.
    revoke = f"/api/v1/admin/tokens/{secret[:12]}/revoke"
    assert _call(a, "admin", "POST", revoke).status_code == 200
    r = _call(a, secret, "GET", url)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    # Disabling a user revokes every token they hold.
    second = _call(a, "admin", "POST", "/api/v1/admin/tokens",
                   {"user": "new@lab.example"}).json()["token"]
    assert _call(a, second, "GET", "/api/v1/access-requests").status_code == 200
    disable = "/api/v1/admin/users/new@lab.example/disable"
    assert _call(a, "admin", "POST", disable).status_code == 200
    assert _call(a, second, "GET", "/api/v1/access-requests").status_code == 401
    tokens = _call(a, "admin", "GET", tokens_url).json()
    assert all(t["revoked"] for t in tokens)


def test_a_data_access_request_becomes_a_licence(archive: AccessArchive) -> None:
    a = archive
    form = {
        "title": "Interval cancer detection",
        "technical_summary": "Train a detector on priors of interval cancers.",
        "lay_summary": "Find cancers that screening missed.",
        "patient_benefit": "Earlier detection.",
        "data_types": ["2d", "clinical"],
        "organisation": "Lab",
        "cohort_id": a.cohorts["C"],
    }
    assert _call(a, "r2", "POST", "/api/v1/access-requests", {"title": "x"}).status_code == 400
    r = _call(a, "r2", "POST", "/api/v1/access-requests", form)
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["state"] == "submitted" and req["applicant"] == "r2@lab.example"
    # Applicants see their own requests only; the committee's decision is admin-only.
    assert _call(a, "r1", "GET", f"/api/v1/access-requests/{req['id']}").status_code == 404
    decision = {"decision": "more-information", "reason": "Describe the readers."}
    assert _call(a, "r2", "POST", f"/api/v1/access-requests/{req['id']}/decisions",
                 decision).status_code == 403
    r = _call(a, "admin", "POST", f"/api/v1/access-requests/{req['id']}/decisions", decision)
    assert r.status_code == 201 and r.json()["state"] == "more-information"
    r = _call(a, "admin", "POST", f"/api/v1/access-requests/{req['id']}/decisions",
              {"decision": "approved", "reason": "", "cohort_id": a.cohorts["C"]})
    assert r.status_code == 400  # a decision needs a reason
    r = _call(a, "admin", "POST", f"/api/v1/access-requests/{req['id']}/decisions",
              {"decision": "approved", "reason": "Sound and beneficial."})
    assert r.status_code == 201, r.text
    done = r.json()
    assert done["state"] == "approved"
    assert [d["decision"] for d in done["decisions"]] == ["more-information", "approved"]
    licence_id = done["decisions"][-1]["licence_id"]
    lic = _call(a, "admin", "GET", f"/api/v1/admin/licences/{licence_id}").json()
    assert lic["scopes"] == ["2d", "clinical"] and lic["members"] == ["r2@lab.example"]
    starts, ends = date.fromisoformat(lic["starts"]), date.fromisoformat(lic["ends"])
    assert (ends - starts).days in range(3 * 365 - 1, 3 * 365 + 2)  # three years
    assert "Lay summary" in lic["purpose"]
    # r2 now holds L2 and the new licence: the new root serves 2D members.
    _eventually(lambda: _call(a, "r2", "GET", _instance_url(a, "L1").replace(
        f"/licences/{a.licences['L1']}/", f"/licences/{licence_id}/")).status_code == 200)
    again = _call(a, "admin", "POST", f"/api/v1/access-requests/{req['id']}/decisions",
                  {"decision": "rejected", "reason": "late"})
    assert again.status_code == 400


def test_audit_trail_is_append_only_and_mirrored_to_a_file(archive: AccessArchive) -> None:
    a = archive
    assert _call(a, "r1L1", "GET", _instance_url(a, "L1")).status_code in (200, 404)
    audit = a.services.audit
    assert audit is not None
    audit.flush()
    lines = audit.path.read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["door"] == "http" and last["user_email"] == "r1@lab.example"
    assert oct(audit.path.stat().st_mode & 0o777) == "0o600"
    for statement in ("UPDATE audit_event SET outcome = 'allowed'", "DELETE FROM audit_event"):
        with pytest.raises(DBAPIError), a.services.write_sessions.begin() as s:
            s.execute(text(statement))
    events = _call(a, "admin", "GET", "/api/v1/admin/audit?user=r1@lab.example&limit=5").json()
    assert events and all(e["user_email"] == "r1@lab.example" for e in events)
    assert _call(a, "admin", "GET", "/api/v1/admin/audit?since=yesterday").status_code == 400
