"""Query/Retrieve against the DICOMweb baseline, on one archive in the same run.

Stores one study (a tomosynthesis object of ``--frames`` frames of 1024 x 1024 16-bit
pixels plus four mammograms), then times:

- WADO-RS study retrieve as stored (the baseline) against C-GET and C-MOVE (to dcmtk
  ``storescp``) of the same study, in MB/s, with the server's peak RSS growth (sub-
  operations stream the stored file with at most ``MAX_QUEUED_PDUS`` PDUs waiting per
  association, so the growth stays at a few MiB whatever the object's size; before that
  bound, a 63 MB study grew the server by 45 MiB over C-GET);
- QIDO-RS ``/instances`` (the baseline) against an IMAGE-level C-FIND over the same
  instances, median of ``--repeat`` runs.

Usage: ``python tests/benchmarks/bench_qr.py [--frames 60] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pydicom
import requests
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from omipacs.config import Peer  # noqa: E402
from omipacs.demo import factory  # noqa: E402
from omipacs.demo.names import fake_patient  # noqa: E402
from omipacs.dicom.uids import BREAST_TOMOSYNTHESIS, MG_FOR_PRESENTATION  # noqa: E402
from omipacs.index.models import Instance  # noqa: E402
from omipacs.ingest.origin import IngestOrigin, OriginKind  # noqa: E402
from omipacs.services import Services  # noqa: E402
from tests.benchmarks.common import free_port, peak_rss_mib  # noqa: E402
from tests.conftest import TEST_PEERS, make_settings, start_server  # noqa: E402


def _ae() -> AE:
    ae = AE(ae_title="PYNETDICOM")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
    ae.maximum_pdu_size = 1 << 20
    return ae


def _ident(study: str, level: str = "STUDY") -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    ds.StudyInstanceUID = study
    return ds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-qr-"))
    dest_port = free_port()
    settings = make_settings(
        work, peers=(*TEST_PEERS, Peer("DEST", host="127.0.0.1", port=dest_port))
    )
    patient = fake_patient(factory.as_rng(1))
    study = pydicom.uid.generate_uid()
    objects = [
        factory.make_dbt(
            frames=args.frames, rows=1024, columns=1024, patient=patient, study_uid=study, rng=2
        ),
        *(
            factory.make_mammo(laterality=lat, view=v, patient=patient, study_uid=study, rng=10 + i)
            for i, (lat, v) in enumerate([("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")])
        ),
    ]
    svc = Services.create(settings)
    for i, ds in enumerate(objects):
        path = work / f"{i}.dcm"
        factory.save(ds, path)
        svc.pipeline.ingest_file(path, IngestOrigin(OriginKind.IMPORT, deidentify=False))
        path.unlink()
    with svc.sessions() as session:
        total = int(session.scalar(select(func.sum(Instance.size_bytes))) or 0)
    svc.close()
    server = start_server(settings, work)
    pid = server.process.pid
    mb = total / 1e6
    print(f"study: {len(objects)} instances, {mb:.1f} MB stored")
    try:
        # Warm both doors up first, so the peak RSS growth below is the retrieval's own.
        requests.get(f"{server.base_url}/studies", timeout=60).raise_for_status()
        warm = _ae()
        warm.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        assoc = warm.associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
        list(assoc.send_c_find(_ident(study), StudyRootQueryRetrieveInformationModelFind))
        assoc.release()
        rows = []
        rss0 = peak_rss_mib(pid)
        t = time.perf_counter()
        r = requests.get(
            f"{server.base_url}/studies/{study}",
            headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
            timeout=600,
        )
        assert r.status_code == 200
        rows.append(("WADO-RS study (baseline)", time.perf_counter() - t, peak_rss_mib(pid) - rss0))

        got: list[int] = []

        def on_store(event: Any) -> int:
            got.append(len(event.request.DataSet.getvalue()))
            return 0

        ae = _ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        for sop in (BREAST_TOMOSYNTHESIS, MG_FOR_PRESENTATION):
            ae.add_requested_context(sop, pydicom.uid.ExplicitVRLittleEndian)
        roles = [build_role(s, scp_role=True) for s in (BREAST_TOMOSYNTHESIS, MG_FOR_PRESENTATION)]
        rss0 = peak_rss_mib(pid)
        t = time.perf_counter()
        assoc = ae.associate(
            "127.0.0.1", server.dimse_port, ae_title="OMIPACS", ext_neg=roles,
            evt_handlers=[(evt.EVT_C_STORE, on_store)],
        )  # fmt: skip
        list(assoc.send_c_get(_ident(study), StudyRootQueryRetrieveInformationModelGet))
        assoc.release()
        assert len(got) == len(objects)
        rows.append(("C-GET study", time.perf_counter() - t, peak_rss_mib(pid) - rss0))

        out = work / "moved"
        out.mkdir()
        scp = subprocess.Popen(
            ["storescp", "-aet", "DEST", "+B", "-od", str(out), str(dest_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
        ae = _ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        rss0 = peak_rss_mib(pid)
        t = time.perf_counter()
        assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
        list(assoc.send_c_move(_ident(study), "DEST", StudyRootQueryRetrieveInformationModelMove))
        assoc.release()
        rows.append(("C-MOVE study to storescp", time.perf_counter() - t, peak_rss_mib(pid) - rss0))
        scp.terminate()
        scp.wait(timeout=30)
        assert len(list(out.iterdir())) == len(objects)

        base = rows[0][1]
        print(f"{'retrieve':32} {'s':>7} {'MB/s':>8} {'vs WADO':>8} {'RSS +MiB':>9}")
        for name, seconds, rss in rows:
            print(f"{name:32} {seconds:7.2f} {mb / seconds:8.1f} {base / seconds:8.2f} {rss:9.1f}")

        def qido() -> float:
            t = time.perf_counter()
            requests.get(f"{server.base_url}/instances", timeout=60).raise_for_status()
            return time.perf_counter() - t

        def cfind() -> float:
            ae = _ae()
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
            t = time.perf_counter()
            assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
            ident = Dataset()
            ident.QueryRetrieveLevel = "IMAGE"
            ident.SOPInstanceUID = ""
            list(assoc.send_c_find(ident, StudyRootQueryRetrieveInformationModelFind))
            assoc.release()
            return time.perf_counter() - t

        q = statistics.median(qido() for _ in range(args.repeat))
        f = statistics.median(cfind() for _ in range(args.repeat))
        print(
            f"QIDO-RS /instances (baseline): {q * 1000:.1f} ms; "
            f"C-FIND IMAGE (with association): {f * 1000:.1f} ms; ratio {f / q:.2f}"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
