"""PS3.18 details over real sockets: XML metadata, Retrieve URLs, Content-Location on
parts, Accept parameters, Allow on 405, JPEG frames, rendered GIF, unknown parameters."""

from __future__ import annotations

import email
import email.policy
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.message import Message

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image

from omipacs.deid.keys import load_keys
from omipacs.deid.pseudonyms import remap_uid
from omipacs.demo import factory
from tests.conftest import ServerProcess, make_settings, start_server

pytestmark = pytest.mark.slow

NS = {"d": "http://dicom.nema.org/PS3.19/models/NativeDICOM"}
TIMEOUT = 60


class Data:
    """One study: two mammograms and a three-frame tomosynthesis object."""

    def __init__(self) -> None:
        patient = factory.fake_patient(factory.as_rng(5))
        self.study = pydicom.uid.generate_uid()
        self.mammo = [
            factory.make_mammo(
                laterality=lat, patient=patient, study_uid=self.study, rows=64, columns=48, rng=i
            )
            for i, lat in enumerate(("L", "R"))
        ]
        self.dbt = factory.make_dbt(
            frames=3, rows=32, columns=32, patient=patient, study_uid=self.study, rng=7
        )

    def path(self, ds: pydicom.Dataset) -> str:
        return f"/studies/{self.study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Data]]:
    root = tmp_path_factory.mktemp("ps318")
    server = start_server(make_settings(root), root)
    data = Data()
    DICOMwebClient(server.base_url).store_instances(
        [pydicom.dcmread(io.BytesIO(factory.to_bytes(ds))) for ds in [*data.mammo, data.dbt]]
    )
    # STOW-RS de-identifies: the archive holds the data under remapped UIDs.
    keys = load_keys(server.settings.deid)
    for ds in [*data.mammo, data.dbt]:
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            setattr(ds, keyword, remap_uid(keys, str(getattr(ds, keyword))))
    data.study = remap_uid(keys, data.study)
    yield server, data
    server.stop()


@pytest.fixture
def base(live: tuple[ServerProcess, Data]) -> str:
    return live[0].base_url


@pytest.fixture
def data(live: tuple[ServerProcess, Data]) -> Data:
    return live[1]


def _parts(response: requests.Response) -> list[Message]:
    head = f"Content-Type: {response.headers['Content-Type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + response.content, policy=email.policy.HTTP)
    assert message.is_multipart()
    return list(message.iter_parts())  # type: ignore[attr-defined]


