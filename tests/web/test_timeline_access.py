"""A client's timeline shows what her licence's DICOMweb root shows, and no more.

Through the real server, on SQLite and PostgreSQL, with the access fixture
(:mod:`tests.web.access_fixture`): licence L1 grants 2D, marks and clinical data on
cohort C (studies 1 and 2). Member P001 also gets a study 5 outside the cohort version;
her cohort study 1 holds a for-processing image, which L1 does not grant, and no DBT. A
researcher's timeline lists only her cohort studies, and counts only the instances of
the data types her licence grants; an admin's lists everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pydicom
import pytest
import requests

from tests.query.archive import ORIGIN, uid
from tests.web.access_fixture import AccessArchive, build_for

pytestmark = pytest.mark.slow

L1_KINDS = {"2d", "marks"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AccessArchive]:
    for a in build_for(request, tmp_path_factory, "timeline"):
        # A later study of member P001, outside cohort C's frozen version.
        root = a.services.settings.storage.root.parent  # where the fixture wrote its files
        ds = pydicom.dcmread(root / "1.1.1.dcm")
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("5"), uid("5.1")
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid("5.1.1")
        ds.save_as(root / "5.1.1.dcm")
        a.services.pipeline.ingest_file(root / "5.1.1.dcm", ORIGIN)
        yield a


def _timeline(a: AccessArchive, who: str, client: str) -> dict[str, Any]:
    response = requests.get(
        f"{a.base}/api/v1/clients/{requests.utils.quote(client, safe='')}/timeline",
        headers=a.headers(who),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def _studies(timeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    studies = list(timeline["unlinked_studies"])
    for episode in timeline["episodes"]:
        studies += episode["studies"]
    return {s["study_uid"]: s for s in studies}


def test_an_admin_sees_every_study_and_instance(archive: AccessArchive) -> None:
    studies = _studies(_timeline(archive, "admin", "P001"))
    assert set(studies) == {uid("1"), uid("5")}
    assert studies[uid("1")]["instances"] == sum(
        1 for o in archive.objects if o.study == uid("1")
    )


def test_a_researcher_sees_only_her_cohort_studies(archive: AccessArchive) -> None:
    studies = _studies(_timeline(archive, "r1L1", "P001"))
    assert set(studies) == {uid("1")}
    assert studies[uid("1")]["instances"] == sum(
        1 for o in archive.objects if o.study == uid("1") and o.kind in L1_KINDS
    )


def test_counts_cover_only_the_granted_data_types(archive: AccessArchive) -> None:
    everything = _studies(_timeline(archive, "admin", "P001"))[uid("1")]
    seen = _studies(_timeline(archive, "r1L1", "P001"))[uid("1")]
    # Study 1 holds a for-processing image, which L1 does not grant.
    assert seen["instances"] < everything["instances"]
    assert seen["has_2d"] is True and seen["has_3d"] is False
