"""Withdrawal through the running archive, on SQLite and PostgreSQL.

A woman's images arrive from two sites and STOW-RS, with clinical data, marks, a saved
cohort and a quarantined image; she withdraws (by NHS number, through the CLI while the
server runs); then a byte scan of every blob, the index, the identity map, the
quarantine and every response finds none of her pseudonymous UIDs or her client ID, and
later sends for her through every door are refused. A second client is withdrawn by
client ID through the REST endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from omipacs.deid.keys import DeidKeys, load_keys
from omipacs.deid.tombstones import client_key
from omipacs.errors import DimseStatus
from tests.clinical.records import minimal_record
from tests.conftest import ServerProcess, make_settings, run_cli, start_server
from tests.withdrawal.builders import (
    NHS_A,
    NHS_B,
    c_store,
    hits,
    index_bytes,
    mammo,
    stow,
    write,
)


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[ServerProcess]:
    srv = start_server(make_settings(tmp_path, db_url), tmp_path)
    yield srv
    srv.stop()


def _api(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.settings.http.port}/api/v1"


def _get(url: str, **params: Any) -> requests.Response:
    r = requests.get(url, params=params, timeout=60)
    assert r.status_code < 500, r.text
    return r


def _feed(server: ServerProcess) -> list[dict[str, Any]]:
    doc: list[dict[str, Any]] = _get(f"{_api(server)}/changes", limit=10000).json()["changes"]
    return doc


def _traces(client_id: str, feed: list[dict[str, Any]]) -> set[str]:
    """Her client ID and every UID the archive gave her objects."""
    found = {client_id}
    for c in feed:
        if c.get("client_id") == client_id:
            found |= {c[k] for k in ("study_instance_uid", "series_instance_uid",
                                     "sop_instance_uid") if k in c}
    return found


def _storage_bytes(server: ServerProcess) -> dict[str, bytes]:
    """Every file under the storage root but the index, audit trail and key."""
    root = server.settings.storage.root
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith("index.sqlite") and "audit" not in p.parts
    }


def _responses(server: ServerProcess, cohort_ids: list[int]) -> bytes:
    base, api = server.base_url, _api(server)
    out = [
        _get(f"{base}/studies", includefield="all").content,
        _get(f"{base}/instances", includefield="all", limit=1000).content,
        _get(f"{base}/series", includefield="all").content,
        _get(f"{api}/stats").content,
        _get(f"{api}/changes", limit=10000).content,
        _get(f"{api}/marks", limit=10000).content,
        _get(f"{api}/cohorts").content,
        _get(f"{api}/cohorts/query").content,
    ]
    for cid in cohort_ids:
        out.append(_get(f"{api}/cohorts/{cid}").content)
    for study in _get(f"{base}/studies").json():
        uid = study["0020000D"]["Value"][0]
        out.append(_get(f"{base}/studies/{uid}/metadata").content)
        out.append(_get(f"{api}/studies/{uid}/marks").content)
    return b"\n".join(out)


def _load(server: ServerProcess, tmp_path: Path) -> tuple[str, str, list[int]]:
    """Her data and another woman's through every door; (her client, other, cohorts).

    No request names her UIDs in its URL: the audit trail (which records URLs and is
    kept, by design) shares the SQLite file the byte scan reads."""
    port = server.dimse_port
    assert c_store(port, "SITE_A", mammo(NHS_A, 1))[0] == 0
    assert c_store(port, "SITE_A", mammo(NHS_A, 11, laterality="R", view="MLO"))[0] == 0
    assert c_store(port, "SITE_B", mammo(NHS_B, 2))[0] == 0
    code, doc = stow(server.base_url, mammo(NHS_A, 3))
    assert code == 200, doc
    imported = run_cli(server.settings, tmp_path, "import", "--source", "SITE_C", "--json",
                       str(write(tmp_path / "in" / "a.dcm", mammo(NHS_A, 4))))
    assert imported.returncode == 0, imported.stderr
    # Held in quarantine: its pixels may show her name.
    assert c_store(port, "SITE_A", mammo(NHS_A, 5, BurnedInAnnotation="YES"))[0] == 0
    assert any((server.settings.storage.root / "quarantine").glob("*.dcm"))
    feed = _feed(server)
    mine = feed[0]["client_id"]
    other = next(c["client_id"] for c in feed if c["client_id"] != mine)
    for nhs in (NHS_A, NHS_B):
        r = requests.post(f"{_api(server)}/clinical", json=minimal_record(nhs), timeout=30)
        assert r.status_code == 200, r.text
    r = requests.post(f"{_api(server)}/marks", timeout=60, json=[{
        "X1": 2, "Y1": 2, "X2": 9, "Y2": 9, "SOPInstanceUID": feed[0]["sop_instance_uid"],
        "StudyInstanceUID": feed[0]["study_instance_uid"],
        "SeriesInstanceUID": feed[0]["series_instance_uid"]}])
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    assert run_cli(server.settings, tmp_path, "clinical", "sync").returncode == 0
    cohorts = []
    for name in ("everyone", "everyone"):  # two versions of one cohort
        r = requests.post(f"{_api(server)}/cohorts", json={"name": name, "filters": {}},
                          timeout=30)
        assert r.status_code == 201, r.text
        cohorts.append(int(r.json()["id"]))
    members = _get(f"{_api(server)}/cohorts/{cohorts[0]}").content
    assert mine.encode() in members and other.encode() in members
    return mine, other, cohorts


def _keys(server: ServerProcess) -> DeidKeys:
    return load_keys(server.settings.deid)


def test_withdrawal_leaves_no_trace_and_refuses_later_sends(
    server: ServerProcess, tmp_path: Path
) -> None:
    mine, other, cohorts = _load(server, tmp_path)
    traces = _traces(mine, _feed(server))
    assert len(traces) > 10
    others = _traces(other, _feed(server))
    before = _storage_bytes(server)
    assert any(hits(b, traces) for b in before.values())  # the scan can see her

    run = run_cli(server.settings, tmp_path, "withdraw", "--nhs-number", NHS_A, "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["instances"] == 5  # four images and the marks' SR
    assert report["client_hash"] == client_key(_keys(server), mine)
    assert report["clinical_record"] and report["identity_entry"]
    assert report["quarantine_entries"] == 1 and report["marks"] == 1
    assert report["cohort_versions_amended"] == 2 and report["cohort_versions_added"] == 1
    assert NHS_A not in run.stdout + run.stderr and mine not in run.stdout + run.stderr

    # Nothing of hers is stored or served; the other woman is untouched.
    for name, data in _storage_bytes(server).items():
        assert not hits(data, traces), name
        assert NHS_A.encode() not in data, name
    assert not hits(index_bytes(server.settings.database_url), traces)
    served = _responses(server, cohorts + [cohorts[-1] + 1])
    assert not hits(served, traces)
    assert hits(served, others) == others
    feed = _feed(server)
    withdrawn = [c for c in feed if c["kind"] == "client-withdrawn"]
    assert len(withdrawn) == 1 and withdrawn[0]["client_hash"] == report["client_hash"]
    assert withdrawn[0]["seq"] == max(c["seq"] for c in feed)
    versions = [_get(f"{_api(server)}/cohorts/{c}").json() for c in cohorts]
    assert all(v["client_count"] == 1 for v in versions)
    newest = _get(f"{_api(server)}/cohorts/{cohorts[-1] + 1}").json()
    assert newest["version"] == 3 and "withdrawal" in newest["description"]

    # Later sends for her, from any site and door, are refused.
    status, comment = c_store(server.dimse_port, "SITE_B", mammo(NHS_A, 6))
    assert status == DimseStatus.NOT_AUTHORIZED and "withdrawn" in comment
    assert mine not in comment and NHS_A not in comment
    code, doc = stow(server.base_url, mammo(NHS_A, 7))
    failed = doc["00081198"]["Value"][0]
    assert failed["00081197"]["Value"][0] == DimseStatus.NOT_AUTHORIZED, (code, doc)
    imported = run_cli(server.settings, tmp_path, "import", "--json",
                       str(write(tmp_path / "in" / "late.dcm", mammo(NHS_A, 8))))
    summary = json.loads(imported.stdout[imported.stdout.index("{"):])
    assert summary["rejected"] == 1 and "withdrawn" in next(iter(summary["reasons"]))
    # A trusted sender's pseudonymised copy of her image is refused too.
    r = requests.post(f"{_api(server)}/clinical", json=minimal_record(NHS_A), timeout=30)
    assert r.status_code == 422 and "withdrawn" in r.text and mine not in r.text
    assert not hits(index_bytes(server.settings.database_url), traces)
    assert not any(hits(d, traces) for d in _storage_bytes(server).values())
    log = "".join(server.log)
    assert mine not in log and NHS_A not in log and "withdrawn client" in log

    # Again: idempotent, nothing left to do.
    again = run_cli(server.settings, tmp_path, "withdraw", "--nhs-number", NHS_A, "--json")
    assert again.returncode == 0, again.stderr
    doc2 = json.loads(again.stdout)
    assert doc2["already_complete"] and doc2["instances"] == 0
    assert [c for c in _feed(server) if c["kind"] == "client-withdrawn"] == withdrawn

    # The other woman, by client ID, through the REST endpoint.
    r = requests.post(f"{_api(server)}/withdrawals", json={"client_id": other}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["instances"] == 1
    assert _get(f"{server.base_url}/studies").json() == []
    listed = _get(f"{_api(server)}/withdrawals").json()
    assert [w["client_hash"] for w in listed] == [report["client_hash"],
                                                  r.json()["client_hash"]]
    assert all(w["completed_at"] for w in listed)
    assert _get(f"{_api(server)}/clients/{mine}/timeline").status_code == 404


def test_bad_requests_are_refused_with_reasons(server: ServerProcess, tmp_path: Path) -> None:
    api = _api(server)
    for body, reason in (
        ({"nhs_number": "9990000017"}, "NHS number"),  # wrong check digit
        ({"client_id": "OPTM1234"}, "client ID"),
        ({}, "either"),
        ({"client_id": "OPTMAAAAAAAAAAAA", "nhs_number": NHS_A}, "either"),
        ({"client_id": 7}, "strings"),
        ({"patient": "x"}, "expected"),
    ):
        r = requests.post(f"{api}/withdrawals", json=body, timeout=30)
        assert r.status_code == 400 and reason in r.json()["error"], (body, r.text)
    # A client ID nobody has heard of is not tombstoned.
    r = requests.post(f"{api}/withdrawals", json={"client_id": "OPTMAAAAAAAAAAAA"}, timeout=30)
    assert r.status_code == 404
    bad = run_cli(server.settings, tmp_path, "withdraw", "--nhs-number", "9990000017")
    assert bad.returncode == 1 and "NHS number" in bad.stderr and "9990000017" not in bad.stderr
    # An NHS number never seen is tombstoned ahead of her data: opt-out before arrival.
    early = run_cli(server.settings, tmp_path, "withdraw", "--nhs-number", NHS_B, "--json")
    assert early.returncode == 0 and json.loads(early.stdout)["instances"] == 0
    status, _ = c_store(server.dimse_port, "SITE_A", mammo(NHS_B, 9))
    assert status == DimseStatus.NOT_AUTHORIZED
