"""The access matrix: roles × doors × member / non-member × scope × token state.

Every case is a real HTTP request to the archive on a real socket, on SQLite and on
PostgreSQL. The expected answer comes from the rules as the issue states them, written
out here independently of :mod:`omipacs.access.policy`:

* no, malformed, unknown, expired or revoked token: 401 with ``WWW-Authenticate``;
* admins and curators read the whole archive on ``/dicom-web``; researchers get 403
  there and read only through ``/licences/{id}/dicom-web``;
* through a licence root, an object exists only if its study is in the licence's
  cohort and its data type is among the licence's scopes (404 otherwise, and QIDO
  answers without it); a licence the caller may not use (not a member, a token bound
  to another licence, suspended) is 404 as a whole;
* the JSON API: admin endpoints for admins only, ingest for admins and curators (403
  otherwise); a researcher's stats, marks and timelines need the licence's clinical or
  marks scope and a member client (404 otherwise).

Beyond the status, every 200 answer to a researcher, or through a licence root, is
scanned for the UIDs and client IDs it must not contain (0 leaks), and every case
must be in the audit trail, in order, with its status and outcome.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from omipacs.access.audit import query_events
from tests.web.access_fixture import AccessArchive, Target, build_for

pytestmark = pytest.mark.slow

LICENCE_SCOPES = {
    "L1": {"2d", "marks", "clinical"},
    "L2": {"3d"},
    "L3": {"2d", "for-processing", "3d", "marks", "clinical", "density"},
}
#: Which licences each token may use (members, in force, bound tokens to theirs only).
USABLE = {
    "r1": {"L1", "L2"},
    "r1L1": {"L1"},
    "r1L2": {"L2"},
    "r1L3": set(),  # bound to a suspended licence
    "r2": {"L2"},
}
INVALID = ("none", "malformed", "expired", "revoked")
CURATION = ("admin", "curator")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AccessArchive]:
    yield from build_for(request, tmp_path_factory, "access")


@dataclass(frozen=True)
class Case:
    """One request and what must come back."""

    who: str
    method: str
    path: str
    expect: int
    visible: Target | None = None
    """For 200 answers that must name this target (QIDO) or be it (WADO)."""
    hidden: tuple[str, ...] = ()
    """Strings the body must not contain."""
    body: bytes | None = None
    content_type: str = ""


IMAGE_DOORS = (
    ("qido-study", "/studies?StudyInstanceUID={study}", True),
    ("qido-series", "/studies/{study}/series?SeriesInstanceUID={series}", True),
    ("qido-instance", "/studies/{study}/series/{series}/instances?SOPInstanceUID={sop}", True),
    ("qido-all-instances", "/instances?SOPInstanceUID={sop}", True),
    ("wado-instance", "/studies/{study}/series/{series}/instances/{sop}", False),
    ("wado-series", "/studies/{study}/series/{series}", False),
    ("metadata-instance", "/studies/{study}/series/{series}/instances/{sop}/metadata", False),
    ("metadata-study", "/studies/{study}/metadata", False),
    ("frames", "/studies/{study}/series/{series}/instances/{sop}/frames/1", False),
    ("bulkdata", "/studies/{study}/series/{series}/instances/{sop}/bulkdata/7FE00010", False),
    ("rendered", "/studies/{study}/series/{series}/instances/{sop}/rendered", False),
    ("thumbnail", "/studies/{study}/series/{series}/instances/{sop}/thumbnail", False),
)
PIXEL_DOORS = {"frames", "bulkdata", "rendered", "thumbnail"}


def _hidden(a: AccessArchive, licence: str | None) -> tuple[str, ...]:
    """What a licence's holder must never see: outside studies, out-of-scope objects."""
    out = {a.clients["outside"], "XA1"}
    out |= {uid for t in a.targets.values() if not t.member for uid in (t.study, t.sop)}
    scopes = LICENCE_SCOPES[licence] if licence else set()
    out |= {t.sop for t in a.targets.values() if t.kind not in scopes}
    return tuple(sorted(out))


