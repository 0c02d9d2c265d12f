"""Moving a licence to a newer version of its cohort over the admin API (real server,
SQLite and PostgreSQL): only an admin may, only to a newer version of the same cohort,
and the licence root then serves the new version's studies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import requests

from omipacs.access import admin
from omipacs.cohorts.models import Cohort, CohortMember
from tests.query.archive import uid
from tests.web.access_fixture import AccessArchive, build_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AccessArchive]:
    yield from build_for(request, tmp_path_factory, "rebind")


def _post(a: AccessArchive, token: str, path: str, body: object) -> requests.Response:
    return requests.post(a.base + path, json=body, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})


def _studies(a: AccessArchive, token: str, licence: int) -> set[str]:
    r = requests.get(f"{a.base}/licences/{licence}/dicom-web/studies", timeout=30,
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status_code in (200, 204), r.text
    return {s["0020000D"]["Value"][0] for s in (r.json() if r.status_code == 200 else [])}


def test_a_licence_moves_to_a_newer_version_of_its_cohort(archive: AccessArchive) -> None:
    a = archive
    with a.services.write_sessions.begin() as s:
        # Version 2 of cohort C also holds study 4 (client XA1).
        members = (("P001", "1"), ("' OR 1=1--", "2"), ("XA1", "4"))
        v2 = Cohort(name="C", version=2, definition={}, definition_sha256="2" * 64,
                    members_sha256="2" * 64, client_count=3, study_count=3)
        s.add(v2)
        s.flush()
        for client, study in members:
            s.add(CohortMember(cohort_pk=v2.pk, client_id=client,
                               study_instance_uid=uid(study)))
        # A licence of this test's own on version 1, and a token bound to it.
        lic = admin.create_licence(s, title="rebind", cohort_id=a.cohorts["C"], scopes="2d",
                                   ends=date.today() + timedelta(days=30),
                                   members=["r2@lab.example"])
        researcher, _ = admin.create_token(s, "r2@lab.example", licence_id=lic.id)
        v2_pk = v2.pk
    path = f"/api/v1/admin/licences/{lic.id}/cohort"
    assert _studies(a, researcher, lic.id) == {uid("1"), uid("2")}

    # Only an admin; a body that names no cohort, another cohort or an unknown one is
    # refused with a reason.
    assert _post(a, researcher, path, {"cohort_id": v2_pk}).status_code == 403
    assert _post(a, a.tokens["curator"], path, {"cohort_id": v2_pk}).status_code == 403
    bad = _post(a, a.tokens["admin"], path, {"cohort_id": "2"})
    assert (bad.status_code, "cohort_id" in bad.json()["error"]) == (400, True)
    other = _post(a, a.tokens["admin"], path, {"cohort_id": a.cohorts["D"]})
    assert (other.status_code, "'C'" in other.json()["error"]) == (400, True)
    assert _post(a, a.tokens["admin"], path, {"cohort_id": 10**9}).status_code == 404

    moved = _post(a, a.tokens["admin"], path, {"cohort_id": v2_pk})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["cohort_id"], moved.json()["cohort_version"]) == (v2_pk, 2)
    # Never back, nor to the same version again.
    again = _post(a, a.tokens["admin"], path, {"cohort_id": v2_pk})
    assert (again.status_code, "newer" in again.json()["error"]) == (400, True)
    back = _post(a, a.tokens["admin"], path, {"cohort_id": a.cohorts["C"]})
    assert back.status_code == 400

    # The licence root serves version 2 once the access cache has turned over.
    deadline = time.monotonic() + 30
    while _studies(a, researcher, lic.id) != {uid("1"), uid("2"), uid("4")}:
        assert time.monotonic() < deadline, "the licence root still serves version 1"
        time.sleep(0.2)
