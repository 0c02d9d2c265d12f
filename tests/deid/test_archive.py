"""De-identification through the running archive: C-STORE from sites, then a scan of
everything the archive stores, serves and logs."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.dataset import FileDataset
from pynetdicom import AE

from omipacs.demo import factory
from tests.conftest import ServerProcess, make_settings, start_server, write_config
from tests.deid.corpus import PHI_TOKENS, Instance, build_corpus

pytestmark = pytest.mark.slow

MG = "1.2.840.10008.5.1.4.1.1.1.2"


def _file_dataset(inst: Instance) -> FileDataset:
    buf = io.BytesIO()
    ds = FileDataset(None, inst.dataset, file_meta=inst.meta, preamble=b"\0" * 128)
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


def _send(port: int, ae_title: str, datasets: list[pydicom.Dataset]) -> list[int]:
    ae = AE(ae_title=ae_title)
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(sop_class, ["1.2.840.10008.1.2.1"])
    assoc = ae.associate("127.0.0.1", port, ae_title="OMIPACS")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


class Loaded:
    def __init__(self, server: ServerProcess, corpus: list[Instance]) -> None:
        self.server = server
        self.corpus = corpus


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    root = tmp_path_factory.mktemp("deid")
    settings = make_settings(root)
    server = start_server(settings, root)
    corpus = build_corpus()
    by_site: dict[str, list[pydicom.Dataset]] = {}
    for inst in corpus:
        by_site.setdefault(inst.site, []).append(_file_dataset(inst))
    for site, datasets in by_site.items():
        assert set(_send(server.dimse_port, site, datasets)) == {0}
    yield Loaded(server, corpus)
    server.stop()


def _qido(loaded: Loaded, path: str, **params: str) -> list[dict]:  # type: ignore[type-arg]
    r = requests.get(f"{loaded.server.base_url}{path}", params=params, timeout=30)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def _hits(blob: bytes) -> list[str]:
    low = blob.lower()
    return [t for t in PHI_TOKENS if t.lower().encode() in low]


def test_no_identifier_anywhere(loaded: Loaded) -> None:
    root = loaded.server.settings.storage.root
    scanned = 0
    for path in root.rglob("*"):
        if path.is_file() and "quarantine" not in path.parts:
            assert _hits(path.read_bytes()) == [], path
            scanned += 1
    assert scanned > len(loaded.corpus)
    studies = _qido(loaded, "/studies", includefield="all")
    assert len(studies) == 12
    assert _hits(json.dumps(studies).encode()) == []
    for study in studies:
        uid = study["0020000D"]["Value"][0]
        for level in ("/series", "/instances"):
            assert (
                _hits(
                    json.dumps(_qido(loaded, f"/studies/{uid}{level}", includefield="all")).encode()
                )
                == []
            )
        meta = requests.get(f"{loaded.server.base_url}/studies/{uid}/metadata", timeout=30)
        assert meta.status_code == 200 and _hits(meta.content) == []
    assert _hits("".join(loaded.server.log).encode()) == []


def test_marking_attributes(loaded: Loaded) -> None:
    study = _qido(loaded, "/studies")[0]["0020000D"]["Value"][0]
    meta = requests.get(f"{loaded.server.base_url}/studies/{study}/metadata", timeout=30).json()
    for doc in meta:
        assert doc["00120062"]["Value"] == ["YES"]  # PatientIdentityRemoved
        assert doc["00280303"]["Value"] == ["MODIFIED"] or doc.get("00120063")
        codes = [item["00080100"]["Value"][0] for item in doc["00120064"]["Value"]]
        assert codes[0] == "113100" and "113107" in codes
        assert "113109" not in codes  # device identifiers are hashed, not retained
        method = doc["00120063"]["Value"]
        assert "Device serials, stations, unit IDs: keyed pseudonyms" in method
        serial = doc.get("00181000", {}).get("Value", ["DEV"])[0]
        assert serial.startswith("DEV")


def test_same_nhs_number_from_two_sites_is_one_client(loaded: Loaded) -> None:
    studies = _qido(loaded, "/studies", includefield="00100020")
    patients: dict[str, int] = {}
    for s in studies:
        pid = s["00100020"]["Value"][0]
        patients[pid] = patients.get(pid, 0) + 1
    # p1 at SITE_A and SITE_B (2 episodes each), p2 to p5 with 2 episodes each.
    assert sorted(patients.values()) == [2, 2, 2, 2, 4]
    assert all(pid.startswith("OPTM") or pid.startswith("UNLK") for pid in patients)


def _gaps(days: list[dt.date]) -> tuple[int, ...]:
    days = sorted(days)
    return tuple((b - a).days for a, b in zip(days, days[1:], strict=False))


def test_episode_intervals_are_exact(loaded: Loaded) -> None:
    studies = _qido(loaded, "/studies", includefield="00100020")
    shifted: dict[str, list[dt.date]] = {}
    for s in studies:
        day = dt.datetime.strptime(s["00080020"]["Value"][0], "%Y%m%d").date()
        shifted.setdefault(s["00100020"]["Value"][0], []).append(day)
    original: dict[str, set[dt.date]] = {}
    for inst in loaded.corpus:
        day = dt.datetime.strptime(inst.study_date, "%Y%m%d").date()
        original.setdefault(inst.patient.key, set()).add(day)
    # Same intervals between studies (p1: two sites, 102/994/102 days; others 1096 days).
    assert sorted(_gaps(d) for d in shifted.values()) == sorted(
        _gaps(list(d)) for d in original.values())
    # Every date moved (per-client offsets are checked over 200 clients in the unit tests).
    all_original = {d for days in original.values() for d in days}
    assert not {d for days in shifted.values() for d in days} & all_original


def test_sr_references_resolve_after_remapping(loaded: Loaded) -> None:
    srs = _qido(loaded, "/instances", SOPClassUID="1.2.840.10008.5.1.4.1.1.88.50")
    assert srs
    known = {i["00080018"]["Value"][0] for i in _qido(loaded, "/instances", limit="1000")}
    for sr in srs:
        url = (
            f"{loaded.server.base_url}/studies/{sr['0020000D']['Value'][0]}/series/"
            f"{sr['0020000E']['Value'][0]}/instances/{sr['00080018']['Value'][0]}"
        )
        ds = pydicom.dcmread(
            io.BytesIO(
                requests.get(url, headers={"Accept": "application/dicom"}, timeout=30).content
            )
        )
        refs = [
            item.ReferencedSOPInstanceUID
            for ev in ds.CurrentRequestedProcedureEvidenceSequence
            for series in ev.ReferencedSeriesSequence
            for item in series.ReferencedSOPSequence
        ]
        assert refs and set(refs) <= known


def _sop_uids(items: list[dict]) -> set[str]:  # type: ignore[type-arg]
    return {i["00080018"]["Value"][0] for i in items}


def test_resend_maps_to_same_instance_and_pixels_untouched(loaded: Loaded) -> None:
    mammo = factory.make_mammo(rows=64, columns=52)
    before = _qido(loaded, "/instances", limit="1000")
    assert _send(loaded.server.dimse_port, "SITE_A", [mammo]) == [0]
    after = _qido(loaded, "/instances", limit="1000")
    new = [i for i in after if i["00080018"]["Value"][0] not in _sop_uids(before)]
    assert len(new) == 1
    assert new[0]["00080018"]["Value"][0] != mammo.SOPInstanceUID  # remapped
    assert _send(loaded.server.dimse_port, "SITE_A", [mammo]) == [0]  # re-send
    assert _sop_uids(_qido(loaded, "/instances", limit="1000")) == _sop_uids(after)
    url = (
        f"{loaded.server.base_url}/studies/{new[0]['0020000D']['Value'][0]}/series/"
        f"{new[0]['0020000E']['Value'][0]}/instances/{new[0]['00080018']['Value'][0]}"
    )
    ds = pydicom.dcmread(
        io.BytesIO(requests.get(url, headers={"Accept": "application/dicom"}, timeout=30).content)
    )
    assert ds.PixelData == mammo.PixelData


def _cli(
    settings_root: Path, server: ServerProcess, *args: str
) -> subprocess.CompletedProcess[str]:
    config = write_config(server.settings, settings_root / "cli.toml")
    return subprocess.run(
        [sys.executable, "-m", "omipacs", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("burned_in", ["YES", None])
def test_unsafe_pixels_go_to_quarantine_and_can_be_released(
    tmp_path: Path, burned_in: str | None
) -> None:
    settings = make_settings(tmp_path)
    server = start_server(settings, tmp_path)
    try:
        ds = factory.make_secondary_capture(burned_in_annotation=burned_in, rows=64, columns=64)
        clean = factory.make_secondary_capture(burned_in_annotation="NO", rows=64, columns=64)
        assert _send(server.dimse_port, "SITE_A", [ds, clean]) == [0, 0]
        instances = requests.get(f"{server.base_url}/instances", timeout=30).json()
        assert len(instances) == 1  # only the clean one is published
        listing = json.loads(_cli(tmp_path, server, "quarantine", "list", "--json").stdout)
        assert (
            len(listing) == 1
            and "burned-in" in listing[0]["reason"].lower()
            or "annotation" in listing[0]["reason"].lower()
        )
        entry = listing[0]["id"]
        released = _cli(tmp_path, server, "quarantine", "release", entry)
        assert released.returncode == 0, released.stderr
        assert len(requests.get(f"{server.base_url}/instances", timeout=30).json()) == 2
        assert json.loads(_cli(tmp_path, server, "quarantine", "list", "--json").stdout) == []
        # purge path
        assert _send(
            server.dimse_port,
            "SITE_A",
            [factory.make_secondary_capture(burned_in_annotation="YES", rows=64, columns=64)],
        ) == [0]
        entry = json.loads(_cli(tmp_path, server, "quarantine", "list", "--json").stdout)[0]["id"]
        assert _cli(tmp_path, server, "quarantine", "purge", entry).returncode == 0
        assert not list((settings.storage.root / "quarantine").glob("*.dcm"))
    finally:
        server.stop()


def test_midi_b_score_of_what_the_archive_stored(loaded: Loaded) -> None:
    """Score the stored objects (fetched back over WADO-RS) the MIDI-B way, and print it."""
    from types import SimpleNamespace

    from omipacs.deid.keys import load_keys
    from omipacs.deid.pseudonyms import remap_uid
    from tests.deid.midi import Scorer

    keys = load_keys(loaded.server.settings.deid)
    scorer = Scorer(keys)
    image_uids: dict[str, str] = {}
    base = loaded.server.base_url
    for number, inst in enumerate(loaded.corpus):
        ds = inst.dataset
        new = {
            k: remap_uid(keys, str(ds.get(k)))
            for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
        }
        url = (
            f"{base}/studies/{new['StudyInstanceUID']}/series/{new['SeriesInstanceUID']}"
            f"/instances/{new['SOPInstanceUID']}"
        )
        r = requests.get(
            url, headers={"Accept": "application/dicom; transfer-syntax=*"}, timeout=30
        )
        assert r.status_code == 200, url
        assert _hits(r.content) == [], url  # the whole served file, byte for byte
        stored = pydicom.dcmread(io.BytesIO(r.content))
        scorer.score_instance(
            number, inst, SimpleNamespace(dataset=stored, file_meta=stored.file_meta)
        )
        image_uids[str(ds.SOPInstanceUID)] = str(stored.SOPInstanceUID)
    scorer.finish(image_uids)
    print(f"\nMIDI-B style score of the archive's stored objects ({len(loaded.corpus)})")
    print(scorer.render())
    failures = [f"{c.kind} {c.where}: {c.original!r}" for c in scorer.failures()]
    assert failures == []
    assert scorer.table()[-1][3] == 100.0
