"""STOW-RS and de-identification through the running archive (issue 14, item 4)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
import requests

from omipacs.deid.keys import load_keys
from omipacs.deid.pseudonyms import remap_uid
from omipacs.demo import factory
from omipacs.errors import DimseStatus
from tests.conftest import ServerProcess, make_settings, start_server
from tests.deid.test_linking import send

pytestmark = pytest.mark.slow

CT = 'multipart/related; type="application/dicom"; boundary=B'


def stow(server: ServerProcess, *datasets: pydicom.Dataset) -> requests.Response:
    body = b"".join(b"--B\r\nContent-Type: application/dicom\r\n\r\n" + factory.to_bytes(ds)
                    + b"\r\n" for ds in datasets) + b"--B--\r\n"
    return requests.post(f"{server.base_url}/studies", data=body, timeout=60,
                         headers={"Content-Type": CT, "Accept": "application/dicom+json"})


def identifiable() -> pydicom.Dataset:
    ds = factory.make_mammo(rows=32, columns=32)
    ds.PatientName = "CANARYSTOW^JANE"
    ds.PatientID = "STOW-CANARY-1"
    ds.ImageComments = "Mrs Canarystow 12/03/1958"
    return ds


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    settings = make_settings(tmp_path)
    settings = replace(settings, http=replace(settings.http, **getattr(request, "param", {})))
    srv = start_server(settings, tmp_path)
    yield srv
    srv.stop()


def test_stow_de_identifies_by_default(server: ServerProcess) -> None:
    ds = identifiable()
    r = stow(server, ds)
    assert r.status_code == 200, r.text
    keys = load_keys(server.settings.deid)
    (ref,) = r.json()["00081199"]["Value"]
    assert ref["00081155"]["Value"] == [remap_uid(keys, ds.SOPInstanceUID)]
    stored = requests.get(ref["00081190"]["Value"][0], timeout=30,
                          headers={"Accept": "application/dicom; transfer-syntax=*"})
    got = pydicom.dcmread(io.BytesIO(stored.content))
    assert got.PatientID.startswith(("OPTM", "UNLK")) and got.PatientName == got.PatientID
    assert got.PatientIdentityRemoved == "YES" and "ImageComments" not in got
    assert b"canary" not in stored.content.lower()
    assert got.PixelData == ds.PixelData


@pytest.mark.parametrize("server", [{"stow_deidentify": False}], indirect=True)
def test_stow_of_own_objects_refuses_identifiable_headers(server: ServerProcess) -> None:
    # An image from a site gives the archive a client and a study.
    image = factory.make_mammo(rows=32, columns=32)
    assert send(server.dimse_port, "SITE_A", [image]) == [0]
    (study,) = requests.get(f"{server.base_url}/studies", timeout=30,
                            params={"includefield": "00100020"}).json()
    client = study["00100020"]["Value"][0]
    study_uid = study["0020000D"]["Value"][0]

    # An identifiable upload is refused, with Not Authorized as its FailureReason.
    r = stow(server, identifiable())
    assert r.status_code == 409, r.text
    (failed,) = r.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [int(DimseStatus.NOT_AUTHORIZED)]
    # So is a header that carries the pseudonym plus a real name, or an unknown client.
    named = factory.make_mammo(rows=32, columns=32)
    named.PatientID = client
    named.PatientName = "CANARYSTOW^JANE"
    unknown = factory.make_mammo(rows=32, columns=32)
    unknown.PatientID = unknown.PatientName = "OPTMAAAAAAAAAAAA"
    for ds in (named, unknown):
        for keyword in ("OtherPatientIDs", "OtherPatientIDsSequence", "IssuerOfPatientID",
                        "PatientBirthDate", "PatientAddress", "PatientTelephoneNumbers"):
            if keyword in ds:
                delattr(ds, keyword)
    assert stow(server, named, unknown).status_code == 409

    # A viewer's object about the archive's study, under the pseudonym, is kept as sent.
    own = factory.make_mammo(rows=32, columns=32, study_uid=study_uid)
    for keyword in ("OtherPatientIDs", "OtherPatientIDsSequence", "IssuerOfPatientID",
                    "PatientAddress", "PatientTelephoneNumbers"):
        delattr(own, keyword)
    own.PatientID = own.PatientName = client
    own.PatientBirthDate = ""
    r = stow(server, own)
    assert r.status_code == 200, r.text
    assert r.json()["00081199"]["Value"][0]["00081155"]["Value"] == [own.SOPInstanceUID]
    spool = server.settings.storage.root / "spool"  # refused uploads leave nothing behind
    assert not [p for p in spool.rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert "canarystow" not in "".join(server.log).lower()
