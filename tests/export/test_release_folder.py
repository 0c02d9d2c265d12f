"""Releases to a folder through the real command line: layout, manifest, scopes, verify."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.export.archive import ReleaseArchive, build
from tests.query.archive import uid


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[ReleaseArchive]:
    built = build(tmp_path)
    built.services.close()
    yield built


def release(archive: ReleaseArchive, licence: str, to: str, *extra: str) -> dict[str, object]:
    done = run_cli(archive.settings, archive.workdir, "release", "create", "--licence",
                   str(archive.licences[licence]), "--to", to, "--json", *extra)
    assert done.returncode == 0, done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


def files_under(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_full_release_layout_manifest_and_verify(archive: ReleaseArchive, tmp_path: Path) -> None:
    out = tmp_path / "out"
    info = release(archive, "full", str(out))
    assert info["state"] == "complete" and info["number"] == 1
    lic = archive.licences["full"]
    folder = out / f"licence-{lic}" / "release-0001"
    written = files_under(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    # Every file but the manifests is listed, with its size and hash; nothing else is there.
    assert set(written) - {"manifest.json", "manifest.csv"} == set(listed)
    for path, entry in listed.items():
        assert entry["sha256"] == written[path]
        assert entry["bytes"] == (folder / path).stat().st_size
        assert entry["release"] == 1
    rows = list(csv.DictReader(io.StringIO((folder / "manifest.csv").read_text())))
    assert sorted(r["path"] for r in rows) == sorted(listed)
    # Layout: <client>/<study>/<series>/<instance>.dcm, client IDs made path-safe.
    assert f"P001/{uid('1')}/{uid('1.1')}/{uid('1.1.1')}.dcm" in listed
    assert f"P001/{uid('1')}/{uid('1.2')}/{uid('1.2.1')}.dcm" in listed  # for-processing
    odd = "%27%20OR%201%3D1--"
    assert f"{odd}/{uid('2')}/{uid('2.1')}/{uid('2.1.1')}.dcm" in listed  # DBT
    # Outside the cohort (studies 3, 4) or in no scope (secondary capture 2.3.1): absent.
    assert not [p for p in listed if uid("2.3.1") in p or uid("3") + "/" in p
                or uid("4") + "/" in p]
    # The stored bytes, exactly.
    with archive.services.sessions() as s:
        from sqlalchemy import select

        from omipacs.index.models import Instance

        sha = s.scalar(select(Instance.sha256).where(Instance.sop_instance_uid == uid("1.1.1")))
    assert listed[f"P001/{uid('1')}/{uid('1.1')}/{uid('1.1.1')}.dcm"]["sha256"] == sha
    # Marks beside their SR, clinical and density tables with a dictionary, README.
    marks = json.loads((folder / "P001" / uid("1") / "marks.json").read_text())
    assert marks and marks[0]["sr_path"] in listed and marks[0]["sr_path"].endswith(
        f"{archive.sr_sop}.dcm")
    assert "client_outcome" in marks[0]
    clients = json.loads((folder / "clinical" / "clients.json").read_text())
    assert sorted(c["client_id"] for c in clients) == ["' OR 1=1--", "P001"]  # not X_1
    assert (folder / "clinical" / "density.csv").exists()
    episodes = json.loads((folder / "clinical" / "episodes.json").read_text())
    assert episodes[0]["raw"]["VolparaDensityGrade"] == "3"
    dictionary = (folder / "data_dictionary.csv").read_text()
    assert "clients,client_id," in dictionary and "density" in dictionary
    assert "Release 1 of licence" in (folder / "README.txt").read_text()
    # Facts.
    assert manifest["licence"]["id"] == lic
    assert manifest["cohort"]["members_sha256"] == "m" * 64
    assert manifest["counts"]["clients_by_outcome"] == {"B": 1, "M": 1}
    assert manifest["counts"]["instances_by_kind"] == {"2d": 5, "3d": 1,
                                                       "for-processing": 1, "marks": 1}
    assert manifest["counts"]["clients_with_3d"] == 1
    assert "change_feed_sequence" in manifest and manifest["software"].startswith("omipacs")
    assert "Annex E" in manifest["deidentification"]
    assert (folder / "removed.csv").read_text().strip() == "path,sha256,release,reason"
    verified = run_cli(archive.settings, archive.workdir, "release", "verify", "--licence",
                       str(lic), "--release", "1", "--to", str(out), "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ok"] is True


def test_scopes_are_respected(archive: ReleaseArchive, tmp_path: Path) -> None:
    out = tmp_path / "out"
    release(archive, "2d", str(out))
    folder = out / f"licence-{archive.licences['2d']}" / "release-0001"
    listed = {f["path"] for f in json.loads((folder / "manifest.json").read_text())["files"]}
    dicom = sorted(p for p in listed if p.endswith(".dcm"))
    assert len(dicom) == 5  # FFDM for presentation of studies 1 and 2 only
    assert not [p for p in dicom if uid("2.1.1") in p or uid("1.2.1") in p
                or archive.sr_sop in p]  # no DBT, no for-processing, no SR
    assert not [p for p in listed if p.startswith("clinical/") or "marks." in p]
    assert "data_dictionary.csv" not in listed
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "clients_by_outcome" not in manifest["counts"]


def test_clinical_without_density(tmp_path: Path) -> None:
    built = build(tmp_path)
    from omipacs.access import admin

    with built.services.write_sessions.begin() as s:
        lic = admin.create_licence(s, title="no density", cohort_id=1,
                                   scopes="2d,clinical,marks", ends=__import__(
                                       "datetime").date(2099, 1, 1))
    built.services.close()
    out = tmp_path / "out"
    done = run_cli(built.settings, built.workdir, "release", "create", "--licence",
                   str(lic.id), "--to", str(out), "--json")
    assert done.returncode == 0, done.stderr
    folder = out / f"licence-{lic.id}" / "release-0001"
    assert not (folder / "clinical" / "density.csv").exists()
    episodes = json.loads((folder / "clinical" / "episodes.json").read_text())
    assert episodes[0]["raw"] == {"Note": "kept"}  # the density key is gone
    marks = json.loads((folder / "P001" / uid("1") / "marks.json").read_text())
    assert "client_outcome" in marks[0]


def test_a_damaged_blob_stops_a_release_checked_by_hash_and_fails_verify_by_size(
    archive: ReleaseArchive, tmp_path: Path
) -> None:
    """``--check sha256`` (the default) never makes a copy visible whose bytes differ
    from the index; ``--check size`` copies by the kernel and says so in the manifest,
    and ``release verify`` then finds the damage."""
    from sqlalchemy import select

    from omipacs.bootstrap import open_archive
    from omipacs.index.models import Instance

    services = open_archive(archive.settings)
    with services.sessions() as s:
        key = s.scalar(select(Instance.blob_key)
                       .where(Instance.sop_instance_uid == uid("1.1.1")))
    assert key is not None
    blob = services.blobs.local_path(key)
    services.close()
    assert blob is not None
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes: bit rot since ingest
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    lic = archive.licences["2d"]
    damaged = f"P001/{uid('1')}/{uid('1.1')}/{uid('1.1.1')}.dcm"

    hashed = run_cli(archive.settings, archive.workdir, "release", "create", "--licence",
                     str(lic), "--to", str(tmp_path / "hashed"), "--json")
    assert hashed.returncode != 0
    assert "the index recorded" in hashed.stderr
    folder = tmp_path / "hashed" / f"licence-{lic}" / "release-0001"
    assert not (folder / "manifest.json").exists()
    assert not (folder / damaged).exists()

    sized = run_cli(archive.settings, archive.workdir, "release", "create", "--licence",
                    str(lic), "--to", str(tmp_path / "sized"), "--check", "size", "--json")
    assert sized.returncode == 0, sized.stderr
    number = json.loads(sized.stdout)["number"]  # numbered per licence: 2
    folder = tmp_path / "sized" / f"licence-{lic}" / f"release-{number:04d}"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["copies_checked"] == "size"
    verified = run_cli(archive.settings, archive.workdir, "release", "verify", "--licence",
                       str(lic), "--release", str(number), "--to", str(tmp_path / "sized"),
                       "--json")
    assert verified.returncode == 1
    assert json.loads(verified.stdout)["mismatched"] == [
        f"licence-{lic}/release-{number:04d}/{damaged}"]


def test_no_release_inside_the_archive_storage(archive: ReleaseArchive) -> None:
    inside = archive.settings.storage.root / "blobs" / "release"
    done = run_cli(archive.settings, archive.workdir, "release", "create", "--licence",
                   str(archive.licences["2d"]), "--to", str(inside), "--json")
    assert done.returncode != 0
    assert "inside the archive's storage" in done.stderr + done.stdout
    assert not inside.exists()
