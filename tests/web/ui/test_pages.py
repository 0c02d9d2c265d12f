"""The dashboard's pages over the real server: what each role sees, and nothing more.

Researcher r1 holds L1 (2d, marks, clinical) and L2 (3d) on cohort C (clients P001 and
``' OR 1=1--``, studies 1 and 2); X_1 and XA1 (studies 3 and 4) are outside it.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import pytest
import requests
from sqlalchemy import select

from omipacs.clinical.models import Client
from omipacs.cohorts.models import Cohort
from omipacs.web import auth
from omipacs.web.app import create_app
from tests.query.archive import uid
from tests.web.access_fixture import AccessArchive
from tests.web.ui.conftest import csrf_of, sign_in

OUTSIDE_CLIENTS = ("X_1", "XA1")
CHARTS = ("2d", "3d", "marked", "age", "year", "manufacturer", "density", "lesion-types",
          "grades")


def _thumb(archive: AccessArchive, target: str, licence: int | None = None) -> str:
    t = archive.targets[target]
    query = f"?licence={licence}" if licence is not None else ""
    return f"{archive.base}/ui/images/{t.study}/{t.series}/{t.sop}/thumbnail{query}"


def _pages(archive: AccessArchive) -> list[str]:
    """Every page and fragment a researcher can reach, with the links on them."""
    cohort_c = archive.cohorts["C"]
    return [
        "/ui/", "/ui/clients", "/ui/cohorts/saved", f"/ui/cohorts/{cohort_c}",
        f"/ui/clients/{quote('P001')}", f"/ui/clients/{quote(' OR 1=1--')}",
        *(f"/ui/charts/{name}" for name in CHARTS),
        *(f"/ui/charts/{name}.csv" for name in CHARTS),
    ]


def test_every_dashboard_endpoint_is_in_the_access_table(archive: AccessArchive) -> None:
    app = create_app(archive.services)
    endpoints = {r.endpoint for r in app.url_map.iter_rules() if r.endpoint.startswith("ui.")}
    assert {"ui.overview", "ui.cohort_builder", "ui.client", "ui.thumbnail"} <= endpoints
    assert all(auth.action_for(e) is not None for e in endpoints), endpoints


def test_a_researcher_never_sees_a_non_member_client(archive: AccessArchive) -> None:
    browser = sign_in(archive, "r1")
    with archive.services.sessions() as s:
        everyone = set(s.scalars(select(Client.client_id)))
    assert "X_1" in everyone  # a client row outside the licence (XA1 has images only)
    hidden = (*OUTSIDE_CLIENTS, uid("3"), uid("4"))
    seen = 0
    for path in _pages(archive):
        for licence in (None, archive.licences["L1"]):
            r = browser.get(archive.base + path, params={"licence": licence} if licence else {},
                            timeout=30)
            text = html.unescape(r.text)
            assert not [h for h in hidden if h in text], (path, r.status_code)
            seen += r.status_code == 200
    assert seen >= len(_pages(archive))  # the pages were shown, not refused
    # The member's page shows her studies' views (through the licence), with her marks.
    page = browser.get(f"{archive.base}/ui/clients/P001", timeout=30).text
    assert "data-marks=" in page and f"?licence={archive.licences['L1']}" in page


def test_a_non_member_clients_pages_are_not_found(archive: AccessArchive) -> None:
    browser = sign_in(archive, "r1")
    for cid in OUTSIDE_CLIENTS + ("no-such-client",):
        r = browser.get(f"{archive.base}/ui/clients/{quote(cid)}", timeout=30)
        assert r.status_code == 404 and cid not in r.text.replace(quote(cid), "")
    # The same answer as the JSON API gives the same researcher.
    api = requests.get(f"{archive.base}/api/v1/clients/X_1/timeline",
                       headers=archive.headers("r1L1"), timeout=30)
    assert api.status_code == 404
    # Cohort D is not one of r1's licences.
    assert browser.get(f"{archive.base}/ui/cohorts/{archive.cohorts['D']}",
                       timeout=30).status_code == 404


def test_images_come_through_the_licence(archive: AccessArchive) -> None:
    browser = sign_in(archive, "r1")
    l1, l2 = archive.licences["L1"], archive.licences["L2"]
    r = browser.get(_thumb(archive, "2d-member", l1), timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    assert browser.get(_thumb(archive, "2d-outside", l1), timeout=30).status_code == 404
    # L1 has no 3D scope; L2 has; the suspended L3 is no licence at all.
    assert browser.get(_thumb(archive, "3d-member", l1), timeout=30).status_code == 404
    assert browser.get(_thumb(archive, "3d-member", l2), timeout=30).status_code == 200
    l3 = archive.licences["L3"]
    assert browser.get(_thumb(archive, "2d-member", l3), timeout=30).status_code == 404
    # r2 holds only L2.
    other = sign_in(archive, "r2")
    assert other.get(_thumb(archive, "2d-member", l1), timeout=30).status_code == 404


def test_licence_scopes_decide_what_a_page_shows(archive: AccessArchive) -> None:
    browser = sign_in(archive, "r1")
    # L2 (3d only) has no clinical data: no statistics, no timeline. The overview, where
    # signing in lands, goes on to the first page she may open; the menu offers neither.
    l2 = archive.licences["L2"]
    landed = browser.get(f"{archive.base}/ui/", params={"licence": l2}, allow_redirects=False,
                         timeout=30)
    assert landed.status_code == 303
    assert landed.headers["Location"].endswith("/ui/cohorts/saved")
    saved = browser.get(f"{archive.base}/ui/cohorts/saved", timeout=30)
    assert saved.status_code == 200
    assert f'<option value="{l2}" selected>' in saved.text
    assert 'href="/ui/clients"' not in saved.text
    assert ">Overview</a>" not in saved.text
    assert browser.get(f"{archive.base}/ui/charts/2d", timeout=30).status_code == 404
    assert browser.get(f"{archive.base}/ui/clients", timeout=30).status_code == 404
    # The choice is remembered: back to L1 explicitly.
    l1 = archive.licences["L1"]
    page = browser.get(f"{archive.base}/ui/", params={"licence": l1}, timeout=30)
    assert page.status_code == 200
    assert f'<option value="{l1}" selected>' in page.text
    # Density is not in L1: no density chart.
    assert "chart-density" not in page.text
    assert browser.get(f"{archive.base}/ui/charts/density", timeout=30).status_code == 404
    csv = browser.get(f"{archive.base}/ui/charts/2d.csv", timeout=30)
    assert csv.headers["Content-Type"].startswith("text/csv")
    rows = dict(line.rsplit(",", 1) for line in csv.text.splitlines()[1:])
    assert sum(int(n) for n in rows.values()) == 2  # P001 and ' OR 1=1--, both 2D
    # r2: no licence with clinical data at all; the same landing.
    other = sign_in(archive, "r2")
    landed = other.get(f"{archive.base}/ui/", allow_redirects=False, timeout=30)
    assert (landed.status_code, landed.headers["Location"].endswith("/ui/cohorts/saved")) == (
        303, True)
    assert ">Overview</a>" not in other.get(f"{archive.base}/ui/cohorts/saved", timeout=30).text


def test_an_unknown_dashboard_path_is_a_dashboard_page(archive: AccessArchive) -> None:
    # Not signed in: to the login form, coming back to the path afterwards.
    anonymous = requests.get(f"{archive.base}/ui/no/such/page", allow_redirects=False,
                             timeout=30)
    assert anonymous.status_code == 303
    assert "/ui/login?next=" in anonymous.headers["Location"]
    # Signed in: the dashboard's own 404 page, in HTML, with its menu.
    browser = sign_in(archive, "r1")
    page = browser.get(f"{archive.base}/ui/no/such/page", timeout=30)
    assert page.status_code == 404
    assert page.headers["Content-Type"].startswith("text/html")
    assert "no such page" in page.text
    assert 'href="/ui/cohorts/saved"' in page.text
    # The assets and the JSON API keep their own answers.
    assert requests.get(f"{archive.base}/ui/static/ui/none.js", timeout=30).status_code == 404


def test_the_cohort_builder_is_for_curators(archive: AccessArchive) -> None:
    researcher = sign_in(archive, "r1")
    assert researcher.get(f"{archive.base}/ui/cohorts", timeout=30).status_code == 403
    page = researcher.get(f"{archive.base}/ui/", timeout=30)
    r = researcher.post(f"{archive.base}/ui/cohorts",
                        data={"name": "mine", "csrf_token": csrf_of(page.text)},
                        allow_redirects=False, timeout=30)
    assert r.status_code == 403

    curator = sign_in(archive, "curator")
    live = curator.get(f"{archive.base}/ui/cohorts/results",
                       params={"outcome": "M", "dim": "2D"}, timeout=30)
    assert live.status_code == 200
    assert re.search(r'data-clients="1"', live.text) and "P001" in live.text
    bad = curator.get(f"{archive.base}/ui/cohorts/results", params={"outcome": "nonsense"},
                      timeout=30)
    assert bad.status_code == 200 and 'role="alert"' in bad.text
    form = {"outcome": "M", "dim": "2D", "name": "ui-saved", "description": "from a test"}
    r = curator.post(f"{archive.base}/ui/cohorts", data=form, allow_redirects=False, timeout=30)
    assert r.status_code == 403  # no CSRF token
    token = csrf_of(live.text if "csrf-token" in live.text else
                    curator.get(f"{archive.base}/ui/cohorts", timeout=30).text)
    ids = []
    for _ in range(2):
        r = curator.post(f"{archive.base}/ui/cohorts", data={**form, "csrf_token": token},
                         allow_redirects=False, timeout=30)
        assert r.status_code == 303, r.text
        ids.append(int(re.findall(r"/ui/cohorts/(\d+)", r.headers["Location"])[0]))
    with archive.services.sessions() as s:
        saved = s.scalars(select(Cohort).where(Cohort.pk.in_(ids)).order_by(Cohort.pk)).all()
    assert [c.version for c in saved] == [1, 2] and all(c.client_count == 1 for c in saved)
    shown = curator.get(f"{archive.base}/ui/cohorts/{ids[1]}", timeout=30)
    assert "version 2" in shown.text and "from a test" in shown.text


@pytest.mark.parametrize("path", ["/ui/", "/ui/cohorts", "/ui/clients/P001", "/ui/charts/age"])
def test_without_authentication_the_dashboard_just_works(
    archive: AccessArchive, path: str
) -> None:
    import dataclasses

    from omipacs.config import AuthSettings
    from omipacs.services import Services

    settings = dataclasses.replace(archive.services.settings, auth=AuthSettings(mode="none"))
    services = Services.create(settings)
    try:
        client = create_app(services).test_client()
        assert client.get(path).status_code == 200
        login = client.get("/ui/login")
        assert login.status_code == 303 and login.headers["Location"] == "/ui/"
    finally:
        services.close()
