"""Incremental releases read from the change feed: events outside a licence change
nothing, a licence re-bound to a newer cohort version brings exactly its new study, and
a feed that disagrees with the index (or ``--full``) makes every file compared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from omipacs.access import admin
from omipacs.bootstrap import open_archive
from omipacs.errors import BadRequest
from tests.conftest import run_cli
from tests.export.archive import add_image, build, delete_behind_the_feed, new_version
from tests.export.test_release_folder import files_under, release
from tests.query.archive import uid


def manifest_of(out: Path, lic: int, number: int) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        (out / f"licence-{lic}/release-{number:04d}/manifest.json").read_text())
    return doc


def dicom_files(out: Path, lic: int, number: int) -> list[str]:
    return sorted(p for p in files_under(out / f"licence-{lic}/release-{number:04d}")
                  if p.endswith(".dcm"))


def verify(archive: Any, tmp_path: Path, lic: int, number: int, out: Path) -> None:
    done = run_cli(archive.settings, tmp_path, "release", "verify", "--licence", str(lic),
                   "--release", str(number), "--to", str(out), "--json")
    assert done.returncode == 0, done.stdout + done.stderr


def first_release(tmp_path: Path, licence: str,
                  db_url: str = "") -> tuple[Any, Path, int, dict[str, Any]]:
    """The export fixture, released once: (archive, out folder, licence ID, manifest)."""
    archive = build(tmp_path, db_url)
    archive.services.close()
    out = tmp_path / "out"
    release(archive, licence, str(out))
    lic = archive.licences[licence]
    return archive, out, lic, manifest_of(out, lic, 1)


def test_events_outside_the_licence_change_nothing_and_full_compares_all(
    tmp_path: Path, db_url: str,
) -> None:
    # Licence "2d": FFDM for presentation of cohort C (studies 1 and 2).
    archive, out, lic, first = first_release(tmp_path, "2d", db_url)
    assert first["increment"]["mode"] == "full-scan"
    # Stored: an image of study 3 (client X_1, not a member) and an image for
    # processing in member study 1 (a scope the licence lacks).
    services = open_archive(archive.settings)
    add_image(services, tmp_path, "3", "7", "1")
    from omipacs.demo import factory
    from tests.query.archive import _PATIENTS, ORIGIN, _study_date

    ds = factory.make_mammo(laterality="R", view="CC", vendor="HOLOGIC", rows=32, columns=32,
                            rng=4, processed=False, study_uid=uid("1"), series_uid=uid("1.8"),
                            sop_uid=uid("1.8.1"), study_date=_study_date(1),
                            **{**_PATIENTS[1], "SeriesNumber": 8})
    factory.save(ds, tmp_path / "raw.dcm")
    assert services.pipeline.ingest_file(tmp_path / "raw.dcm", ORIGIN).outcome.value == "stored"
    services.close()

    release(archive, "2d", str(out))
    second = manifest_of(out, lic, 2)
    increment = second["increment"]
    assert increment["mode"] == "change-feed", increment
    assert increment["events"] >= 2 and increment["instances_changed"] == 2
    assert dicom_files(out, lic, 2) == []
    assert [f["path"] for f in second["files"] if f["path"].endswith(".dcm")] == [
        f["path"] for f in first["files"] if f["path"].endswith(".dcm")]
    assert all(f["release"] == 1 for f in second["files"] if f["path"].endswith(".dcm"))
    assert second["counts"]["removed"] == 0

    # --full compares every file: the same answer, nothing copied.
    release(archive, "2d", str(out), "--full")
    third = manifest_of(out, lic, 3)
    assert third["increment"] == {"mode": "full-scan", "reason": "requested (--full)"}
    assert dicom_files(out, lic, 3) == []
    assert [(f["path"], f["sha256"]) for f in third["files"] if f["path"].endswith(".dcm")] \
        == [(f["path"], f["sha256"]) for f in second["files"] if f["path"].endswith(".dcm")]
    verify(archive, tmp_path, lic, 3, out)


def test_new_study_after_the_licence_moves_to_a_newer_cohort_version(
    tmp_path: Path, db_url: str
) -> None:
    archive, out, lic, first = first_release(tmp_path, "full", db_url)
    # A new study (5) for member P001 arrives: two images in two series.
    services = open_archive(archive.settings)
    add_image(services, tmp_path, "5", "1", "1", patient=1)
    add_image(services, tmp_path, "5", "2", "1", patient=1)
    v2 = new_version(services, "C", [("P001", "1"), ("' OR 1=1--", "2"), ("P001", "5")])
    other = new_version(services, "D", [("P001", "1")])
    with services.write_sessions.begin() as s:
        cohort_v1 = admin.show_licence(s, lic).cohort_id
        with pytest.raises(BadRequest, match="version of its cohort"):
            admin.rebind_licence(s, lic, other)
    services.close()
    # Release before the re-bind: the licence's frozen version does not hold study 5.
    release(archive, "full", str(out))
    assert dicom_files(out, lic, 2) == []
    assert manifest_of(out, lic, 2)["increment"]["mode"] == "change-feed"

    moved = run_cli(archive.settings, tmp_path, "licence", "rebind", str(lic), "--cohort",
                    str(v2), "--json")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["cohort_version"] == 2
    back = run_cli(archive.settings, tmp_path, "licence", "rebind", str(lic), "--cohort",
                   str(cohort_v1), "--json")
    assert back.returncode != 0 and "newer version" in back.stderr + back.stdout
    audit = run_cli(archive.settings, tmp_path, "audit", "--json")
    assert audit.returncode == 0, audit.stderr
    rebinds = [json.loads(line) for line in audit.stdout.splitlines()
               if '"licence-rebind"' in line]
    assert [r["resource"] for r in rebinds] == [f"licence:{lic} cohort:{cohort_v1}->{v2}"]

    release(archive, "full", str(out))
    third = manifest_of(out, lic, 3)
    assert third["increment"]["mode"] == "full-scan"
    assert "re-bound" in third["increment"]["reason"]
    assert third["cohort"]["version"] == 2
    new = sorted(f"P001/{uid('5')}/{uid(f'5.{n}')}/{uid(f'5.{n}.1')}.dcm" for n in (1, 2))
    assert dicom_files(out, lic, 3) == new  # exactly the new study's files
    entries = {f["path"]: f for f in third["files"]}
    assert [p for p, f in entries.items() if p.endswith(".dcm") and f["release"] == 3] == new
    before = {f["path"] for f in first["files"] if f["path"].endswith(".dcm")}
    assert {p for p in entries if p.endswith(".dcm")} == before | set(new)
    assert third["counts"]["removed"] == 0 and third["counts"]["studies"] == 3
    verify(archive, tmp_path, lic, 3, out)


def test_a_feed_that_disagrees_with_the_index_makes_every_file_compared(
    tmp_path: Path,
) -> None:
    archive, out, lic, _first = first_release(tmp_path, "full")
    services = open_archive(archive.settings)
    delete_behind_the_feed(services, [uid("1.4.1")])  # no change event
    services.close()
    release(archive, "full", str(out))
    second = manifest_of(out, lic, 2)
    assert second["increment"]["mode"] == "full-scan"
    assert "change feed" in second["increment"]["reason"]
    removed = (out / f"licence-{lic}/release-0002/removed.csv").read_text().splitlines()
    gone = [(r.split(",")[0], r.rsplit(",", 1)[1]) for r in removed[1:]
            if r.split(",")[0].endswith(".dcm")]
    assert gone == [(f"P001/{uid('1')}/{uid('1.4')}/{uid('1.4.1')}.dcm", "deleted")]
    verify(archive, tmp_path, lic, 2, out)


def test_a_clinical_change_remakes_the_tables_and_her_marks_only(tmp_path: Path) -> None:
    from sqlalchemy import select

    from omipacs.clinical.models import Client
    from omipacs.index.changes import ChangeKind, record_change

    archive, out, lic, first = first_release(tmp_path, "full")
    services = open_archive(archive.settings)
    with services.write_sessions.begin() as s:  # as the clinical importer writes it
        client = s.scalar(select(Client).where(Client.client_id == "P001"))
        assert client is not None
        client.outcome = "B"
        record_change(s, ChangeKind.CLINICAL_CHANGED, client_id="P001")
    services.close()
    release(archive, "full", str(out))
    second = manifest_of(out, lic, 2)
    assert second["increment"]["mode"] == "change-feed"
    assert second["increment"]["clinical_clients_changed"] == 1
    written = set(files_under(out / f"licence-{lic}/release-0002"))
    marks = f"P001/{uid('1')}/marks.json"
    assert {"clinical/clients.json", "clinical/clients.csv", marks} <= written
    assert not [p for p in written if p.endswith(".dcm")]
    entries = {f["path"]: f for f in second["files"]}
    assert entries["data_dictionary.csv"]["release"] == 1  # remade, the same bytes
    assert entries["clinical/density.json"]["release"] == 1
    shown = json.loads((out / f"licence-{lic}/release-0002" / marks).read_text())
    assert {m["client_outcome"] for m in shown} == {"B"}
    assert second["counts"]["clients_by_outcome"] == {"B": 2}
    # Nothing changed since: release 3 writes only its README and manifest (its empty
    # removed.csv and withdrawn.csv are release 2's bytes, referenced).
    release(archive, "full", str(out))
    third = manifest_of(out, lic, 3)
    assert set(files_under(out / f"licence-{lic}/release-0003")) == {
        "README.txt", "manifest.csv", "manifest.json"}
    assert {f["path"]: f["release"] for f in third["files"]}[marks] == 2
    assert third["increment"]["events"] == 0
    verify(archive, tmp_path, lic, 3, out)
