"""Clinical import through the running archive (issue 14, item 8): identifiers that may
embed the NHS number are pseudonymised and unmodelled fields are dropped, in storage,
responses and logs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from omipacs.deid.keys import load_keys
from omipacs.deid.pseudonyms import client_pseudonym, episode_pseudonym
from tests.clinical.records import NHS_NUMBER, minimal_record
from tests.conftest import ServerProcess, make_settings, start_server

pytestmark = pytest.mark.slow

PLANTED = (NHS_NUMBER, "999 000 0018", "CANARYGP", "CANARYRAD", "Canary Ward", "G81234")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(make_settings(tmp_path), tmp_path)
    yield srv
    srv.stop()


def _hits(blob: bytes) -> list[str]:
    return [t for t in PLANTED if t.lower().encode() in blob.lower()]


def test_import_keeps_no_identifier(server: ServerProcess) -> None:
    record = minimal_record()
    episode = record.pop("1")
    episode["GPName"] = "Dr CANARYGP"  # unmodelled: dropped
    episode["Radiographer"] = "CANARYRAD"
    episode["ClinicLocation"] = "Canary Ward"
    episode["ReferralSource"] = "SCR"  # unmodelled but allow-listed: kept
    record[f"{NHS_NUMBER}-2016"] = episode  # an episode ID built from the NHS number
    record["GPPracticeCode"] = "G81234"
    api = server.base_url.removesuffix(server.settings.http.base_path) + "/api/v1"
    r = requests.post(f"{api}/clinical", json=record, timeout=60)
    assert r.status_code == 200, r.text
    assert _hits(r.content) == []

    keys = load_keys(server.settings.deid)
    client = client_pseudonym(keys, NHS_NUMBER, "", "").client_id
    timeline = requests.get(f"{api}/clients/{client}/timeline", timeout=30)
    assert timeline.status_code == 200, timeline.text
    assert _hits(timeline.content) == []
    (shown,) = timeline.json()["episodes"]
    assert shown["nbss_episode_id"] == episode_pseudonym(keys, client, f"{NHS_NUMBER}-2016")

    for path in server.settings.storage.root.rglob("*"):
        if path.is_file():
            assert _hits(path.read_bytes()) == [], path
    assert _hits("".join(server.log).encode()) == []
