"""WADO-RS "as stored" bodies go out of gunicorn's workers with sendfile.

The server is a real ``omipacs serve`` process run under ``strace``, which records
every ``sendfile`` system call its HTTP workers make: the test sees that stored bytes
leave through the kernel without passing through Python, and that what the client
receives is byte-identical to what was stored.
"""

from __future__ import annotations

import dataclasses
import http.client
import io
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from omipacs.config import Settings
from omipacs.demo import factory
from omipacs.index.models import Instance
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.services import Services
from omipacs.web.body import FileRange, SegmentedBody, ShortFile
from omipacs.web.sendfile import RangeFile, send_segments
from tests.conftest import ServerProcess, start_server

pytestmark = pytest.mark.slow

ORIGIN = IngestOrigin(OriginKind.IMPORT, deidentify=False)
SENDFILE = re.compile(r"sendfile\(.*\)\s*=\s*(\d+)")


@dataclasses.dataclass
class Traced:
    services: Services
    server: ServerProcess
    trace: Path

    @property
    def port(self) -> int:
        return self.server.settings.http.port

    def sent(self) -> list[int]:
        """Bytes sent by each sendfile call the server's processes have made so far."""
        text = self.trace.read_text() if self.trace.exists() else ""
        return [int(m.group(1)) for m in SENDFILE.finditer(text)]

    def settled(self, total: int) -> bool:
        """Whether the recorded sendfile calls add up to ``total`` (strace writes late)."""
        deadline = time.monotonic() + 10
        while sum(self.sent()) < total and time.monotonic() < deadline:
            time.sleep(0.05)
        return sum(self.sent()) == total


def _traced(settings: Settings, tmp_path: Path) -> Iterator[Traced]:
    strace = shutil.which("strace")
    assert strace, "strace is needed to watch the server's system calls (.ci/run installs it)"
    trace = tmp_path / "strace.out"
    services = Services.create(settings)
    server = start_server(
        settings,
        tmp_path,
        wrapper=(strace, "-f", "-qq", "-e", "trace=sendfile", "-o", str(trace)),
    )
    try:
        yield Traced(services, server, trace)
    finally:
        server.stop()
        services.close()


@pytest.fixture
def live(settings: Settings, tmp_path: Path) -> Iterator[Traced]:
    yield from _traced(settings, tmp_path)


@pytest.fixture
def live_dual_stack(settings: Settings, tmp_path: Path) -> Iterator[Traced]:
    """Listening on every address "localhost" resolves to (127.0.0.1, and ::1 where the
    resolver says so): waitress used to truncate downloads with more than one socket."""
    http = dataclasses.replace(settings.http, host="localhost")
    yield from _traced(dataclasses.replace(settings, http=http), tmp_path)


def store(services: Services, tmp_path: Path, datasets: list[pydicom.Dataset]) -> None:
    for i, ds in enumerate(datasets):
        path = tmp_path / f"in{i}.dcm"
        factory.save(ds, path)
        services.pipeline.ingest_file(path, ORIGIN)


