"""``/api/v1/licences/{id}/releases`` over a real server: admins start and follow a
release; everyone else is refused; every request is in the audit trail."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import requests

from omipacs.access import admin
from omipacs.config import AuthSettings
from omipacs.web import server as web_server
from tests.export.archive import build


def test_admins_start_and_follow_a_release(tmp_path: Path) -> None:
    archive = build(tmp_path)
    with archive.services.write_sessions.begin() as s:
        admin.add_user(s, "admin@a.example", "admin")
        admin.add_user(s, "r1@lab.example", "researcher")
        admin.add_user(s, "curator@a.example", "curator")
        admin.add_member(s, archive.licences["full"], "r1@lab.example")
        admin_token, _ = admin.create_token(s, "admin@a.example")
        researcher_token, _ = admin.create_token(s, "r1@lab.example")
        curator_token, _ = admin.create_token(s, "curator@a.example")
    archive.services.close()
    settings = dataclasses.replace(
        archive.settings, auth=AuthSettings(mode="token"),
        http=dataclasses.replace(archive.settings.http, workers=1),
        release=dataclasses.replace(archive.settings.release,
                                    allowed_roots=(str(tmp_path / "deliveries"),)),
    )
    server = web_server.start(settings)
    server.wait_ready()
    base = f"http://127.0.0.1:{settings.http.port}/api/v1/licences/{archive.licences['full']}"
    as_admin = {"Authorization": f"Bearer {admin_token}"}
    out = tmp_path / "deliveries" / "lab-7"
    try:
        # An admin names only folders under [release] allowed_roots, never the archive's.
        for elsewhere in (tmp_path / "out", tmp_path / "deliveries" / ".." / "x",
                          settings.storage.root / "blobs", tmp_path):
            outside = requests.post(f"{base}/releases", json={"url": str(elsewhere)},
                                    headers=as_admin, timeout=30)
            assert outside.status_code == 403, (elsewhere, outside.text)
            assert "release" in outside.json()["error"]
        assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()
        refused = requests.post(f"{base}/releases", json={"url": str(out)}, timeout=30,
                                headers={"Authorization": f"Bearer {researcher_token}"})
        assert refused.status_code == 403
        assert requests.get(f"{base}/releases", timeout=30).status_code == 401
        bad = requests.post(f"{base}/releases", json={"to": "x"}, headers=as_admin, timeout=30)
        assert bad.status_code == 400
        started = requests.post(f"{base}/releases", json={"url": str(out)}, headers=as_admin,
                                timeout=30)
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        assert location.endswith("/releases/1")
        deadline = time.monotonic() + 120
        state = started.json()["state"]
        while state not in ("complete", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            shown = requests.get(f"http://127.0.0.1:{settings.http.port}{location}",
                                 headers=as_admin, timeout=30)
            assert shown.status_code == 200
            state = shown.json()["state"]
        assert state == "complete"
        doc = shown.json()
        assert doc["files_done"] == doc["files_total"] > 0
        assert doc["bytes_done"] == doc["bytes_total"] > 0
        listed = requests.get(f"{base}/releases", headers=as_admin, timeout=30).json()
        assert [r["number"] for r in listed] == [1]
        # Curators follow releases (as on the dashboard) but do not start them.
        as_curator = {"Authorization": f"Bearer {curator_token}"}
        followed = requests.get(f"{base}/releases", headers=as_curator, timeout=30)
        assert followed.status_code == 200 and followed.json() == listed
        assert requests.post(f"{base}/releases", json={"url": str(out)}, headers=as_curator,
                             timeout=30).status_code == 403
        as_researcher = {"Authorization": f"Bearer {researcher_token}"}
        assert requests.get(f"{base}/releases", headers=as_researcher,
                            timeout=30).status_code == 403
        assert requests.get(f"{base}/releases/7", headers=as_admin, timeout=30).status_code == 404
        manifest = out / f"licence-{archive.licences['full']}" / "release-0001" / "manifest.json"
        assert json.loads(manifest.read_text())["release"] == 1
        # Every request is in the audit trail, as the server reads it back (the admin
        # API writes the server's queued events to the index first).
        deadline = time.monotonic() + 60
        while True:
            trail = requests.get(f"http://127.0.0.1:{settings.http.port}/api/v1/admin/audit",
                                 params={"user": "admin@a.example"}, headers=as_admin,
                                 timeout=30)
            assert trail.status_code == 200, trail.text
            if any(e["status"] == 202 and "/releases" in e["resource"] for e in trail.json()):
                break
            assert time.monotonic() < deadline, "the release request is not in the audit trail"
            time.sleep(0.5)
    finally:
        server.close()
