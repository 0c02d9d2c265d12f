"""Owner-only storage: folders 0700 and files 0600, through a running server and with a
permissive umask in-process (so the modes do not depend on the command line's umask)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pynetdicom import AE

from omipacs.bootstrap import open_archive
from omipacs.config import Settings
from omipacs.demo import factory
from omipacs.filemodes import private_dir, private_file
from omipacs.ingest.origin import IngestOrigin, OriginKind
from tests.conftest import start_server


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _loose(root: Path) -> list[str]:
    """Everything under ``root`` that is not owner-only (the key file is the test's own)."""
    found = []
    for dirpath, dirs, files in os.walk(root):
        for name in dirs:
            p = Path(dirpath) / name
            if _mode(p) != 0o700:
                found.append(f"{p} {oct(_mode(p))}")
        for name in files:
            p = Path(dirpath) / name
            if _mode(p) != 0o600:
                found.append(f"{p} {oct(_mode(p))}")
    return found


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.slow
def test_served_archive_is_owner_only(
    settings: Settings, tmp_path: Path, permissive_umask: None
) -> None:
    server = start_server(settings, tmp_path)
    try:
        mammo = factory.make_mammo(rows=64, columns=64)
        body = factory.to_bytes(mammo)
        r = requests.post(
            f"{server.base_url}/studies",
            data=b"--b\r\nContent-Type: application/dicom\r\n\r\n" + body + b"\r\n--b--\r\n",
            headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        ae = AE(ae_title="PYNETDICOM")
        ae.add_requested_context(mammo.SOPClassUID)
        assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
        assert assoc.is_established
        status = assoc.send_c_store(factory.make_mammo(rows=64, columns=64, rng=1))
        assoc.release()
        assert status.Status == 0
    finally:
        server.stop()
    root = settings.storage.root
    assert _mode(root) == 0o700
    for name in ("blobs", "spool", "quarantine"):
        assert _mode(root / name) == 0o700, name
    assert _mode(root / "index.sqlite") == 0o600
    blobs = [p for p in (root / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 2
    assert _loose(root) == []


def test_modes_do_not_depend_on_the_umask(settings: Settings, permissive_umask: None) -> None:
    services = open_archive(settings)
    try:
        src = settings.storage.root.parent / "in.dcm"
        factory.save(factory.make_mammo(rows=64, columns=64), src)
        origin = IngestOrigin(OriginKind.IMPORT, ae_title="IMPORT", deidentify=True)
        services.pipeline.ingest_file(src, origin)
        assert _loose(settings.storage.root) == []
        assert [p for p in (settings.storage.root / "blobs").rglob("*") if p.is_file()]
    finally:
        services.close()


def test_an_existing_archive_is_tightened_at_open(settings: Settings) -> None:
    root = settings.storage.root
    for name in ("spool", "blobs", "quarantine"):
        (root / name).mkdir(parents=True, mode=0o755)
        os.chmod(root / name, 0o755)
    (root / "index.sqlite").touch()
    os.chmod(root / "index.sqlite", 0o644)
    open_archive(settings).close()
    for name in ("spool", "blobs", "quarantine"):
        assert _mode(root / name) == 0o700
    assert _mode(root / "index.sqlite") == 0o600


def test_helpers(tmp_path: Path, permissive_umask: None) -> None:
    d = private_dir(tmp_path / "a" / "b" / "c")
    assert [_mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", d)] == [0o700] * 3
    f = private_file(d / "x")
    assert _mode(f) == 0o600 and f.read_bytes() == b""
    os.chmod(f, 0o400)
    private_file(f)
    assert _mode(f) == 0o400  # never loosened
