"""Identifiable screening images of named women, and the doors to send them through."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pydicom
import requests
from pynetdicom import AE
from sqlalchemy import create_engine, inspect, text

from omipacs.demo import factory
from omipacs.demo.names import fake_patient
from tests.ingest.doors import STOW_CT, multipart

MG = "1.2.840.10008.5.1.4.1.1.1.2"
NHS_A = "9990000018"
NHS_B = "9990000026"


def mammo(nhs: str, seed: int, **kw: object) -> bytes:
    """An identifiable FFDM image of the woman with NHS number ``nhs`` (as a site sends
    it: name, local ID, NHS number in Other Patient IDs with issuer NHS)."""
    rng = np.random.default_rng(seed)
    patient = dataclasses.replace(fake_patient(rng), nhs_number=nhs, local_id=f"H{nhs[-6:]}")
    ds = factory.make_mammo(patient=patient, rows=64, columns=48, rng=rng, **kw)  # type: ignore[arg-type]
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def c_store(port: int, ae_title: str, data: bytes) -> tuple[int, str]:
    """C-STORE ``data`` as ``ae_title``; (status, error comment)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(str(ds.SOPClassUID), [str(ds.file_meta.TransferSyntaxUID)])
    assoc = ae.associate("127.0.0.1", port, ae_title="OMIPACS")
    assert assoc.is_established
    try:
        rsp = assoc.send_c_store(ds)
        return int(rsp.Status), str(rsp.get("ErrorComment", ""))
    finally:
        assoc.release()


def stow(base_url: str, data: bytes) -> tuple[int, dict]:  # type: ignore[type-arg]
    """STOW-RS one part; (HTTP status, response document)."""
    r = requests.post(f"{base_url}/studies", data=multipart(data),
                      headers={"Content-Type": STOW_CT}, timeout=60)
    return r.status_code, (r.json() if r.content else {})


SKIP_TABLES = {"audit_event", "withdrawal", "alembic_version"}
"""Aside from the scans: the audit trail (append-only, by design) and the tombstone."""


def hits(data: bytes, traces: set[str]) -> set[str]:
    """Which of ``traces`` occur in ``data``."""
    return {t for t in traces if t.encode() in data}


def index_bytes(url: str) -> bytes:
    """The index as stored: the SQLite files' bytes (database and write-ahead log), or
    every PostgreSQL table as SQL rows (the audit trail and the tombstone aside)."""
    if url.startswith("sqlite"):
        db = Path(url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    engine = create_engine(url)
    out = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            if table not in SKIP_TABLES:
                out += [repr(tuple(r)).encode()
                        for r in conn.execute(text(f'SELECT * FROM "{table}"'))]
    engine.dispose()
    return b"\n".join(out)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
