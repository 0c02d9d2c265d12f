"""The DIMSE SCP over real sockets, with dcmtk and pynetdicom as peers."""

from __future__ import annotations

import hashlib
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from sqlalchemy import func, select

from omipacs.config import Settings
from omipacs.demo import factory
from omipacs.dicom.uids import ACCEPTED_TRANSFER_SYNTAXES, STORAGE_SOP_CLASSES
from omipacs.index.models import Instance
from omipacs.services import Services
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow


def _dataset_bytes(path: Path) -> bytes:
    """The data set part of a Part 10 file (after preamble and File Meta Information)."""
    from omipacs.dicom.parse import parse_file

    parsed = parse_file(path)
    return path.read_bytes()[parsed.dataset_offset :]


def _scu(ae_title: str = "PYNETDICOM") -> AE:
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(Verification)
    for sop_class in list(STORAGE_SOP_CLASSES)[:8]:
        ae.add_requested_context(sop_class, list(ACCEPTED_TRANSFER_SYNTAXES)[:2])
    return ae


def _index(server: ServerProcess) -> Iterator[Services]:
    svc = Services.create(server.settings, migrate=False)
    try:
        yield svc
    finally:
        svc.close()


def _count_instances(settings: Settings) -> int:
    svc = Services.create(settings, migrate=False)
    try:
        with svc.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Instance)) or 0)
    finally:
        svc.close()


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_echoscu_and_allow_list(server: ServerProcess) -> None:
    port = str(server.dimse_port)
    assert (
        _run(["echoscu", "-aet", "ECHOSCU", "-aec", "OMIPACS", "127.0.0.1", port]).returncode == 0
    )
    unknown = _run(["echoscu", "-aet", "STRANGER", "-aec", "OMIPACS", "127.0.0.1", port])
    assert unknown.returncode != 0
    assert "Association Rejected" in unknown.stderr, unknown.stderr
    assert "Calling AE Title Not Recognized" in unknown.stderr
    wrong_called = _run(["echoscu", "-aet", "ECHOSCU", "-aec", "SOMEONE", "127.0.0.1", port])
    assert wrong_called.returncode != 0


def test_pynetdicom_unknown_calling_ae_is_rejected(server: ServerProcess) -> None:
    assoc = _scu("INTRUDER").associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
    assert assoc.is_rejected
    assert (
        assoc.acceptor.primitive.result,
        assoc.acceptor.primitive.result_source,
        assoc.acceptor.primitive.diagnostic,
    ) == (1, 1, 3)


def test_storescu_stores_mammograms_and_dbt(server: ServerProcess, tmp_path: Path) -> None:
    files = []
    for i, (lat, view) in enumerate([("L", "CC"), ("R", "MLO")]):
        for processed in (True, False):
            path = tmp_path / f"mg{i}{processed}.dcm"
            factory.save(factory.make_mammo(laterality=lat, view=view, processed=processed), path)
            files.append(path)
    dbt = tmp_path / "dbt.dcm"
    factory.save(factory.make_dbt(frames=8), dbt)
    files.append(dbt)
    rle = tmp_path / "rle.dcm"
    factory.save(
        factory.compress(factory.make_mammo(rows=64, columns=64), pydicom.uid.RLELossless), rle
    )
    j2k = tmp_path / "j2k.dcm"
    factory.save(
        factory.compress(factory.make_mammo(rows=64, columns=64), pydicom.uid.JPEG2000Lossless), j2k
    )
    port = str(server.dimse_port)
    plain = _run(["storescu", "-R", "-aec", "OMIPACS", "127.0.0.1", port, *map(str, files)])
    assert plain.returncode == 0, plain.stderr
    assert _run(["storescu", "-xr", "-aec", "OMIPACS", "127.0.0.1", port, str(rle)]).returncode == 0
    assert _run(["storescu", "-xv", "-aec", "OMIPACS", "127.0.0.1", port, str(j2k)]).returncode == 0
    for svc in _index(server):
        with svc.sessions() as s:
            rows = {i.sop_instance_uid: i for i in s.scalars(select(Instance))}
        assert len(rows) == len(files) + 2
        for path in [*files, rle, j2k]:
            uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
            stored = svc.blobs.local_path(rows[uid].blob_key)
            assert stored is not None
            assert _dataset_bytes(stored) == _dataset_bytes(path)
            assert stored.read_bytes()[:128] == b"\x00" * 128
        assert (
            rows[pydicom.dcmread(rle).SOPInstanceUID].transfer_syntax_uid == pydicom.uid.RLELossless
        )


def _send_file(assoc: object, path: Path) -> int:
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        status = assoc.send_c_store(path)  # type: ignore[attr-defined]
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
    return int(status.Status) if status else -1


