"""Who an object belongs to, through the running archive (C-STORE): NHS numbers only
from identifiers that say so, and one client per study."""

from __future__ import annotations

from collections.abc import Iterator

import pydicom
import pytest
import requests
from pydicom.sequence import Sequence
from pynetdicom import AE

from omipacs.config import Peer
from omipacs.deid.keys import DeidKeys, load_keys
from omipacs.deid.pseudonyms import client_pseudonym, remap_uid
from omipacs.demo import factory
from tests.conftest import TEST_PEERS, ServerProcess, make_settings, start_server

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

    def client_of_study(self, original_study_uid: str) -> set[str]:
        """The Patient IDs the archive files the study under (by QIDO at instance level)."""
        study = remap_uid(self.keys, original_study_uid)
        r = requests.get(f"{self.server.base_url}/studies/{study}/instances",
                         params={"includefield": "00100020"}, timeout=30)
        if r.status_code == 204 or not r.content:
            return set()
        r.raise_for_status()
        return {i["00100020"]["Value"][0] for i in r.json()}

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

