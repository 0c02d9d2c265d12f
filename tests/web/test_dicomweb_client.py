"""Every dicomweb-client call against a live omipacs server on real sockets."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image

from omipacs.deid.keys import load_keys
from omipacs.deid.pseudonyms import remap_uid
from omipacs.demo import factory
from tests.conftest import ServerProcess, make_settings, start_server

pytestmark = pytest.mark.slow


class Data:
    """What the module's server holds."""

    def __init__(self) -> None:
        patient = factory.fake_patient(factory.as_rng(3))
        self.study = pydicom.uid.generate_uid()
        self.mammo = [
            factory.make_mammo(
                laterality=lat,
                view=view,
                processed=proc,
                patient=patient,
                study_uid=self.study,
                rows=128,
                columns=104,
                rng=i,
            )
            for i, (lat, view, proc) in enumerate(
                [("L", "CC", True), ("L", "MLO", True), ("R", "CC", False), ("R", "MLO", False)]
            )
        ]
        self.dbt = factory.make_dbt(
            frames=6, rows=64, columns=64, patient=patient, study_uid=self.study, rng=9
        )
        self.j2k = factory.compress(
            factory.make_dbt(
                frames=3, rows=64, columns=64, patient=patient, study_uid=self.study, rng=10
            ),
            pydicom.uid.JPEG2000Lossless,
        )
        self.all = [*self.mammo, self.dbt, self.j2k]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Data]]:
    root = tmp_path_factory.mktemp("dicomweb")
    server = start_server(make_settings(root), root)
    data = Data()
    client = DICOMwebClient(server.base_url)
    client.store_instances([pydicom.dcmread(io.BytesIO(factory.to_bytes(ds))) for ds in data.all])
    # STOW-RS de-identifies by default: the archive holds the data under remapped UIDs.
    keys = load_keys(server.settings.deid)
    for ds in data.all:
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            setattr(ds, keyword, remap_uid(keys, str(getattr(ds, keyword))))
    data.study = remap_uid(keys, data.study)
    yield server, data
    server.stop()


@pytest.fixture
def client(live: tuple[ServerProcess, Data]) -> DICOMwebClient:
    return DICOMwebClient(live[0].base_url)


@pytest.fixture
def data(live: tuple[ServerProcess, Data]) -> Data:
    return live[1]


def _uids(ds: pydicom.Dataset) -> tuple[str, str, str]:
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def test_search_all_levels(client: DICOMwebClient, data: Data) -> None:
    studies = client.search_for_studies()
    assert [s["0020000D"]["Value"][0] for s in studies] == [data.study]
    assert studies[0]["00201208"]["Value"] == [len(data.all)]
    series = client.search_for_series(data.study)
    assert len(series) == len(data.all)
    instances = client.search_for_instances(data.study)
    assert {i["00080018"]["Value"][0] for i in instances} == {d.SOPInstanceUID for d in data.all}
    left_mlo = client.search_for_instances(
        search_filters={"ImageLaterality": "L", "ViewPosition": "MLO"}
    )
    assert [i["00080018"]["Value"][0] for i in left_mlo] == [data.mammo[1].SOPInstanceUID]
    assert client.search_for_studies(search_filters={"PatientID": "nobody"}) == []


def test_retrieve_instance_series_study(client: DICOMwebClient, data: Data) -> None:
    got = client.retrieve_instance(*_uids(data.mammo[0]))
    assert got.PixelData == data.mammo[0].PixelData
    series = client.retrieve_series(data.dbt.StudyInstanceUID, data.dbt.SeriesInstanceUID)
    assert [s.SOPInstanceUID for s in series] == [data.dbt.SOPInstanceUID]
    study = list(client.iter_study(data.study))
    assert {s.SOPInstanceUID for s in study} == {d.SOPInstanceUID for d in data.all}
    # Without a transfer-syntax parameter the default is Explicit VR Little Endian
    # (PS3.18 §8.7.3.5.2): the JPEG 2000 object is decompressed on the way out.
    j2k = client.retrieve_instance(*_uids(data.j2k), media_types=("application/dicom",))
    assert j2k.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert np.array_equal(j2k.pixel_array, data.j2k.pixel_array)
    as_stored = client.retrieve_instance(*_uids(data.j2k))  # the client's default: "*"
    assert as_stored.file_meta.TransferSyntaxUID == pydicom.uid.JPEG2000Lossless


def test_metadata_all_levels(client: DICOMwebClient, data: Data) -> None:
    inst = client.retrieve_instance_metadata(*_uids(data.dbt))
    assert inst["00080018"]["Value"] == [data.dbt.SOPInstanceUID]
    assert inst["7FE00010"]["BulkDataURI"].startswith("http://")
    series = client.retrieve_series_metadata(data.dbt.StudyInstanceUID, data.dbt.SeriesInstanceUID)
    assert len(series) == 1
    study = client.retrieve_study_metadata(data.study)
    assert len(study) == len(data.all)


def test_frames_native_and_compressed(client: DICOMwebClient, data: Data) -> None:
    frames = client.retrieve_instance_frames(*_uids(data.dbt), frame_numbers=[1, 6])
    expected = data.dbt.pixel_array
    for got, k in zip(frames, (0, 5), strict=True):
        assert np.array_equal(np.frombuffer(got, dtype=expected.dtype).reshape(64, 64), expected[k])
    raw = client.retrieve_instance_frames(
        *_uids(data.j2k),
        frame_numbers=[2],
        media_types=(("application/octet-stream", pydicom.uid.ExplicitVRLittleEndian),),
    )
    assert np.array_equal(
        np.frombuffer(raw[0], dtype=np.uint16).reshape(64, 64), data.j2k.pixel_array[1]
    )
    for media_types in ((("image/jp2", pydicom.uid.JPEG2000Lossless),), None):
        compressed = client.retrieve_instance_frames(
            *_uids(data.j2k), frame_numbers=[2], media_types=media_types
        )
        assert (
            compressed[0]
            == list(pydicom.encaps.generate_frames(data.j2k.PixelData, number_of_frames=3))[1]
        )


def test_rendered_and_frame_rendered(client: DICOMwebClient, data: Data) -> None:
    jpeg = client.retrieve_instance_rendered(*_uids(data.mammo[0]))
    assert Image.open(io.BytesIO(jpeg)).size == (104, 128)
    png = client.retrieve_instance_frames_rendered(
        *_uids(data.dbt), frame_numbers=[3], media_types=("image/png",)
    )
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_bulkdata_with_range(client: DICOMwebClient, data: Data) -> None:
    meta = client.retrieve_instance_metadata(*_uids(data.mammo[0]))
    uri = meta["7FE00010"]["BulkDataURI"]
    whole = client.retrieve_bulkdata(uri)[0]
    assert whole == data.mammo[0].PixelData
    part = client.retrieve_bulkdata(uri, byte_range=(10, 19))[0]
    assert part == data.mammo[0].PixelData[10:20]


def test_store_returns_references(
    client: DICOMwebClient, live: tuple[ServerProcess, Data], tmp_path: Path
) -> None:
    ds = pydicom.dcmread(io.BytesIO(factory.to_bytes(factory.make_mammo(rows=32, columns=32))))
    response = client.store_instances([ds])
    refs = response.ReferencedSOPSequence
    stored_uid = remap_uid(load_keys(live[0].settings.deid), ds.SOPInstanceUID)
    assert refs[0].ReferencedSOPInstanceUID == stored_uid
    assert refs[0].RetrieveURL.endswith(stored_uid)
