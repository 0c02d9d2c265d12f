"""OHIF v3's request profile (as recorded from OHIF 3.12.10 by
tests/e2e/ohif_check.py) replayed request for request against demo data."""

from __future__ import annotations

import email.parser
import json
from collections.abc import Iterator
from dataclasses import replace

import pydicom
import pytest
from flask.testing import FlaskClient

from omipacs.bootstrap import open_archive
from omipacs.config import Settings
from omipacs.demo.load import load_demo
from omipacs.web.app import create_app

JSON = {"Accept": "application/dicom+json"}
FRAMES = {"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"}


@pytest.fixture
def ohif(settings: Settings) -> Iterator[FlaskClient]:
    load_demo(settings, clients=2, seed=1)
    # A viewer saves SRs made against the archive's own UIDs: STOW stores them unchanged.
    settings = replace(settings, http=replace(settings.http, stow_deidentify=False))
    services = open_archive(settings)
    yield create_app(services).test_client()
    services.close()


def _json(client: FlaskClient, url: str, headers: dict[str, str] | None = None) -> list[dict]:  # type: ignore[type-arg]
    r = client.get(url, headers=headers or JSON)
    assert r.status_code == 200, (url, r.data[:200])
    assert r.content_type.startswith("application/dicom+json")
    return json.loads(r.data)  # type: ignore[no-any-return]


def _parts(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    msg = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    return [(p.get_content_type() + "; " + str(p.get_params()), p.get_payload(decode=True))
            for p in msg.get_payload()]


def test_ohif_profile(ohif: FlaskClient) -> None:
    # 1. Study list (OHIF 3.12.10's form).
    studies = _json(ohif, "/dicom-web/studies?limit=101&offset=0&fuzzymatching=false"
                          "&includefield=00081030,00080060,00080090,00100030")
    assert studies and all("00201208" in s and "00080061" in s for s in studies)
    first = studies[0]
    uid = first["0020000D"]["Value"][0]
    pid = first["00100020"]["Value"][0]
    date = first["00080020"]["Value"][0]
    # 1b. Study list with OHIF's filters: wildcards wrapped *...*, date range, UID list.
    filtered = _json(
        ohif,
        f"/dicom-web/studies?PatientName=*{pid[2:8]}*&00100020=*{pid[1:6]}*"
        f"&StudyDate={date}-{date}&ModalitiesInStudy=MG&StudyInstanceUID={uid}\\1.2.3"
        "&limit=101&offset=0&fuzzymatching=false&includefield=00081030,00080060")
    assert [s["0020000D"]["Value"][0] for s in filtered] == [uid]
    # 2. Row expand.
    series = _json(ohif, f"/dicom-web/studies/{uid}/series?includefield=0008103E,00080021")
    assert series and all(s["0020000D"]["Value"] == [uid] for s in series)
    # 3. Open study (lazy): series QIDO, one /metadata per series; non-lazy study metadata.
    _json(ohif, f"/dicom-web/studies/{uid}/series?includefield=00080021,00080031,0008103E,"
                "00200011")
    _json(ohif, f"/dicom-web/studies?00100020={pid}&limit=101&offset=0&fuzzymatching=false"
                "&includefield=00081030,00080060")
    all_meta = _json(ohif, f"/dicom-web/studies/{uid}/metadata")
    for s in series:
        se = s["0020000E"]["Value"][0]
        meta = _json(ohif, f"/dicom-web/studies/{uid}/series/{se}/metadata")
        for inst in meta:
            sop = inst["00080018"]["Value"][0]
            frames = inst.get("00280008", {}).get("Value", [1])[0]
            # 4. Pixels: every frame as stored, transfer syntax on each part.
            for n in {1, int(frames)}:
                r = ohif.get(f"/dicom-web/studies/{uid}/series/{se}/instances/{sop}/frames/{n}",
                             headers=FRAMES)
                assert r.status_code == 200
                (part_type, payload), = _parts(r.data, r.headers["Content-Type"])
                assert "transfer-syntax" in part_type
                rows, cols = inst["00280010"]["Value"][0], inst["00280011"]["Value"][0]
                assert len(payload) == rows * cols * 2
            # 5. Bulk data by its BulkDataURI (absolute; made relative for the test client).
            uri = inst["7FE00010"]["BulkDataURI"]
            assert uri.startswith("http://")
            r = ohif.get(uri.split("localhost", 1)[1], headers={"Accept": "*/*"})
            assert r.status_code == 200
    assert len(all_meta) == sum(s["00201209"]["Value"][0] for s in series)
    # 6. Thumbnails via /thumbnail and /rendered with image/jpeg.
    se = series[0]["0020000E"]["Value"][0]
    assert ohif.get(f"/dicom-web/studies/{uid}/series/{se}/thumbnail",
                    headers={"Accept": "image/jpeg"}).content_type == "image/jpeg"
    sop = _json(ohif, f"/dicom-web/studies/{uid}/series/{se}/instances")[0]["00080018"]["Value"][0]
    assert ohif.get(f"/dicom-web/studies/{uid}/series/{se}/instances/{sop}/rendered",
                    headers={"Accept": "image/jpeg"}).status_code == 200
    # 7. Writes: an SR saved with STOW to the study.
    sr = pydicom.Dataset()
    sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.34"
    sr.SOPInstanceUID = pydicom.uid.generate_uid()
    sr.StudyInstanceUID = uid
    sr.SeriesInstanceUID = pydicom.uid.generate_uid()
    sr.Modality = "SR"
    sr.PatientID = pid
    sr.file_meta = pydicom.dataset.FileMetaDataset()
    sr.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID
    sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID
    import io

    buf = io.BytesIO()
    sr.save_as(buf, enforce_file_format=True)
    body = (b"--B\r\nContent-Type: application/dicom\r\n\r\n" + buf.getvalue()
            + b"\r\n--B--\r\n")
    r = ohif.post("/dicom-web/studies", data=body, headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=B',
        "Accept": "application/dicom+json"})
    assert r.status_code == 200
    assert sr.SOPInstanceUID in {i["00080018"]["Value"][0] for i in
                                 _json(ohif, f"/dicom-web/studies/{uid}/instances")}
