"""The change feed through the running archive: every kind of change, in order, over
``GET /api/v1/changes`` and ``omipacs changes``, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from omipacs.index.db import make_engine, make_sessionmaker
from omipacs.index.models import Instance
from tests.clinical.records import minimal_record
from tests.conftest import ServerProcess, make_settings, run_cli, start_server
from tests.withdrawal.builders import NHS_A, NHS_B, c_store, mammo, stow, write


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[ServerProcess]:
    srv = start_server(make_settings(tmp_path, db_url), tmp_path)
    yield srv
    srv.stop()


def _api(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.settings.http.port}/api/v1"


def _changes(server: ServerProcess, **params: Any) -> dict[str, Any]:
    r = requests.get(f"{_api(server)}/changes", params=params, timeout=30)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def test_every_change_is_in_the_feed_in_order(server: ServerProcess, tmp_path: Path) -> None:
    assert _changes(server)["changes"] == []
    # Stored through each door: C-STORE from a site, STOW-RS, omipacs import.
    assert c_store(server.dimse_port, "SITE_A", mammo(NHS_A, 1))[0] == 0
    code, doc = stow(server.base_url, mammo(NHS_B, 2))
    assert code == 200, doc
    imported = run_cli(server.settings, tmp_path, "import", "--source", "SITE_B", "--json",
                       str(write(tmp_path / "in" / "a2.dcm", mammo(NHS_A, 3, laterality="R"))))
    assert imported.returncode == 0, imported.stderr
    feed = _changes(server)["changes"]
    assert [c["kind"] for c in feed] == ["instance-stored"] * 3
    assert [c["seq"] for c in feed] == sorted(c["seq"] for c in feed)
    client_a, client_b, client_a2 = (c["client_id"] for c in feed)
    assert client_a == client_a2 != client_b and client_a.startswith("OPTM")
    for c in feed:
        assert {"study_instance_uid", "series_instance_uid", "sop_instance_uid"} <= set(c)
    uids = {c["sop_instance_uid"] for c in feed}
    for c in feed:  # the UIDs are the stored (de-identified) ones
        r = requests.get(f"{server.base_url}/instances",
                         params={"SOPInstanceUID": c["sop_instance_uid"]}, timeout=30)
        assert r.status_code == 200 and len(r.json()) == 1

    # A clinical record, then marks on an image of client A.
    r = requests.post(f"{_api(server)}/clinical", json=minimal_record(NHS_A), timeout=30)
    assert r.status_code == 200, r.text
    sop = feed[0]["sop_instance_uid"]
    r = requests.post(f"{_api(server)}/marks", timeout=60,
                      json=[{"X1": 2, "Y1": 2, "X2": 9, "Y2": 9, "SOPInstanceUID": sop,
                             "StudyInstanceUID": feed[0]["study_instance_uid"],
                             "SeriesInstanceUID": feed[0]["series_instance_uid"]}])
    assert r.status_code == 200, r.text
    # An instance taken out of the index by verify --repair (its bytes went missing).
    engine = make_engine(server.settings.database_url)
    with make_sessionmaker(engine)() as session:
        key = session.scalar(select(Instance.blob_key).where(
            Instance.sop_instance_uid == feed[1]["sop_instance_uid"]))
    engine.dispose()
    assert key is not None
    next(p for p in (server.settings.storage.root / "blobs").rglob(key)).unlink()
    repaired = run_cli(server.settings, tmp_path, "verify", "--repair", "--json")
    assert json.loads(repaired.stdout)["repaired"], repaired.stderr

    doc = _changes(server, since=feed[-1]["seq"])
    kinds = [c["kind"] for c in doc["changes"]]
    assert kinds == ["clinical-changed", "instance-stored", "marks-changed", "instance-deleted"]
    clinical, sr, marks, deleted = doc["changes"]
    assert clinical["client_id"] == client_a and "study_instance_uid" not in clinical
    assert sr["client_id"] == marks["client_id"] == client_a
    assert marks["sop_instance_uid"] == sr["sop_instance_uid"] not in uids
    assert marks["study_instance_uid"] == feed[0]["study_instance_uid"]
    assert deleted["sop_instance_uid"] == feed[1]["sop_instance_uid"]
    assert deleted["client_id"] == client_b
    assert doc["next"] == deleted["seq"] == doc["current"] and doc["more"] is False

    # Paging: since/limit walk the same events; the CLI prints the same feed.
    everything = _changes(server, limit=100)["changes"]
    walked, cursor = [], 0
    while True:
        page = _changes(server, since=cursor, limit=2)
        walked += page["changes"]
        cursor = page["next"]
        if not page["more"]:
            break
    assert walked == everything and len(everything) == 7
    cli = run_cli(server.settings, tmp_path, "changes", "--since", "0", "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["changes"] == everything
    table = run_cli(server.settings, tmp_path, "changes", "--since", str(everything[3]["seq"]))
    assert table.returncode == 0 and "marks-changed" in table.stdout


def test_bad_cursor_is_a_400_with_a_reason(tmp_path: Path) -> None:
    srv = start_server(make_settings(tmp_path), tmp_path)
    try:
        for name, value in (("since", "-1"), ("since", "x"), ("limit", "0"),
                            ("limit", "10001"), ("since", "1e3"),
                            ("since", "99999999999999999999")):
            r = requests.get(f"{_api(srv)}/changes", params={name: value}, timeout=30)
            assert r.status_code == 400, (name, value, r.text)
            assert name in r.json()["error"]
            cli = run_cli(srv.settings, tmp_path, "changes", f"--{name}", value)
            assert cli.returncode == 1 and name in cli.stderr, cli.stderr
        assert requests.get(f"{_api(srv)}/changes?limit=", timeout=30).status_code == 200
    finally:
        srv.stop()