def test_metadata_as_native_dicom_model_xml(base: str, data: Data) -> None:
    r = requests.get(
        f"{base}/studies/{data.study}/metadata",
        headers={"Accept": 'multipart/related; type="application/dicom+xml"'},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("multipart/related")
    assert "application/dicom+xml" in r.headers["Content-Type"]
    parts = _parts(r)
    assert len(parts) == 3
    sop_uids = set()
    for part in parts:
        assert part.get_content_type() == "application/dicom+xml"
        root = ET.fromstring(part.get_payload(decode=True))
        assert root.tag == f"{{{NS['d']}}}NativeDicomModel"
        sop = root.find("d:DicomAttribute[@tag='00080018']/d:Value", NS)
        assert sop is not None and sop.attrib["number"] == "1"
        sop_uids.add(sop.text)
        name = root.find("d:DicomAttribute[@keyword='PatientName']/d:PersonName/d:Alphabetic", NS)
        assert name is not None and name.find("d:FamilyName", NS) is not None
        pixels = root.find("d:DicomAttribute[@tag='7FE00010']/d:BulkData", NS)
        assert pixels is not None and pixels.attrib["uri"].startswith(base)
    assert sop_uids == {ds.SOPInstanceUID for ds in [*data.mammo, data.dbt]}
    # JSON stays the default, and a wildcard still gets it.
    assert (
        requests.get(f"{base}/studies/{data.study}/metadata", timeout=TIMEOUT)
        .headers["Content-Type"]
        .startswith("application/dicom+json")
    )


def test_retrieve_url_in_qido_at_every_level(base: str, data: Data) -> None:
    client = DICOMwebClient(base)
    (study,) = client.search_for_studies(search_filters={"StudyInstanceUID": data.study})
    assert study["00081190"] == {"vr": "UR", "Value": [f"{base}/studies/{data.study}"]}
    series = client.search_for_series(data.study)
    series_urls = {s["00081190"]["Value"][0] for s in series}
    assert f"{base}/studies/{data.study}/series/{data.dbt.SeriesInstanceUID}" in series_urls
    instances = client.search_for_instances(data.study)
    urls = {i["00081190"]["Value"][0] for i in instances}
    assert urls == {f"{base}{data.path(ds)}" for ds in [*data.mammo, data.dbt]}
    # The URL is a working WADO-RS URL.
    assert requests.get(next(iter(urls)) + "/metadata", timeout=TIMEOUT).status_code == 200


def test_stow_response_starts_with_the_study_url(
    live: tuple[ServerProcess, Data], base: str
) -> None:
    ds = factory.make_mammo(rows=32, columns=32, rng=11)
    result = DICOMwebClient(base).store_instances(
        [pydicom.dcmread(io.BytesIO(factory.to_bytes(ds)))]
    )
    study = remap_uid(load_keys(live[0].settings.deid), ds.StudyInstanceUID)
    assert result.RetrieveURL == f"{base}/studies/{study}"
    assert result.ReferencedSOPSequence[0].RetrieveURL.startswith(result.RetrieveURL + "/series/")


def test_content_location_on_frame_and_bulkdata_parts(base: str, data: Data) -> None:
    url = f"{base}{data.path(data.dbt)}"
    r = requests.get(
        f"{url}/frames/1,3",
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200
    assert [p["Content-Location"] for p in _parts(r)] == [f"{url}/frames/1", f"{url}/frames/3"]
    r = requests.get(
        f"{url}/bulkdata/7FE00010",
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200
    assert [p["Content-Location"] for p in _parts(r)] == [f"{url}/bulkdata/7FE00010"]


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/dicom+json; charset=utf-8", 200),
        ("application/dicom+json;charset=UTF-8", 200),
        ("application/json; charset=utf-8; q=0.9", 200),
        ("application/dicom+json; charset=iso-8859-1", 406),
        ("application/dicom+json; q=0", 406),
    ],
)
def test_accept_parameters_follow_rfc_9110(base: str, data: Data, accept: str, status: int) -> None:
    for path in ("/studies", f"/studies/{data.study}/metadata"):
        r = requests.get(f"{base}{path}", headers={"Accept": accept}, timeout=TIMEOUT)
        assert r.status_code == status, (path, accept)


def test_every_405_has_allow(base: str, data: Data) -> None:
    for method, path, allowed in [
        ("POST", f"/studies/{data.study}/metadata", {"GET"}),
        ("DELETE", "/studies", {"GET", "POST"}),
        ("PUT", f"/studies/{data.study}", {"GET", "POST"}),
    ]:
        r = requests.request(method, f"{base}{path}", timeout=TIMEOUT)
        assert r.status_code == 405, (method, path)
        methods = {m.strip() for m in r.headers["Allow"].split(",")}
        assert allowed <= methods, (method, path, methods)


def test_jpeg_frames_are_a_documented_406(base: str, data: Data) -> None:
    r = requests.get(
        f"{base}{data.path(data.mammo[0])}/frames/1",
        headers={"Accept": "image/jpeg"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 406
    assert "does not re-encode lossily" in r.json()["error"]


def test_rendered_gif(base: str, data: Data) -> None:
    r = requests.get(
        f"{base}{data.path(data.mammo[0])}/rendered",
        headers={"Accept": "image/gif"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/gif"
    image = Image.open(io.BytesIO(r.content))
    assert image.format == "GIF" and image.size == (48, 64)


def test_unknown_query_parameters(base: str, data: Data) -> None:
    r = requests.get(
        f"{base}/studies",
        params={"StudyInstanceUID": data.study, "PatientWeight": "70"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200 and len(r.json()) == 1
    assert "PatientWeight" in r.headers["Warning"] and r.headers["Warning"].startswith("299 ")
    r = requests.get(f"{base}/studies", params={"orderby": "StudyDate"}, timeout=TIMEOUT)
    assert r.status_code == 400 and "orderby" in r.json()["error"]
