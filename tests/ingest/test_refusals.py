"""Refusals through the running server: deflate, forged meta group length, partial STOW.

Every case is sent by a real peer (pynetdicom, HTTP, ``omipacs import``) to an
``omipacs serve`` process, and every refusal must leave nothing behind.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from omipacs.demo import factory
from omipacs.errors import DimseStatus
from omipacs.services import Services
from tests.conftest import ServerProcess
from tests.ingest import doors
from tests.ingest.malformed import with_syntax

pytestmark = pytest.mark.slow


def _mammo_bytes() -> bytes:
    return factory.to_bytes(factory.make_mammo(rows=32, columns=32))


def deflate_bomb(inflated_bytes: int) -> bytes:
    """A deflated file whose data set inflates to about ``inflated_bytes``."""
    import zlib

    ds = factory.make_mammo(rows=32, columns=32)
    plain = factory.to_bytes(ds)
    from omipacs.dicom.parse import parse_file

    tmp = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path("/tmp")
    src = tmp / f"bomb-{id(ds)}.dcm"
    src.write_bytes(plain)
    try:
        offset = parse_file(src).dataset_offset
    finally:
        src.unlink()
    # The data set (explicit VR LE) followed by a private OB element of zeros.
    pad = struct.pack("<HH", 0x0011, 0x1010) + b"OB\x00\x00" + struct.pack("<L", inflated_bytes)
    body = plain[offset:] + pad
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = comp.compress(body)
    chunk = bytes(1 << 20)
    for _ in range(inflated_bytes >> 20):
        stream += comp.compress(chunk)
    stream += comp.compress(bytes(inflated_bytes & ((1 << 20) - 1))) + comp.flush()
    return with_syntax(plain[:offset], DeflatedExplicitVRLittleEndian) + stream


def test_deflate_is_refused_before_inflation_on_every_door(
    server: ServerProcess, archive: Services, tmp_path: Path
) -> None:
    bomb = deflate_bomb(64 << 20)
    assert len(bomb) < 200_000
    # Not even valid zlib: inflating would fail as 0xC000, so 0xC122 proves no inflation.
    plain = _mammo_bytes()
    meta_end = plain.index(b"\x08\x00", 132)
    garbage = with_syntax(plain[:meta_end], DeflatedExplicitVRLittleEndian) + b"\xff" * 300
    for data in (bomb, garbage):
        told = doors.stow_one(server.base_url, data)
        assert told.status == DimseStatus.TRANSFER_SYNTAX_NOT_SUPPORTED, told
    files = [tmp_path / "bomb.dcm", tmp_path / "garbage.dcm"]
    files[0].write_bytes(bomb)
    files[1].write_bytes(garbage)
    summary = doors.import_files(server.config, files, tmp_path)
    assert summary["rejected"] == 2 and summary["stored"] == 0
    assert all("deflate" in reason for reason in summary["reasons"])
    # C-STORE: the archive does not accept a deflated presentation context at all.
    ae = doors.scu()
    ae.requested_contexts = []
    ae.add_requested_context(Verification)
    ae.add_requested_context(factory.make_mammo().SOPClassUID, DeflatedExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="OMIPACS")
    try:
        assert assoc.is_established
        assert [c.abstract_syntax for c in assoc.accepted_contexts] == [Verification]
    finally:
        assoc.release()
    assert doors.instance_count(archive) == 0 and doors.leftovers(archive) == []


def _forged_group_length(data: bytes) -> bytes:
    out = bytearray(data)
    at = out.index(b"\x02\x00\x00\x00UL")
    out[at + 8 : at + 12] = struct.pack("<L", 0xFFFFFFF0)
    return bytes(out)


def test_forged_meta_group_length_is_refused_not_a_silent_duplicate(
    server: ServerProcess, archive: Services, tmp_path: Path
) -> None:
    first = factory.make_mammo(rows=32, columns=32)
    path = tmp_path / "first.dcm"
    path.write_bytes(factory.to_bytes(first))
    assert doors.c_store(server.dimse_port, path).accepted  # a peer stored unchanged
    # A different instance (other pixels) under the same UID, with a forged group length.
    other = factory.make_mammo(rows=32, columns=32, sop_uid=first.SOPInstanceUID)
    forged = _forged_group_length(factory.to_bytes(other))
    told = doors.stow_one(server.base_url, forged)
    assert told.status == DimseStatus.CANNOT_UNDERSTAND, told
    path = tmp_path / "forged.dcm"
    path.write_bytes(forged)
    assert doors.import_files(server.config, [path], tmp_path)["rejected"] == 1
    # Over C-STORE the meta is the SCP's own; the same instance is then a conflict.
    path.write_bytes(factory.to_bytes(other))
    assert doors.c_store(server.dimse_port, path).status == DimseStatus.DUPLICATE_SOP_INSTANCE
    assert doors.instance_count(archive) == 1 and doors.leftovers(archive) == []


def test_body_breaking_after_a_stored_part_is_202_with_the_failure(
    server: ServerProcess, archive: Services
) -> None:
    import requests

    good = _mammo_bytes()
    broken = (
        f"--{doors.BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + good
        + f"\r\n--{doors.BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + good[:500]  # no closing delimiter: the body is cut short
    )
    r = requests.post(
        server.base_url + "/studies",
        data=broken,
        headers={"Content-Type": doors.STOW_CT},
        timeout=60,
    )
    assert r.status_code == 202, r.text
    doc = r.json()
    assert len(doc["00081199"]["Value"]) == 1
    (failed,) = doc["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [DimseStatus.CANNOT_UNDERSTAND]
    assert doors.instance_count(archive) == 1 and doors.leftovers(archive) == []


def test_failures_name_the_instance_from_one_parse(server: ServerProcess) -> None:
    ds = factory.make_mammo(rows=32, columns=32)
    ds.Rows = 4000  # the pixel bytes no longer match the declared size
    code, doc = doors.stow(server.base_url, _mammo_bytes(), factory.to_bytes(ds))
    assert code == 202
    (failed,) = doc["00081198"]["Value"]
    assert failed["00081150"]["Value"] == [ds.SOPClassUID]
    assert failed["00081155"]["Value"] == [ds.SOPInstanceUID]
    assert failed["00081197"]["Value"] == [DimseStatus.DATASET_DOES_NOT_MATCH]


def test_stow_source_has_no_bare_status_literals() -> None:
    import re

    import omipacs.web.stow as stow

    text = Path(stow.__file__).read_text()
    assert not re.search(r"0x[0-9A-Fa-f]{4}\b", text.split('"""', 2)[2])
