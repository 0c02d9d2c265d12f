"""Stateless workers: two ``omipacs serve`` processes, one PostgreSQL, one bucket.

Each process stands for a machine: its own storage root (spool, quarantine) and ports,
and only what docs/deployment.md says must be shared is shared: the index (PostgreSQL),
the bucket (S3 API), the de-identification key and the identity map (a PostgreSQL
database of its own). What goes in through one comes out of the other, byte-identical,
and a study sent half to each is filed under one client.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pynetdicom import AE

from omipacs.config import Settings
from omipacs.deid.identity import IdentityMap
from omipacs.demo import factory
from omipacs.dicom.uids import ACCEPTED_TRANSFER_SYNTAXES, STORAGE_SOP_CLASSES
from tests.conftest import ServerProcess, make_settings, start_server
from tests.objectstores import MotoS3
from tests.pg import create_database, free_port

pytestmark = pytest.mark.slow


def machine(shared: Settings, root: Path) -> Settings:
    """The settings of one machine: shared index, bucket, key, identity map; own root."""
    root.mkdir()
    return dataclasses.replace(
        shared,
        storage=dataclasses.replace(shared.storage, root=root / "storage"),
        dimse=dataclasses.replace(shared.dimse, port=free_port()),
        http=dataclasses.replace(shared.http, port=free_port()),
    )


def studies(server: ServerProcess) -> dict[str, int]:
    r = requests.get(f"{server.base_url}/studies", timeout=30)
    assert r.status_code == 200
    return {s["0020000D"]["Value"][0]: int(s["00201208"]["Value"][0]) for s in r.json()}


def retrieve(server: ServerProcess, study: str) -> list[bytes]:
    client = DICOMwebClient(server.base_url)
    out = []
    for ds in client.retrieve_study(study):
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(ds.SOPInstanceUID.encode() + buffer.getvalue()[128:])
    return sorted(out)


def test_ingest_through_one_server_and_read_through_the_other(
    tmp_path: Path, postgres: str, moto_s3: MotoS3
) -> None:
    bucket = moto_s3.bucket()
    base = make_settings(tmp_path, create_database(postgres))
    identity = create_database(postgres)
    shared = dataclasses.replace(
        base,
        storage=dataclasses.replace(base.storage, url=bucket.url, options=bucket.options),
        deid=dataclasses.replace(base.deid, identity_url=identity),
    )
    one = start_server(machine(shared, tmp_path / "one"), tmp_path / "one")
    two = start_server(machine(shared, tmp_path / "two"), tmp_path / "two")
    try:
        # A screening site sends a study to one (C-STORE, de-identified on the way in).
        ae = AE(ae_title="SITE_A")
        for sop_class in list(STORAGE_SOP_CLASSES)[:8]:
            ae.add_requested_context(sop_class, list(ACCEPTED_TRANSFER_SYNTAXES)[:2])
        patient = factory.fake_patient(factory.as_rng(3))
        study_uid = pydicom.uid.generate_uid()
        sent = [
            factory.make_mammo(
                rows=128, columns=104, patient=patient, view=view, study_uid=study_uid, rng=i
            )
            for i, view in enumerate(("CC", "MLO"))
        ]
        # Half of it reaches one machine, half the other (two DIMSE routes).
        for server, ds in zip((one, two), sent, strict=True):
            assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
            assert assoc.is_established
            try:
                assert int(assoc.send_c_store(ds).Status) == 0
            finally:
                assoc.release()
        # Both servers answer the same; the bytes come from the bucket, not either root.
        seen = studies(two)
        assert seen == studies(one) and sorted(seen.values()) == [2]
        (study,) = seen
        # One client, recorded from both machines in the shared identity database; no
        # machine keeps an identity file of its own.
        with IdentityMap(identity) as shared_map:
            assert len(shared_map) == 1
        for server in (one, two):
            assert not list(server.settings.storage.root.rglob("identity*"))
        patients = {
            ds.PatientID for ds in DICOMwebClient(two.base_url).retrieve_study(study)
        }
        assert len(patients) == 1
        assert retrieve(two, study) == retrieve(one, study)
        for server in (one, two):
            blobs = server.settings.storage.root / "blobs"
            assert not blobs.exists() or not any(p.is_file() for p in blobs.rglob("*"))
        # A tool saves an object through two (STOW-RS); one serves it.
        extra = factory.make_mammo(rows=64, columns=52, rng=9)
        DICOMwebClient(two.base_url).store_instances([extra])
        after = studies(one)
        assert len(after) == 2 and after == studies(two)
        (new,) = set(after) - {study}
        assert retrieve(one, new) == retrieve(two, new)
        (got,) = DICOMwebClient(one.base_url).retrieve_study(new)
        assert got.PixelData == extra.PixelData
    finally:
        one.stop()
        two.stop()