def _image_cases(a: AccessArchive) -> list[Case]:
    cases: list[Case] = []
    roots: list[tuple[str, str | None]] = [("/dicom-web", None)] + [
        (f"/licences/{a.licences[name]}/dicom-web", name) for name in ("L1", "L2", "L3")
    ]
    who_all = (*CURATION, "r1", "r1L1", "r1L2", "r1L3", "r2", *INVALID)
    for target in a.targets.values():
        for door, template, is_query in IMAGE_DOORS:
            if door in PIXEL_DOORS and not target.pixels:
                continue
            path = template.format(study=target.study, series=target.series, sop=target.sop)
            for root, licence in roots:
                for who in who_all:
                    if who in INVALID and (licence not in (None, "L1")):
                        continue  # token states once per door on two roots are enough
                    if who in INVALID:
                        cases.append(Case(who, "GET", root + path, 401))
                        continue
                    if licence is None:
                        if who in CURATION:
                            cases.append(Case(who, "GET", root + path, 200, target))
                        else:
                            cases.append(Case(who, "GET", root + path, 403))
                        continue
                    if who not in CURATION and licence not in USABLE[who]:
                        cases.append(Case(who, "GET", root + path, 404))
                        continue
                    seen = target.member and target.kind in LICENCE_SCOPES[licence]
                    hidden = _hidden(a, licence)
                    if door in ("qido-study", "qido-series") and not seen:
                        # The study or series may be visible through another object of
                        # it; the hidden object itself must not be counted or named.
                        seen_parent = None
                        cases.append(Case(who, "GET", root + path, 200, seen_parent, hidden))
                    elif is_query:
                        cases.append(
                            Case(who, "GET", root + path, 200, target if seen else None, hidden)
                        )
                    elif door == "metadata-study":
                        # The study's metadata lists its visible objects only.
                        cases.append(Case(who, "GET", root + path,
                                          200 if _study_visible(a, target, licence) else 404,
                                          target if seen else None, hidden))
                    elif door == "wado-series" and not seen:
                        cases.append(Case(who, "GET", root + path, 404 if not _series_visible(
                            a, target, licence) else 200, None, hidden))
                    else:
                        cases.append(Case(who, "GET", root + path, 200 if seen else 404,
                                          target if seen else None, hidden))
    return cases


def _study_visible(a: AccessArchive, target: Target, licence: str) -> bool:
    return any(
        t.member and t.kind in LICENCE_SCOPES[licence]
        for t in a.objects
        if t.study == target.study
    )


def _series_visible(a: AccessArchive, target: Target, licence: str) -> bool:
    return any(
        t.member and t.kind in LICENCE_SCOPES[licence]
        for t in a.objects
        if t.series == target.series
    )


def _api_cases(a: AccessArchive) -> list[Case]:
    member, outside = a.clients["member"], a.clients["outside"]
    c, d = a.cohorts["C"], a.cohorts["D"]
    # (door, method, path, body, content type, {who: status}); "*" is everyone valid.
    doors: list[tuple[str, str, str, bytes | None, str, dict[str, int]]] = [
        ("stats", "GET", "/api/v1/stats", None, "",
         {"admin": 200, "curator": 200, "r1L1": 200, "r1L2": 404, "r1": 400, "r2": 404,
          "r1L3": 404}),
        ("stats-named", "GET", f"/api/v1/stats?licence={a.licences['L1']}", None, "",
         {"admin": 200, "curator": 200, "r1L1": 200, "r1L2": 404, "r1": 200, "r2": 404,
          "r1L3": 404}),
        ("cohorts", "GET", "/api/v1/cohorts", None, "", {"*": 200}),
        ("cohort-member", "GET", f"/api/v1/cohorts/{c}", None, "",
         {"*": 200, "r1L3": 404}),
        ("cohort-other", "GET", f"/api/v1/cohorts/{d}", None, "",
         {"admin": 200, "curator": 200, "*": 404}),
        ("cohort-query", "GET", "/api/v1/cohorts/query?outcome=M", None, "",
         {"admin": 200, "curator": 200, "*": 403}),
        ("cohort-save", "POST", "/api/v1/cohorts", b"{}", "application/json",
         {"admin": 400, "curator": 400, "*": 403}),
        ("marks", "GET", "/api/v1/marks", None, "",
         {"admin": 200, "curator": 200, "r1L1": 200, "r1": 400, "*": 404}),
        ("study-marks", "GET", f"/api/v1/studies/{a.targets['2d-member'].study}/marks", None, "",
         {"admin": 200, "curator": 200, "r1L1": 200, "r1": 400, "*": 404}),
        ("timeline-member", "GET", f"/api/v1/clients/{member}/timeline", None, "",
         {"admin": 200, "curator": 200, "r1L1": 200, "r1": 400, "*": 404}),
        ("timeline-outside", "GET", f"/api/v1/clients/{outside}/timeline", None, "",
         {"admin": 200, "curator": 200, "r1": 400, "*": 404}),
        ("priors-outside", "GET", f"/api/v1/clients/{outside}/priors", None, "",
         {"admin": 200, "curator": 200, "r1": 400, "*": 404}),
        ("stow", "POST", "/dicom-web/studies", b"{}", "application/json",
         {"admin": 415, "curator": 415, "*": 403}),
        ("clinical", "POST", "/api/v1/clinical", b"[]", "application/json",
         {"admin": 200, "curator": 200, "*": 403}),
        ("admin-users", "GET", "/api/v1/admin/users", None, "", {"admin": 200, "*": 403}),
        ("admin-licences", "GET", "/api/v1/admin/licences", None, "", {"admin": 200, "*": 403}),
        ("admin-tokens", "GET", "/api/v1/admin/tokens", None, "", {"admin": 200, "*": 403}),
        ("admin-audit", "GET", "/api/v1/admin/audit?limit=1", None, "",
         {"admin": 200, "curator": 200, "*": 403}),
        ("requests", "GET", "/api/v1/access-requests", None, "", {"*": 200}),
    ]
    cases: list[Case] = []
    for _door, method, path, body, ctype, table in doors:
        for who in (*CURATION, "r1", "r1L1", "r1L2", "r1L3", "r2", *INVALID):
            if who in INVALID:
                expect = 401
            else:
                expect = table.get(who, table.get("*", 0))
            assert expect, (path, who)
            hidden = () if who in CURATION else _hidden(a, "L1" if who == "r1L1" else None)
            if who in CURATION or path.startswith("/api/v1/cohorts/query"):
                hidden = ()
            cases.append(Case(who, method, path, expect, None, hidden, body, ctype))
    return cases


