"""Release N+1 holds exactly what changed since N; a killed export resumes without
copying a finished file again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from omipacs.bootstrap import open_archive
from omipacs.withdrawal.withdraw import Target, withdraw
from tests.conftest import run_cli, write_config
from tests.export.archive import add_image, build, delete_instances
from tests.export.test_release_folder import files_under, release
from tests.query.archive import uid

ODD = "%27%20OR%201%3D1--"  # the folder of client "' OR 1=1--"


def test_incremental_release_holds_exactly_the_difference(tmp_path: Path) -> None:
    archive = build(tmp_path)
    archive.services.close()
    out = tmp_path / "out"
    release(archive, "full", str(out))
    lic = archive.licences["full"]
    first = json.loads((out / f"licence-{lic}/release-0001/manifest.json").read_text())
    # Changes: a new image in study 1, image 1.3.1 deleted, client "' OR 1=1--" withdrawn.
    services = open_archive(archive.settings)
    add_image(services, tmp_path, "1", "5", "1")
    delete_instances(services, [uid("1.3.1")])
    withdraw(services, services.extras["deid.keys"], None, Target("' OR 1=1--", ""))
    services.close()

    info = release(archive, "full", str(out))
    assert info["number"] == 2 and info["base_number"] == 1
    folder = out / f"licence-{lic}/release-0002"
    manifest = json.loads((folder / "manifest.json").read_text())
    # Read from the change feed since release 1's sequence number, not by comparing all.
    increment = manifest["increment"]
    assert increment["mode"] == "change-feed", increment
    assert increment["from_sequence"] == first["change_feed_sequence"]
    assert increment["to_sequence"] == manifest["change_feed_sequence"]
    assert increment["instances_changed"] == 2 and increment["withdrawals"] == 1
    new_image = f"P001/{uid('1')}/{uid('1.5')}/{uid('1.5.1')}.dcm"
    # The only DICOM file in the new folder is the new image.
    copied = sorted(p for p in files_under(folder) if p.endswith(".dcm"))
    assert copied == [new_image]
    entries = {f["path"]: f for f in manifest["files"]}
    assert entries[new_image]["release"] == 2
    kept = f"P001/{uid('1')}/{uid('1.1')}/{uid('1.1.1')}.dcm"
    assert entries[kept]["release"] == 1  # unchanged: referenced, not copied
    assert entries[kept]["sha256"] == {f["path"]: f for f in first["files"]}[kept]["sha256"]
    removed = (folder / "removed.csv").read_text().splitlines()
    gone = {line.split(",")[0]: line.rsplit(",", 1)[1] for line in removed[1:]}
    assert gone[f"P001/{uid('1')}/{uid('1.3')}/{uid('1.3.1')}.dcm"] == "deleted"
    assert gone[f"{ODD}/{uid('2')}/{uid('2.1')}/{uid('2.1.1')}.dcm"] == "withdrawn"
    assert len([p for p in gone if p.endswith(".dcm")]) == 4
    assert (folder / "withdrawn.csv").read_text().splitlines()[1:] == [f"' OR 1=1--,{ODD}"]
    assert not [p for p in entries if p.startswith(ODD)]
    assert manifest["counts"]["withdrawn_clients"] == 1
    clients = json.loads((folder / "clinical" / "clients.json").read_text())
    assert [c["client_id"] for c in clients] == ["P001"]
    # Release 1 is untouched and both verify (2 reads some bytes from release 1's folder).
    assert json.loads((out / f"licence-{lic}/release-0001/manifest.json").read_text()) == first
    for number in ("1", "2"):
        done = run_cli(archive.settings, tmp_path, "release", "verify", "--licence", str(lic),
                       "--release", number, "--to", str(out), "--json")
        assert done.returncode == 0, done.stdout + done.stderr
    # Nothing changed since 2: release 3 copies no DICOM file at all.
    info = release(archive, "full", str(out))
    assert not [p for p in files_under(out / f"licence-{lic}/release-0003")
                if p.endswith(".dcm")]


def test_kill_9_then_resume_copies_nothing_twice(tmp_path: Path) -> None:
    archive = build(tmp_path)
    archive.services.close()
    out = tmp_path / "out"
    lic = archive.licences["full"]
    folder = out / f"licence-{lic}" / "release-0001"
    config = write_config(archive.settings, tmp_path / "kill.toml")
    # Slowed to a few kB/s so that the kill lands mid-export.
    proc = subprocess.Popen(
        [sys.executable, "-m", "omipacs", "--config", str(config), "release", "create",
         "--licence", str(lic), "--to", str(out), "--workers", "1",
         "--max-bytes-per-second", "4000", "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    finished: list[Path] = []
    while time.monotonic() < deadline and len(finished) < 2:
        time.sleep(0.05)
        finished = [p for p in folder.rglob("*.dcm")] if folder.exists() else []
        assert proc.poll() is None, "the export ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(finished) >= 2
    assert not (folder / "manifest.json").exists()  # not published
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*.dcm")}
    total = 8  # DICOM files in this licence's view

    assert len(before) < total
    done = run_cli(archive.settings, tmp_path, "release", "create", "--licence", str(lic),
                   "--to", str(out), "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["number"] == 1 and info["state"] == "complete"  # resumed, not a new release
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*.dcm")}
    assert len(after) == total
    for path, stat in before.items():
        assert after[path] == stat, f"{path} was copied again"
    assert not [p for p in folder.rglob("*") if ".part-" in p.name]
    verified = run_cli(archive.settings, tmp_path, "release", "verify", "--licence", str(lic),
                       "--release", "1", "--to", str(out), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