def instance_url(ds: pydicom.Dataset) -> str:
    return (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def stored_bytes(services: Services) -> dict[str, bytes]:
    with services.sessions() as session:
        keys = dict(session.execute(select(Instance.sop_instance_uid, Instance.blob_key)).all())
    out = {}
    for uid, key in keys.items():
        with services.blobs.open(key) as f:
            out[uid] = f.read()
    return out


def get(
    port: int, path: str, accept: str, host: str = "127.0.0.1"
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", path, headers={"Accept": accept})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def parts_of(resp: http.client.HTTPResponse, body: bytes) -> list[bytes]:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + resp.headers["Content-Type"].encode() + b"\r\n\r\n" + body
    )
    return [p.get_payload(decode=True) for p in message.iter_parts()]


STUDY_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def three_objects(study: str) -> list[pydicom.Dataset]:
    return [
        factory.make_mammo(rows=512, columns=416, study_uid=study, rng=1),
        factory.make_mammo(rows=512, columns=416, study_uid=study, view="MLO", rng=2),
        factory.make_dbt(frames=8, rows=256, columns=208, study_uid=study, rng=3),
    ]


def test_a_study_is_sent_from_the_page_cache_byte_identical(live: Traced, tmp_path: Path) -> None:
    study = pydicom.uid.generate_uid()
    store(live.services, tmp_path, three_objects(study))
    resp, body = get(live.port, f"/dicom-web/studies/{study}", STUDY_ACCEPT)
    assert resp.status == 200
    assert int(resp.headers["Content-Length"]) == len(body)
    stored = stored_bytes(live.services)
    assert sorted(parts_of(resp, body)) == sorted(stored.values())
    # Every stored byte went out through sendfile, none of the multipart framing did.
    assert live.settled(sum(len(b) for b in stored.values()))


def test_a_study_downloads_whole_when_listening_on_two_addresses(
    live_dual_stack: Traced, tmp_path: Path
) -> None:
    live = live_dual_stack
    study = pydicom.uid.generate_uid()
    store(live.services, tmp_path, three_objects(study))
    stored = stored_bytes(live.services)
    hosts = {a[4][0] for a in socket.getaddrinfo("localhost", live.port, type=socket.SOCK_STREAM)}
    for host in sorted(hosts):
        for _ in range(3):
            resp, body = get(live.port, f"/dicom-web/studies/{study}", STUDY_ACCEPT, host)
            assert resp.status == 200
            assert len(body) == int(resp.headers["Content-Length"])
            assert sorted(parts_of(resp, body)) == sorted(stored.values())


def test_single_part_and_bulk_data_ranges_use_sendfile(live: Traced, tmp_path: Path) -> None:
    ds = factory.make_mammo(rows=512, columns=416, rng=4)
    store(live.services, tmp_path, [ds])
    base = instance_url(ds)
    resp, body = get(live.port, base, "application/dicom; transfer-syntax=*")
    assert resp.status == 200
    assert pydicom.dcmread(io.BytesIO(body)).PixelData == ds.PixelData
    assert live.settled(len(body))
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    conn.request(
        "GET",
        f"{base}/bulkdata/7FE00010",
        headers={"Accept": "application/octet-stream", "Range": "bytes=100-1099"},
    )
    r = conn.getresponse()
    assert r.status == 206
    assert r.read() == ds.PixelData[100:1100]
    assert live.settled(len(body) + 1000) and live.sent()[-1] == 1000
    # A resumed download: a byte range of the instance itself, also from the page cache.
    headers = {"Accept": "application/dicom; transfer-syntax=*", "Range": "bytes=1000-4999"}
    conn.request("GET", base, headers=headers)
    r = conn.getresponse()
    assert r.status == 206
    assert r.read() == body[1000:5000]
    assert live.settled(len(body) + 1000 + 4000) and live.sent()[-1] == 4000
    # HEAD describes the body and sends none of it.
    conn.request("HEAD", base, headers={"Accept": "application/dicom; transfer-syntax=*"})
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b""
    assert int(r.headers["Content-Length"]) == len(body)
    conn.request("GET", "/dicom-web/studies", headers={"Accept": "application/dicom+json"})
    assert conn.getresponse().status == 200
    conn.close()


def test_a_truncated_blob_ends_the_connection_and_the_server_goes_on(
    live: Traced, tmp_path: Path
) -> None:
    ds = factory.make_mammo(rows=512, columns=416, rng=5)
    store(live.services, tmp_path, [ds])
    with live.services.sessions() as session:
        key = session.execute(select(Instance.blob_key)).scalar_one()
    blob = live.services.blobs.local_path(key)
    assert blob is not None
    full = blob.stat().st_size
    os.truncate(blob, full // 2)
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    conn.request(
        "GET", instance_url(ds), headers={"Accept": "application/dicom; transfer-syntax=*"}
    )
    resp = conn.getresponse()
    assert int(resp.headers["Content-Length"]) == full
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()
    resp2, _ = get(live.port, "/dicom-web/studies", "application/dicom+json")
    assert resp2.status == 200


def test_segments_go_out_in_order_with_the_file_ranges_sent_by_the_kernel(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    body = SegmentedBody([b"ab", FileRange(path, 2, 6), b"yz", FileRange(path, 0, 0)])
    left, right = socket.socketpair()
    with left, right:
        chunks = []
        for chunk in send_segments(body, left):
            left.sendall(chunk)  # what the server does with each yielded chunk
            chunks.append(chunk)
        assert chunks == [b"", b"ab", b"yz"]
        right.settimeout(5)
        got = b""
        while len(got) < body.length:
            got += right.recv(100)
    assert got == b"ab234567yz"


def test_a_short_file_segment_stops_the_body(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123")
    left, right = socket.socketpair()
    with left, right, pytest.raises(ShortFile):
        for _ in send_segments(SegmentedBody([b"h", FileRange(path, 2, 6)]), left):
            pass


def test_a_range_file_reads_only_its_range(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    f = RangeFile(FileRange(path, 3, 4))
    assert os.lseek(f.fileno(), 0, os.SEEK_CUR) == 3
    assert f.read(3) + f.read(3) + f.read(3) == b"3456"
    f.close()
    f.close()
