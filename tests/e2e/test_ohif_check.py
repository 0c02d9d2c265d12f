"""Pure helpers of the OHIF check: no browser, so these run in every test session."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.ohif_check import (
    CONFIG_TEMPLATE,
    app_config,
    request_profile,
    route_of,
)

ROOT = "http://127.0.0.1:8042/dicom-web"
S, SE, SOP = "2.25.1", "1.2.826.0.1.3680043.2", "2.25.33"


def test_docs_config_is_pointed_at_the_archive() -> None:
    text = app_config("http://archive.example:9000/dicom-web/")
    assert "const OMIPACS_DICOMWEB = 'http://archive.example:9000/dicom-web';" in text
    assert text.count("OMIPACS_DICOMWEB") == CONFIG_TEMPLATE.read_text().count("OMIPACS_DICOMWEB")


@pytest.mark.parametrize(
    ("url", "route"),
    [
        (f"{ROOT}/studies?limit=101&offset=0", "/studies?limit&offset"),
        (
            f"{ROOT}/studies/{S}/series?includefield=0008103E",
            "/studies/{study}/series?includefield",
        ),
        (f"{ROOT}/studies/{S}/series/{SE}/metadata", "/studies/{study}/series/{series}/metadata"),
        (
            f"{ROOT}/studies/{S}/series/{SE}/instances/{SOP}/frames/1,2",
            "/studies/{study}/series/{series}/instances/{instance}/frames/{n}",
        ),
        (f"{ROOT}", "/"),
    ],
)
def test_routes_abstract_uids_and_frames(url: str, route: str) -> None:
    assert route_of(url, ROOT) == route


def _request(url: str, status: int | None, failure: str | None = None) -> dict[str, Any]:
    return {
        "method": "GET",
        "url": url,
        "requestHeaders": {"accept": "application/dicom+json"},
        "status": status,
        "failure": failure,
        "responseHeaders": {"content-type": "multipart/related; boundary=abc; type=x"}
        if status
        else None,
    }


def test_profile_groups_by_route_and_counts_outcomes() -> None:
    profile = request_profile(
        [
            _request(f"{ROOT}/studies/{S}/series/{SE}/metadata", 200),
            _request(f"{ROOT}/studies/{S}/series/{SE}9/metadata", 404),
            _request(f"{ROOT}/studies", None, "net::ERR_FAILED"),
        ],
        ROOT,
    )
    assert [(g["route"], g["count"], g["status"]) for g in profile] == [
        ("/studies/{study}/series/{series}/metadata", 2, {"200": 1, "404": 1}),
        ("/studies", 1, {"net::ERR_FAILED": 1}),
    ]
    assert profile[0]["contentType"] == {"multipart/related; type=x": 2}
