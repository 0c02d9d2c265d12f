"""The ingest pipeline on SQLite and PostgreSQL: store, duplicates, rejections."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import func, select

from omipacs.demo import factory
from omipacs.dicom import json as dicom_json
from omipacs.errors import (
    DuplicateInstance,
    InvalidAttributes,
    InvalidInstance,
    OmipacsError,
    SopClassNotSupported,
    StudyMismatch,
)
from omipacs.index.models import Instance, InstanceMetadata, Patient, Series, Study
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.ingest.result import IngestOutcome
from omipacs.services import Services

ORIGIN = IngestOrigin(OriginKind.IMPORT, deidentify=False)


def _file(tmp_path: Path, ds: pydicom.Dataset, name: str = "in.dcm") -> Path:
    path = tmp_path / name
    factory.save(ds, path)
    return path


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _count(svc: Services, model: type) -> int:
    with svc.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_store_indexes_mammography_attributes(any_db_services: Services, tmp_path: Path) -> None:
    ds = factory.make_mammo(laterality="R", view="MLO", processed=False, vendor="GE")
    path = _file(tmp_path, ds)
    result = any_db_services.pipeline.ingest_file(path, ORIGIN)
    assert result.outcome is IngestOutcome.STORED
    with any_db_services.sessions() as s:
        inst = s.scalars(select(Instance)).one()
        assert (inst.laterality, inst.view_position, inst.view_code) == ("R", "MLO", "399368009")
        assert inst.presentation_intent_type == "FOR PROCESSING"
        assert inst.sop_class_uid == "1.2.840.10008.5.1.4.1.1.1.2.1"
        assert inst.manufacturer.startswith("GE")
        assert (inst.rows, inst.columns, inst.number_of_frames) == (256, 208, 1)
        meta = s.get(InstanceMetadata, inst.pk)
        assert meta is not None
        doc = dicom_json.unpack(meta.dicom_json)
        assert doc["00080018"]["Value"] == [ds.SOPInstanceUID]
        assert doc["7FE00010"]["BulkDataURI"] == "bulkdata/7FE00010"
        stored = any_db_services.blobs.local_path(inst.blob_key)
        assert stored is not None
        data = stored.read_bytes()
        assert hashlib.sha256(data).hexdigest() == inst.sha256
    original = path.read_bytes()
    assert data[:128] == b"\x00" * 128
    assert data[128:] == original[128:]


def test_dbt_frame_laterality_and_frames(any_db_services: Services, tmp_path: Path) -> None:
    ds = factory.make_dbt(laterality="L", view="CC", frames=5)
    any_db_services.pipeline.ingest_file(_file(tmp_path, ds), ORIGIN)
    with any_db_services.sessions() as s:
        inst = s.scalars(select(Instance)).one()
        assert inst.laterality == "L" and inst.view_position == "" and inst.number_of_frames == 5
        meta = s.get(InstanceMetadata, inst.pk)
        assert meta is not None and len(meta.frames) == 5


def test_identical_resend_is_idempotent(any_db_services: Services, tmp_path: Path) -> None:
    ds = factory.make_mammo()
    path = _file(tmp_path, ds)
    first = any_db_services.pipeline.ingest_file(path, ORIGIN)
    again = any_db_services.pipeline.ingest_file(path, ORIGIN)
    assert again.outcome is IngestOutcome.ALREADY_STORED
    assert again.sha256 == first.sha256
    assert _count(any_db_services, Instance) == 1
    assert len(list(any_db_services.blobs.keys())) == 1


def test_same_uid_other_content_is_refused_and_stored_copy_kept(
    any_db_services: Services, tmp_path: Path
) -> None:
    ds = factory.make_mammo()
    first = any_db_services.pipeline.ingest_file(_file(tmp_path, ds, "a.dcm"), ORIGIN)
    ds.StudyDescription = "changed"
    with pytest.raises(DuplicateInstance) as info:
        any_db_services.pipeline.ingest_file(_file(tmp_path, ds, "b.dcm"), ORIGIN)
    assert info.value.dimse_status == 0x0111
    with any_db_services.sessions() as s:
        inst = s.scalars(select(Instance)).one()
        assert inst.sha256 == first.sha256
    assert len(list(any_db_services.blobs.keys())) == 1
    assert not list(any_db_services.spool.dir.iterdir())


def test_one_study_many_series(any_db_services: Services, tmp_path: Path) -> None:
    patient = factory.fake_patient(factory.as_rng(1))
    study = pydicom.uid.generate_uid()
    for i, (lat, view) in enumerate([("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")]):
        ds = factory.make_mammo(laterality=lat, view=view, patient=patient, study_uid=study)
        any_db_services.pipeline.ingest_file(_file(tmp_path, ds, f"{i}.dcm"), ORIGIN)
    assert (_count(any_db_services, Patient), _count(any_db_services, Study)) == (1, 1)
    assert (_count(any_db_services, Series), _count(any_db_services, Instance)) == (4, 4)


def _bad_uid(ds: pydicom.Dataset) -> None:
    ds.SOPInstanceUID = "../../x"
    ds.file_meta.MediaStorageSOPInstanceUID = "../../x"


def _no_study(ds: pydicom.Dataset) -> None:
    del ds.StudyInstanceUID


def _absurd_dimensions(ds: pydicom.Dataset) -> None:
    ds.Rows = 65535
    ds.Columns = 65535
    ds.NumberOfFrames = 1_000_000


def _short_pixels(ds: pydicom.Dataset) -> None:
    ds.Rows = ds.Rows * 2


def _long_uid(ds: pydicom.Dataset) -> None:
    uid = "1." + "2" * 70
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid


def _ct(ds: pydicom.Dataset) -> None:
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID


@pytest.mark.parametrize(
    ("mutate", "error", "status"),
    [
        (_bad_uid, InvalidAttributes, 0xA900),
        (_long_uid, InvalidAttributes, 0xA900),
        (_no_study, InvalidAttributes, 0xA900),
        (_absurd_dimensions, InvalidAttributes, 0xA900),
        (_short_pixels, InvalidAttributes, 0xA900),
        (_ct, SopClassNotSupported, 0x0122),
    ],
)
def test_bad_instances_are_rejected_and_nothing_stored(
    services: Services, tmp_path: Path, mutate: object, error: type[OmipacsError], status: int
) -> None:
    ds = factory.make_mammo()
    mutate(ds)  # type: ignore[operator]
    path = _file(tmp_path, ds)
    before = _files_under(tmp_path)
    with pytest.raises(error) as info:
        services.pipeline.ingest_file(path, ORIGIN)
    assert info.value.dimse_status == status
    assert _count(services, Instance) == 0
    assert not list(services.blobs.keys())
    # No file appears anywhere, inside or outside the storage root.
    assert _files_under(tmp_path) - before == set()


@pytest.mark.parametrize("cut", [0.5, 0.1])
def test_truncated_file_is_not_understood(services: Services, tmp_path: Path, cut: float) -> None:
    raw = factory.to_bytes(factory.make_mammo())
    path = tmp_path / "t.dcm"
    path.write_bytes(raw[: int(len(raw) * cut)])
    with pytest.raises(InvalidInstance) as info:
        services.pipeline.ingest_file(path, ORIGIN)
    assert info.value.dimse_status == 0xC000
    assert _count(services, Instance) == 0
    assert not list(services.spool.dir.iterdir())


def test_preamble_is_zeroed(services: Services, tmp_path: Path) -> None:
    raw = bytearray(factory.to_bytes(factory.make_mammo()))
    raw[:4] = b"MZ\x90\x00"  # a PE header in the preamble (CVE-2019-11687)
    path = tmp_path / "pe.dcm"
    path.write_bytes(bytes(raw))
    services.pipeline.ingest_file(path, ORIGIN)
    with services.sessions() as s:
        key = s.scalars(select(Instance.blob_key)).one()
    stored = services.blobs.local_path(key)
    assert stored is not None and stored.read_bytes()[:128] == b"\x00" * 128


def test_study_mismatch_for_stow_urls(services: Services, tmp_path: Path) -> None:
    origin = IngestOrigin(OriginKind.STOW, deidentify=False, expected_study_uid="1.2.3")
    with pytest.raises(StudyMismatch):
        services.pipeline.ingest_file(_file(tmp_path, factory.make_mammo()), origin)


@pytest.mark.parametrize("syntax", factory.lossless_syntaxes())
def test_compressed_instances_stored_as_received(
    services: Services, tmp_path: Path, syntax: str
) -> None:
    ds = factory.compress(factory.make_dbt(frames=3, rows=64, columns=64), syntax)
    path = _file(tmp_path, ds)
    services.pipeline.ingest_file(path, ORIGIN)
    with services.sessions() as s:
        inst = s.scalars(select(Instance)).one()
        assert inst.transfer_syntax_uid == syntax
    stored = services.blobs.local_path(inst.blob_key)
    assert stored is not None and stored.read_bytes()[128:] == path.read_bytes()[128:]


def test_spool_is_same_filesystem_as_blobs(services: Services) -> None:
    blob_root = Path(services.settings.storage.root) / "blobs"
    assert os.stat(services.spool.dir).st_dev == os.stat(blob_root).st_dev


def test_same_data_set_with_other_meta_is_already_stored(
    any_db_services: Services, tmp_path: Path
) -> None:
    """An import and a C-STORE of one instance carry different File Meta Information."""
    ds = factory.make_mammo()
    any_db_services.pipeline.ingest_file(_file(tmp_path, ds, "a.dcm"), ORIGIN)
    ds.file_meta.ImplementationClassUID = "1.2.3.4"
    ds.file_meta.ImplementationVersionName = "OTHER_SCU"
    again = any_db_services.pipeline.ingest_file(_file(tmp_path, ds, "b.dcm"), ORIGIN)
    assert again.outcome is IngestOutcome.ALREADY_STORED
    assert _count(any_db_services, Instance) == 1


def test_disk_full_is_out_of_resources_and_nothing_is_left(
    services: Services, tmp_path: Path
) -> None:
    """Injected fault: the blob store's filesystem is full when the instance is moved in."""
    import errno

    from omipacs.dimse.status import from_exception
    from omipacs.errors import OutOfResources

    path = _file(tmp_path, factory.make_mammo())
    original = services.blobs.put_file

    def full(src: Path) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    services.pipeline.blobs.put_file = full  # type: ignore[method-assign]
    try:
        with pytest.raises(OutOfResources) as info:
            services.pipeline.ingest_file(path, ORIGIN)
    finally:
        services.pipeline.blobs.put_file = original  # type: ignore[method-assign]
    assert info.value.dimse_status == 0xA700 and info.value.http_status == 507
    assert from_exception(info.value).Status == 0xA700
    assert _count(services, Instance) == 0
    assert not list(services.spool.dir.iterdir())
    # Space is back: the same instance is stored normally.
    assert services.pipeline.ingest_file(path, ORIGIN).outcome is IngestOutcome.STORED