def _check(a: AccessArchive, session: requests.Session, case: Case) -> str | None:
    """Run one case; a description of what went wrong, or None."""
    headers = a.headers(case.who)
    if case.content_type:
        headers["Content-Type"] = case.content_type
    r = session.request(case.method, a.base + case.path, headers=headers, data=case.body,
                        timeout=60)
    if r.status_code != case.expect:
        return f"{case}: got {r.status_code} {r.content[:200]!r}"
    if r.status_code == 401 and not r.headers.get("WWW-Authenticate", "").startswith("Bearer"):
        return f"{case}: 401 without WWW-Authenticate: Bearer"
    if r.status_code == 200:
        body = r.content
        for value in case.hidden:
            if value.encode() in body:
                return f"LEAK {case}: body contains {value}"
        if case.visible is not None and case.path.split("?")[0].endswith(("s", "metadata")):
            if case.visible.sop.encode() not in body and "SOPInstanceUID" in case.path:
                return f"{case}: answer lacks the visible object"
    return None


def test_access_matrix(archive: AccessArchive) -> None:
    a = archive
    cases = _image_cases(a) + _api_cases(a)
    assert len(cases) >= 210
    assert a.services.audit is not None
    a.services.audit.flush()
    with a.services.sessions() as s:
        already = len(query_events(s, limit=1_000_000))
    problems: list[str] = []
    with requests.Session() as session:
        for case in cases:
            found = _check(a, session, case)
            if found:
                problems.append(found)
    assert not problems, f"{len(problems)} of {len(cases)} cases wrong:\n" + "\n".join(
        problems[:40]
    )
    # Every case is in the audit trail, in order, with its status and outcome. The server
    # process writes its audit events to the index in the background: wait for them.
    deadline = time.monotonic() + 30
    while True:
        with a.services.sessions() as s:
            events = query_events(s, limit=1_000_000)[already:]
        if len(events) >= len(cases) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(events) == len(cases)
    for case, event in zip(cases, events, strict=True):
        assert event.door == "http"
        assert case.path.split("?")[0] in event.resource, (case, event)
        assert event.status == case.expect, (case, event)
        assert event.outcome == ("allowed" if case.expect < 400 else "denied"), (case, event)
        if case.who in INVALID:
            assert event.user_email == ""
        elif case.who in CURATION:
            assert event.user_email == f"{case.who}@a.example"
        else:
            assert event.user_email.endswith("@lab.example")
            assert event.token_prefix and a.tokens[case.who].startswith(event.token_prefix)
        if event.outcome == "denied":
            assert event.reason
    print(f"\n{a.backend}: {len(cases)} access cases, 0 leaks, all audited")
