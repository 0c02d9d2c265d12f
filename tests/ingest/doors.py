"""The three ways in, driven as a peer drives them: C-STORE, STOW-RS and import.

Each function sends one file's bytes to a running archive and returns what the peer
was told, so a test can hold the same rule on every door.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from sqlalchemy import func, select

from omipacs.dicom.uids import ACCEPTED_TRANSFER_SYNTAXES, STORAGE_SOP_CLASSES
from omipacs.index.models import Instance
from omipacs.services import Services

BOUNDARY = "omipacs-doors-boundary"
STOW_CT = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


@dataclass(frozen=True)
class Told:
    """What one door answered for one file."""

    door: str
    status: int
    """The DIMSE status (C-STORE), the part's FailureReason or 0 (STOW), or a CLI code."""
    stored_uid: str = ""
    """The SOP Instance UID the archive reports for a stored instance (STOW, import)."""

    @property
    def accepted(self) -> bool:
        return self.status == 0


def scu(ae_title: str = "PYNETDICOM", sop_class: str | None = None) -> AE:
    """An SCU proposing ``sop_class`` (else the first storage class) once per accepted
    transfer syntax, so whatever syntax a file is in has its own accepted context."""
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(Verification)
    for syntax in ACCEPTED_TRANSFER_SYNTAXES:
        ae.add_requested_context(sop_class or next(iter(STORAGE_SOP_CLASSES)), syntax)
    return ae


def c_store(port: int, path: Path, ae_title: str = "PYNETDICOM") -> Told:
    """C-STORE the file, its data set bytes sent as they are in the file (pynetdicom's
    STORE_SEND_CHUNKED_DATASET), not decoded and re-encoded by the SCU.

    A file pynetdicom itself cannot read the meta of never leaves the client: that is
    reported as status -1 (nothing reached the archive).
    """
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        sop_class = str(read_file_meta_info(path).MediaStorageSOPClassUID)
    except Exception:
        return Told("c-store", -1)
    if sop_class not in STORAGE_SOP_CLASSES:
        sop_class = next(iter(STORAGE_SOP_CLASSES))
    assoc = scu(ae_title, sop_class).associate("127.0.0.1", port, ae_title="OMIPACS")
    assert assoc.is_established, "association was not accepted"
    try:
        try:
            rsp = assoc.send_c_store(path)
        except Exception:
            return Told("c-store", -1)
        status = int(rsp.Status) if "Status" in rsp else -1
        return Told("c-store", status)
    finally:
        if assoc.is_established:
            assoc.release()


def multipart(*parts: bytes) -> bytes:
    """A multipart/related body of application/dicom parts."""
    out = b""
    for p in parts:
        out += f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def stow(base_url: str, *parts: bytes, url: str = "/studies") -> tuple[int, dict[str, Any]]:
    """POST parts to STOW-RS; (HTTP status, DICOM JSON response or {})."""
    r = requests.post(
        base_url + url, data=multipart(*parts), headers={"Content-Type": STOW_CT}, timeout=60
    )
    try:
        doc = r.json()
    except ValueError:
        doc = {}
    return r.status_code, doc


def stow_one(base_url: str, data: bytes) -> Told:
    """STOW one part; status 0 if stored, else its FailureReason (or the HTTP status)."""
    code, doc = stow(base_url, data)
    if code == 200:
        ref = doc["00081199"]["Value"][0]
        return Told("stow", 0, ref.get("00081155", {}).get("Value", [""])[0])
    failed = doc.get("00081198", {}).get("Value", [])
    if failed and "00081197" in failed[0]:
        return Told("stow", int(failed[0]["00081197"]["Value"][0]))
    return Told("stow", code)


def import_files(config: Path, paths: list[Path], workdir: Path) -> dict[str, Any]:
    """Run ``omipacs import --json --no-deidentify`` on ``paths``; its JSON summary."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "omipacs",
            "--config",
            str(config),
            "import",
            "--json",
            "--no-deidentify",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr
    summary: dict[str, Any] = json.loads(proc.stdout[proc.stdout.index("{") :])
    return summary


def instance_count(services: Services) -> int:
    with services.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Instance)) or 0)


def leftovers(services: Services) -> list[Path]:
    """Files in any process's spool (nothing may stay once a transfer is answered)."""
    return [p for p in services.spool.base.rglob("*") if p.is_file() and p.suffix != ".lock"]