def test_c_store_statuses_for_bad_input(server: ServerProcess, tmp_path: Path) -> None:
    good = factory.make_mammo()
    dims = factory.make_mammo()
    dims.Rows, dims.Columns, dims.NumberOfFrames = 65535, 65535, 1_000_000
    bad_uid = factory.make_mammo()
    bad_uid.SOPInstanceUID = bad_uid.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6.0789"
    conflict = factory.make_mammo(sop_uid=good.SOPInstanceUID, study_uid=good.StudyInstanceUID)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(factory.to_bytes(factory.make_mammo())[:-5000])
    paths = {}
    for name, ds in [("good", good), ("dims", dims), ("bad_uid", bad_uid), ("conflict", conflict)]:
        paths[name] = tmp_path / f"{name}.dcm"
        factory.save(ds, paths[name])
    assoc = _scu().associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
    assert assoc.is_established
    try:
        assert _send_file(assoc, paths["good"]) == 0x0000
        assert _send_file(assoc, paths["good"]) == 0x0000  # identical re-send
        assert _send_file(assoc, paths["conflict"]) == 0x0111
        assert _send_file(assoc, paths["dims"]) == 0xA900
        assert _send_file(assoc, paths["bad_uid"]) == 0xA900
        assert _send_file(assoc, truncated) == 0xC000
    finally:
        assoc.release()
    assert _count_instances(server.settings) == 1
    root = Path(server.settings.storage.root)
    assert not [p for p in (root / "spool").rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_parallel_associations_store_every_instance_once(
    server: ServerProcess, tmp_path: Path
) -> None:
    n_assoc, per_assoc = 10, 50
    patient = factory.fake_patient(factory.as_rng(7))
    study = pydicom.uid.generate_uid()
    batches: list[list[pydicom.Dataset]] = [
        [
            factory.make_mammo(
                rows=64, columns=52, patient=patient, study_uid=study, rng=a * 1000 + i
            )
            for i in range(per_assoc)
        ]
        for a in range(n_assoc)
    ]

    def send(batch: list[pydicom.Dataset]) -> list[int]:
        assoc = _scu().associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
        assert assoc.is_established
        try:
            return [int(assoc.send_c_store(ds).Status) for ds in batch]
        finally:
            assoc.release()

    with ThreadPoolExecutor(n_assoc) as pool:
        statuses = [s for result in pool.map(send, batches) for s in result]
    assert statuses == [0] * (n_assoc * per_assoc)
    sent = {ds.SOPInstanceUID: ds for batch in batches for ds in batch}
    for svc in _index(server):
        with svc.sessions() as s:
            rows = list(s.scalars(select(Instance)))
        assert len(rows) == len(sent) == n_assoc * per_assoc
        assert len(list(svc.blobs.keys())) == len(sent)
        for row in rows:
            stored = svc.blobs.local_path(row.blob_key)
            assert stored is not None
            got = pydicom.dcmread(stored)
            assert got.PixelData == sent[row.sop_instance_uid].PixelData
            assert hashlib.sha256(stored.read_bytes()).hexdigest() == row.sha256


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _recv_all(sock: socket.socket) -> bytes:
    data = b""
    sock.settimeout(10)
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_oversized_pdu_is_aborted_without_buffering(server: ServerProcess) -> None:
    before = _rss_kib(server.process.pid)
    # 1. An A-ASSOCIATE-RQ header claiming ~4 GiB on a fresh connection.
    with socket.create_connection(("127.0.0.1", server.dimse_port)) as sock:
        sock.sendall(struct.pack(">BBL", 0x01, 0, 0xFFFFFFF0) + b"\x00" * 64)
        reply = _recv_all(sock)
    assert reply[:1] == b"\x07"  # A-ABORT
    # 2. A P-DATA-TF claiming ~4 GiB inside an established association.
    assoc = _scu().associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
    assert assoc.is_established
    raw = assoc.dul.socket.socket
    raw.sendall(struct.pack(">BBL", 0x04, 0, 0xFFFFFFF0) + b"\x00" * 1024)
    deadline = time.time() + 15
    while assoc.is_established and time.time() < deadline:
        time.sleep(0.05)
    assert assoc.is_aborted or not assoc.is_established
    assert _rss_kib(server.process.pid) - before < 64 * 1024
    # The server still serves others.
    ok = _scu().associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
    assert ok.is_established and ok.send_c_echo().Status == 0
    ok.release()


def test_max_associations(tmp_path: Path) -> None:
    from tests.conftest import make_settings, start_server

    settings = make_settings(tmp_path, max_associations=2)
    srv = start_server(settings, tmp_path)
    try:
        held = [_scu().associate("127.0.0.1", srv.dimse_port, ae_title="OMIPACS") for _ in range(2)]
        assert all(a.is_established for a in held)
        extra = _scu().associate("127.0.0.1", srv.dimse_port, ae_title="OMIPACS")
        assert extra.is_rejected
        assert (
            extra.acceptor.primitive.result,
            extra.acceptor.primitive.result_source,
            extra.acceptor.primitive.diagnostic,
        ) == (2, 3, 2)
        for a in held:
            assert a.send_c_echo().Status == 0
            a.release()
    finally:
        srv.stop()


def test_restart_keeps_everything(server: ServerProcess, tmp_path: Path) -> None:
    from tests.conftest import start_server

    path = tmp_path / "a.dcm"
    factory.save(factory.make_mammo(), path)
    port = str(server.dimse_port)
    assert _run(["storescu", "-aec", "OMIPACS", "127.0.0.1", port, str(path)]).returncode == 0
    server.stop()
    again = start_server(server.settings, tmp_path)
    try:
        assert _count_instances(server.settings) == 1
        assert _run(["storescu", "-aec", "OMIPACS", "127.0.0.1", port, str(path)]).returncode == 0
        assert _count_instances(server.settings) == 1
    finally:
        again.stop()


def test_postgresql_backend_end_to_end(tmp_path: Path, postgres: str) -> None:
    from tests.conftest import make_settings, start_server
    from tests.pg import create_database

    settings = make_settings(tmp_path, create_database(postgres))
    srv = start_server(settings, tmp_path)
    try:
        files = []
        for i in range(4):
            p = tmp_path / f"{i}.dcm"
            factory.save(factory.make_mammo(rows=64, columns=52), p)
            files.append(str(p))
        done = _run(["storescu", "-aec", "OMIPACS", "127.0.0.1", str(srv.dimse_port), *files])
        assert done.returncode == 0, done.stderr
    finally:
        srv.stop()
    srv = start_server(settings, tmp_path)
    try:
        assert _count_instances(settings) == 4
    finally:
        srv.stop()
