"""Who an object belongs to, through the running archive (C-STORE): NHS numbers only
from identifiers that say so, and one client per study."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator

import pydicom
import pytest
import requests
from pydicom.dataset import FileDataset
from pydicom.sequence import Sequence
from pynetdicom import AE

from omipacs.config import Peer
from omipacs.deid.keys import DeidKeys, load_keys
from omipacs.deid.pseudonyms import client_pseudonym, remap_uid
from omipacs.demo import factory
from tests.conftest import TEST_PEERS, ServerProcess, make_settings, start_server
from tests.deid.corpus import VENDORS, Patient, Study, UidSource, make_sr

pytestmark = pytest.mark.slow

NHS_A = "9434765919"
NHS_B = "4010232137"


def send(port: int, ae_title: str, datasets: list[pydicom.Dataset]) -> list[int]:
    ae = AE(ae_title=ae_title)
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(sop_class, ["1.2.840.10008.1.2.1"])
    assoc = ae.associate("127.0.0.1", port, ae_title="OMIPACS")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def mammo(patient_id: str, *, issuer: str | None = None, nhs: str | None = None,
          study_uid: str | None = None, accession: str = "", rng: int = 0) -> pydicom.Dataset:
    """An FFDM image whose only identifiers are the ones given."""
    ds = factory.make_mammo(rows=32, columns=32, study_uid=study_uid, rng=rng)
    ds.PatientID = patient_id
    for keyword in ("IssuerOfPatientID", "OtherPatientIDs", "OtherPatientIDsSequence"):
        if keyword in ds:
            delattr(ds, keyword)
    if issuer is not None:
        ds.IssuerOfPatientID = issuer
    if nhs is not None:
        other = pydicom.Dataset()
        other.PatientID = nhs
        other.IssuerOfPatientID = "NHS"
        ds.OtherPatientIDsSequence = Sequence([other])
    ds.AccessionNumber = accession
    return ds


class Archive:
    def __init__(self, server: ServerProcess, keys: DeidKeys) -> None:
        self.server = server
        self.keys = keys

    def instances(self, original_study_uid: str) -> list[dict]:  # type: ignore[type-arg]
        """QIDO-RS instances of the study, with Patient ID."""
        study = remap_uid(self.keys, original_study_uid)
        r = requests.get(f"{self.server.base_url}/studies/{study}/instances",
                         params={"includefield": "00100020"}, timeout=30)
        if r.status_code in (204, 404) or not r.content:
            return []
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def client_of_study(self, original_study_uid: str) -> set[str]:
        """The Patient IDs the archive files the study under."""
        return {i["00100020"]["Value"][0] for i in self.instances(original_study_uid)}

    def linked(self, nhs: str) -> str:
        return client_pseudonym(self.keys, nhs, "", "").client_id


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    root = tmp_path_factory.mktemp("linking")
    peers = (*TEST_PEERS, Peer("NHS_SITE", patient_id_is_nhs_number=True))
    settings = make_settings(root, peers=peers)
    server = start_server(settings, root)
    yield Archive(server, load_keys(settings.deid))
    server.stop()


def test_bare_ten_digit_local_numbers_never_link(archive: Archive) -> None:
    """Woman A's hospital number at SITE_A is woman B's NHS number: two clients."""
    local_a = mammo(NHS_A, rng=1)  # a bare local number that passes the check digit
    woman_b = mammo("FHFT-2", issuer="FHFT", nhs=NHS_A, rng=2)
    local_c = mammo(NHS_B, rng=3)
    assert send(archive.server.dimse_port, "SITE_A", [local_a, local_c]) == [0, 0]
    assert send(archive.server.dimse_port, "SITE_B", [woman_b]) == [0]
    (client_a,) = archive.client_of_study(local_a.StudyInstanceUID)
    (client_b,) = archive.client_of_study(woman_b.StudyInstanceUID)
    (client_c,) = archive.client_of_study(local_c.StudyInstanceUID)
    assert client_b == archive.linked(NHS_A)
    assert client_a.startswith("UNLK") and client_c.startswith("UNLK")
    assert len({client_a, client_b, client_c}) == 3


def test_a_site_configured_to_send_the_nhs_number_as_patient_id_links(archive: Archive) -> None:
    ds = mammo(NHS_B, rng=4)
    assert send(archive.server.dimse_port, "NHS_SITE", [ds]) == [0]
    assert archive.client_of_study(ds.StudyInstanceUID) == {archive.linked(NHS_B)}



def _file(ds: pydicom.Dataset, meta: pydicom.dataset.FileMetaDataset) -> pydicom.Dataset:
    buf = io.BytesIO()
    FileDataset(None, ds, file_meta=meta, preamble=b"\0" * 128).save_as(
        buf, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


def cad_sr(image: pydicom.Dataset, local_id: str, *, study_uid: str | None = None,
           accession: str = "", nhs: str | None = None) -> pydicom.Dataset:
    """A CAD SR about ``image`` that carries only a RIS number (or an NHS number too)."""
    patient = Patient("sr", "CADONLY^NELL", nhs, local_id, "19600101")
    study = Study(study_uid or str(image.StudyInstanceUID), "20150302", "055Y",
                  {"L CC": (str(image.SeriesInstanceUID), str(image.SOPInstanceUID))})
    inst = make_sr(patient, VENDORS[0], study, UidSource(f"{study.uid}.9."))
    inst.dataset.AccessionNumber = accession
    return _file(inst.dataset, inst.meta)


def quarantine_list(archive: Archive) -> list[dict]:  # type: ignore[type-arg]
    run = cli(archive.server, "quarantine", "list", "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)  # type: ignore[no-any-return]


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "omipacs", "--config", str(server.config),
                           *args], capture_output=True, text=True, timeout=300)


def test_an_sr_arriving_before_its_images_waits_and_joins_their_client(
        archive: Archive) -> None:
    image = mammo("RSCH-55", issuer="RSCH", nhs=NHS_A, accession="ACC-55", rng=5)
    sr = cad_sr(image, "RIS-55")
    port = archive.server.dimse_port
    assert send(port, "SITE_A", [sr]) == [0]  # acknowledged: held, not guessed
    assert archive.client_of_study(image.StudyInstanceUID) == set()
    assert send(port, "SITE_A", [image]) == [0]
    # The SR followed the image into the study, under the image's linked client.
    assert archive.client_of_study(image.StudyInstanceUID) == {archive.linked(NHS_A)}
    assert len(archive.instances(image.StudyInstanceUID)) == 2
    assert not [e for e in quarantine_list(archive) if e["pending_keys"]]


def test_objects_without_nhs_number_join_their_studys_client(archive: Archive) -> None:
    image = mammo("RSCH-56", issuer="RSCH", nhs=NHS_A, accession="ACC-56", rng=6)
    port = archive.server.dimse_port
    assert send(port, "SITE_A", [image]) == [0]
    same_study = cad_sr(image, "RIS-56")
    # A KOS/SR in a new study that only shares the accession number (same site).
    same_order = cad_sr(image, "RIS-56", study_uid=f"{image.StudyInstanceUID}.7",
                        accession="ACC-56")
    assert send(port, "SITE_A", [same_study, same_order]) == [0, 0]
    assert archive.client_of_study(image.StudyInstanceUID) == {archive.linked(NHS_A)}
    assert archive.client_of_study(f"{image.StudyInstanceUID}.7") == {archive.linked(NHS_A)}


def test_a_study_never_gets_a_second_client(archive: Archive) -> None:
    first = mammo("RSCH-57", issuer="RSCH", nhs=NHS_A, rng=7)
    port = archive.server.dimse_port
    assert send(port, "SITE_A", [first]) == [0]
    other_woman = mammo("RSCH-58", issuer="RSCH", nhs=NHS_B, study_uid=first.StudyInstanceUID,
                        rng=8)
    before = len(quarantine_list(archive))
    assert send(port, "SITE_A", [other_woman]) == [0]  # held for review
    assert archive.client_of_study(first.StudyInstanceUID) == {archive.linked(NHS_A)}
    assert len(archive.instances(first.StudyInstanceUID)) == 1
    held = quarantine_list(archive)
    assert len(held) == before + 1 and "two clients" in held[-1]["reason"]


def test_a_pending_object_can_be_filed_by_an_operator(archive: Archive) -> None:
    image = mammo("RSCH-59", issuer="RSCH", rng=9)  # never sent
    sr = cad_sr(image, "RIS-59")
    assert send(archive.server.dimse_port, "SITE_A", [sr]) == [0]
    (entry,) = [e for e in quarantine_list(archive) if e["pending_keys"]]
    run = cli(archive.server, "quarantine", "release", entry["id"])
    assert run.returncode == 0, run.stderr
    (client,) = archive.client_of_study(image.StudyInstanceUID)
    assert client.startswith("UNLK")
