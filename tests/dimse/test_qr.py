"""Query/Retrieve over real sockets: C-FIND, C-MOVE and C-GET from dcmtk and pynetdicom.

The archive is the query tests' fixture (tests/query/archive.py) ingested into a real
``omipacs serve`` process on SQLite and on PostgreSQL, plus a thousand-odd bare patient
rows so that cancelling and the result limit have something to cut. C-MOVE sends to a
dcmtk ``storescp`` started by the test; retrieved files are compared byte for byte
with the stored ones.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from sqlalchemy import insert, select

from omipacs.access.audit import query_events
from omipacs.cohorts.models import Cohort, CohortMember
from omipacs.config import Peer
from omipacs.dicom.parse import parse_file
from omipacs.index.models import Instance, Patient
from omipacs.query.params import parse_qido
from omipacs.query.search import search
from omipacs.services import Services
from tests.conftest import TEST_PEERS, ServerProcess, make_settings, start_server
from tests.pg import free_port
from tests.query.archive import BTO, MG_PRESENTATION, MG_PROCESSING, SC, label, populate, uid

pytestmark = pytest.mark.slow

BULK = 1200
MAX_FIND = 1000
DEST = "DEST"


@dataclass
class QR:
    """A running archive with the fixture, and where its move destination listens."""

    server: ServerProcess
    dest_port: int
    stored: dict[str, bytes]
    """Data set bytes (after the File Meta Information) of every stored instance."""


def _dataset_bytes(path: Path) -> bytes:
    return path.read_bytes()[parse_file(path).dataset_offset :]


@pytest.fixture
def qr(tmp_path: Path, db_url: str) -> Iterator[QR]:
    dest_port = free_port()
    peers = (
        *TEST_PEERS,
        Peer("MOVESCU"),
        Peer("GETSCU"),
        Peer(DEST, host="127.0.0.1", port=dest_port),
        Peer("NOPORT", host="127.0.0.1"),
    )
    settings = make_settings(tmp_path, db_url, peers=peers, max_find_results=MAX_FIND)
    svc = Services.create(settings)
    try:
        populate(svc, tmp_path)
        with svc.write_sessions() as s, s.begin():
            s.execute(
                insert(Patient),
                [
                    {"patient_id": f"BULK{n:05d}", "patient_name": f"BULK^{n}"}
                    | {"patient_name_search": f"BULK^{n}", "issuer": "", "sex": ""}
                    for n in range(BULK)
                ],
            )
        with svc.sessions() as s:
            stored = {
                i.sop_instance_uid: svc.blobs.local_path(i.blob_key).read_bytes()[  # type: ignore[union-attr]
                    i.dataset_offset :
                ]
                for i in s.scalars(select(Instance))
            }
    finally:
        svc.close()
    server = start_server(settings, tmp_path)
    try:
        yield QR(server, dest_port, stored)
    finally:
        server.stop()


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)


def _scu(ae_title: str = "PYNETDICOM") -> AE:
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    return ae


def _find(qr: QR, model: str, **keys: Any) -> tuple[list[Dataset], int, Dataset | None]:
    """Matches, final status and final status data set of a pynetdicom C-FIND."""
    ae = _scu()
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", qr.server.dimse_port, ae_title="OMIPACS")
    assert assoc.is_established
    ident = Dataset()
    for key, value in keys.items():
        setattr(ident, key, value)
    matches: list[Dataset] = []
    final: tuple[int, Dataset | None] = (-1, None)
    try:
        for status, found in assoc.send_c_find(ident, model):
            if status.Status in (0xFF00, 0xFF01):
                matches.append(found)
            else:
                final = (int(status.Status), status)
    finally:
        assoc.release()
    return matches, final[0], final[1]


def _labels(matches: list[Dataset], keyword: str) -> set[str]:
    return {label(str(getattr(m, keyword))) for m in matches}


# --- C-FIND -----------------------------------------------------------------------------


@pytest.mark.postgres
def test_findscu_study_root_matches_like_qido(qr: QR, tmp_path: Path) -> None:
    out = tmp_path / "find"
    out.mkdir()
    found = _run(
        [
            "findscu", "-S", "-aet", "FINDSCU", "-aec", "OMIPACS", "-X", "-od", str(out),
            "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName=ng*", "-k", "StudyInstanceUID",
            "-k", "PatientID", "-k", "StudyDate", "-k", "ModalitiesInStudy",
            "-k", "NumberOfStudyRelatedInstances",
            "127.0.0.1", str(qr.server.dimse_port),
        ]
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    responses = [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    # Person names match without regard to case, exactly as QIDO-RS's PatientName=ng*.
    assert _labels(responses, "StudyInstanceUID") == {"3", "4"}
    by_study = {label(r.StudyInstanceUID): r for r in responses}
    assert by_study["4"].PatientID == "XA1"
    assert by_study["4"].StudyDate == "20200301"
    assert by_study["4"].ModalitiesInStudy == "MG"
    assert by_study["4"].NumberOfStudyRelatedInstances == 1
    assert by_study["4"].QueryRetrieveLevel == "STUDY"
    # Only the keys asked for (and the level's unique key) come back.
    assert "StudyDescription" not in by_study["4"] and "PatientName" in by_study["4"]
    # The same query through QIDO-RS's parser and search gives the same studies.
    svc = Services.create(qr.server.settings, migrate=False)
    try:
        with svc.sessions() as s:
            result = search(s, parse_qido([("PatientName", "ng*")], "study"))
    finally:
        svc.close()
    assert {label(i["0020000D"]["Value"][0]) for i in result.items} == {"3", "4"}


@pytest.mark.postgres
def test_four_levels_patient_and_study_root(qr: QR) -> None:
    patient_root = PatientRootQueryRetrieveInformationModelFind
    study_root = StudyRootQueryRetrieveInformationModelFind
    patients, status, _ = _find(
        qr, patient_root, QueryRetrieveLevel="PATIENT", PatientID="X*", PatientName=""
    )
    assert status == 0
    assert {p.PatientID for p in patients} == {"X_1", "XA1"}
    assert {str(p.PatientName) for p in patients} == {"Ng^Ann", "NGUYEN^ANNA"}
    studies, status, _ = _find(
        qr, patient_root, QueryRetrieveLevel="STUDY", PatientID="P001", StudyInstanceUID=""
    )
    assert (status, _labels(studies, "StudyInstanceUID")) == (0, {"1"})
    series, status, _ = _find(
        qr,
        study_root,
        QueryRetrieveLevel="SERIES",
        StudyInstanceUID=uid("2"),
        SeriesInstanceUID="",
        Modality="",
        NumberOfSeriesRelatedInstances="",
    )
    assert (status, _labels(series, "SeriesInstanceUID")) == (0, {"2.1", "2.2", "2.3"})
    assert {label(s.SeriesInstanceUID): s.NumberOfSeriesRelatedInstances for s in series}[
        "2.2"
    ] == 2
    # Image level with the mammography keys: left cranio-caudal views, any study.
    images, status, _ = _find(
        qr,
        study_root,
        QueryRetrieveLevel="IMAGE",
        ImageLaterality="L",
        ViewPosition="CC",
        SOPInstanceUID="",
        SOPClassUID="",
    )
    assert (status, _labels(images, "SOPInstanceUID")) == (0, {"1.1.1", "3.1.1"})
    assert {i.SOPClassUID for i in images} == {MG_PRESENTATION}
    # A UID list and a date range, as C-FIND writes them.
    listed, status, _ = _find(
        qr,
        study_root,
        QueryRetrieveLevel="STUDY",
        StudyInstanceUID=[uid("1"), uid("2"), uid("3")],
        StudyDate="20200101-20201231",
    )
    assert (status, _labels(listed, "StudyInstanceUID")) == (0, {"1"})


def test_find_sequence_key_unsupported_key_and_bad_identifier(qr: QR) -> None:
    study_root = StudyRootQueryRetrieveInformationModelFind
    view = Dataset()
    view.CodeValue = "399368009"  # medio-lateral oblique
    images, status, _ = _find(
        qr,
        study_root,
        QueryRetrieveLevel="IMAGE",
        StudyInstanceUID=uid("2"),
        ViewCodeSequence=[view],
        SOPInstanceUID="",
        SOPClassUID=[MG_PRESENTATION, MG_PROCESSING, SC],
        StudyComments="",  # not held by the archive: returned empty, not matched
    )
    assert status == 0
    assert _labels(images, "SOPInstanceUID") == {"2.2.1", "2.2.2"}
    assert all("StudyComments" in i and i.StudyComments in ("", None) for i in images)
    assert all(i.ViewCodeSequence[0].CodeValue == "399368009" for i in images)
    _, status, final = _find(qr, study_root, QueryRetrieveLevel="STUDY", StudyDate="2020-01")
    assert status == 0xA900 and final is not None and "StudyDate" in final.ErrorComment
    _, status, _ = _find(qr, study_root, QueryRetrieveLevel="PATIENT", PatientID="")
    assert status == 0xA900


def test_find_result_limit_and_cancel(qr: QR, tmp_path: Path) -> None:
    patient_root = PatientRootQueryRetrieveInformationModelFind
    matches, status, final = _find(qr, patient_root, QueryRetrieveLevel="PATIENT", PatientID="")
    assert len(matches) == MAX_FIND
    assert status == 0xA700 and final is not None
    assert f"more than {MAX_FIND} matches" in final.ErrorComment
    # dcmtk findscu sends C-CANCEL after the first response.
    out = _run(
        [
            "findscu", "-P", "-aet", "FINDSCU", "-aec", "OMIPACS", "--cancel", "1", "-v",
            "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=BULK*",
            "127.0.0.1", str(qr.server.dimse_port),
        ]
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    log = out.stdout + out.stderr
    assert "Cancel" in log, log[-2000:]
    assert log.count("Find Response:") < BULK


# --- C-MOVE -----------------------------------------------------------------------------


@pytest.fixture
def storescp(qr: QR, tmp_path: Path) -> Iterator[Path]:
    """dcmtk storescp as the C-MOVE destination, writing received data bit for bit."""
    out = tmp_path / "received"
    out.mkdir()
    proc = subprocess.Popen(
        ["storescp", "-aet", DEST, "+xa", "+B", "-od", str(out), str(qr.dest_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", qr.dest_port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("storescp did not start") from None
            time.sleep(0.1)
    try:
        yield out
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _received(folder: Path) -> dict[str, bytes]:
    return {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): _dataset_bytes(p)
        for p in folder.iterdir()
    }


@pytest.mark.postgres
def test_movescu_to_storescp_is_byte_identical(qr: QR, storescp: Path) -> None:
    moved = _run(
        [
            "movescu", "-S", "-aet", "MOVESCU", "-aec", "OMIPACS", "-aem", DEST,
            "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid('2')}\\{uid('4')}",
            "127.0.0.1", str(qr.server.dimse_port),
        ]
    )  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    got = _received(storescp)
    assert {label(u) for u in got} == {"2.1.1", "2.2.1", "2.2.2", "2.3.1", "4.1.1"}
    for sop_uid, data in got.items():
        assert data == qr.stored[sop_uid], label(sop_uid)


def test_move_counts_and_unknown_destination(qr: QR, storescp: Path) -> None:
    model = StudyRootQueryRetrieveInformationModelMove
    ae = _scu()
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", qr.server.dimse_port, ae_title="OMIPACS")
    assert assoc.is_established
    ident = Dataset()
    ident.QueryRetrieveLevel = "IMAGE"
    ident.StudyInstanceUID = uid("1")
    ident.SeriesInstanceUID = uid("1.1")
    ident.SOPInstanceUID = [uid("1.1.1"), uid("2.2.1")]  # 2.2.1 is in another series
    try:
        responses = [s for s, _ in assoc.send_c_move(ident, DEST, model)]
        refused = [s.Status for s, _ in assoc.send_c_move(ident, "NOWHERE", model)]
        no_port = [s.Status for s, _ in assoc.send_c_move(ident, "NOPORT", model)]
    finally:
        assoc.release()
    final = responses[-1]
    assert final.Status == 0x0000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (1, 0)
    assert set(_received(storescp)) == {uid("1.1.1")}
    assert refused == [0xA801] and no_port == [0xA801]


# --- C-GET ------------------------------------------------------------------------------


@pytest.mark.postgres
def test_pynetdicom_get_with_role_selection(qr: QR) -> None:
    model = PatientRootQueryRetrieveInformationModelGet
    ae = _scu()
    ae.add_requested_context(model)
    roles = []
    for sop_class in (MG_PRESENTATION, MG_PROCESSING, BTO, SC):
        ae.add_requested_context(sop_class, pydicom.uid.ExplicitVRLittleEndian)
        roles.append(build_role(sop_class, scp_role=True))
    received: dict[str, bytes] = {}

    def on_store(event: Any) -> int:
        received[str(event.request.AffectedSOPInstanceUID)] = event.request.DataSet.getvalue()
        return 0

    assoc = ae.associate(
        "127.0.0.1",
        qr.server.dimse_port,
        ae_title="OMIPACS",
        ext_neg=roles,
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.PatientID = "P001"
    ident.StudyInstanceUID = uid("1")
    try:
        responses = [s for s, _ in assoc.send_c_get(ident, model)]
    finally:
        assoc.release()
    final = responses[-1]
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 4
    assert {label(u) for u in received} == {"1.1.1", "1.2.1", "1.3.1", "1.4.1"}
    for sop_uid, data in received.items():
        assert data == qr.stored[sop_uid]


def test_getscu_series(qr: QR, tmp_path: Path) -> None:
    out = tmp_path / "got"
    out.mkdir()
    got = _run(
        [
            "getscu", "-S", "-aet", "GETSCU", "-aec", "OMIPACS", "+B", "-od", str(out),
            "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={uid('2')}",
            "-k", f"SeriesInstanceUID={uid('2.2')}",
            "127.0.0.1", str(qr.server.dimse_port),
        ]
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    files = _received(out)
    assert {label(u) for u in files} == {"2.2.1", "2.2.2"}
    for sop_uid, data in files.items():
        assert data == qr.stored[sop_uid]


def test_get_refuses_a_bad_identifier(qr: QR) -> None:
    model = StudyRootQueryRetrieveInformationModelGet
    ae = _scu()
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", qr.server.dimse_port, ae_title="OMIPACS")
    ident = Dataset()
    ident.QueryRetrieveLevel = "SERIES"
    ident.StudyInstanceUID = uid("2")
    try:
        statuses = [s.Status for s, _ in assoc.send_c_get(ident, model)]
    finally:
        assoc.release()
    assert statuses[-1] == 0xA900


# --- omipacs send -----------------------------------------------------------------------


def _omipacs(qr: QR, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "omipacs", "--config", str(qr.server.config), *args])


@pytest.mark.postgres
def test_send_studies_and_a_cohort(qr: QR, storescp: Path) -> None:
    svc = Services.create(qr.server.settings, migrate=False)
    try:
        with svc.write_sessions() as s, s.begin():
            cohort = Cohort(
                name="left-views",
                version=1,
                definition={},
                definition_sha256="0" * 64,
                members_sha256="0" * 64,
                client_count=2,
                study_count=2,
            )
            s.add(cohort)
            s.flush()
            s.add_all(
                CohortMember(cohort_pk=cohort.pk, client_id=f"C{n}", study_instance_uid=uid(n))
                for n in ("1", "3")
            )
            cohort_id = cohort.pk
    finally:
        svc.close()
    one = _omipacs(qr, "send", "--to", DEST, "--json", uid("4"))
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["completed"] == 1
    assert {label(u) for u in _received(storescp)} == {"4.1.1"}
    many = _omipacs(qr, "send", "--to", DEST, "--cohort", str(cohort_id))
    assert many.returncode == 0, many.stderr
    got = _received(storescp)
    assert {label(u) for u in got} == {"4.1.1", "1.1.1", "1.2.1", "1.3.1", "1.4.1", "3.1.1"}
    for sop_uid, data in got.items():
        assert data == qr.stored[sop_uid]
    unknown = _omipacs(qr, "send", "--to", "NOWHERE", uid("4"))
    assert unknown.returncode == 2 and "allow-list" in unknown.stderr
    no_port = _omipacs(qr, "send", "--to", "NOPORT", uid("4"))
    assert no_port.returncode == 2 and "host and port" in no_port.stderr


def _dimse_events(qr: QR, action: str, want: int) -> list[Any]:
    """The server's audit events of ``action`` (waiting for its batch writer)."""
    deadline = time.time() + 30
    while True:
        svc = Services.create(qr.server.settings, migrate=False)
        try:
            with svc.sessions() as s:
                events = [e for e in query_events(s) if e.door == "dimse" and e.action == action]
        finally:
            svc.close()
        if len(events) >= want or time.time() > deadline:
            return events
        time.sleep(0.2)


def test_query_retrieve_is_audited_without_key_values(qr: QR, storescp: Path) -> None:
    _find(
        qr,
        StudyRootQueryRetrieveInformationModelFind,
        QueryRetrieveLevel="STUDY",
        PatientName="Ng*",
        StudyInstanceUID="",
    )
    model = StudyRootQueryRetrieveInformationModelMove
    ae = _scu()
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", qr.server.dimse_port, ae_title="OMIPACS")
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = uid("4")
    try:
        list(assoc.send_c_move(ident, DEST, model))
        list(assoc.send_c_move(ident, "NOWHERE", model))
    finally:
        assoc.release()
    (found,) = _dimse_events(qr, "c-find", 1)
    assert (found.user_email, found.outcome, found.reason) == (
        "ae:PYNETDICOM",
        "allowed",
        "2 matches",
    )
    assert "ng" not in (found.resource + found.reason).lower()
    moves = _dimse_events(qr, "c-move", 2)
    assert {(m.outcome, m.status) for m in moves} == {("allowed", 0), ("denied", 0xA801)}
    assert any(m.resource == f"studies {uid('4')}" for m in moves)
