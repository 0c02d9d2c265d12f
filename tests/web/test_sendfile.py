"""WADO-RS "as stored" bodies go out through waitress with os.sendfile.

The server runs in this process (so the test can see which system calls send the
bytes) on a real socket; clients are plain HTTP over that socket.
"""

from __future__ import annotations

import dataclasses
import http.client
import io
import os
import socket
import time
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import pydicom
import pytest
from sqlalchemy import select

from omipacs.config import Settings
from omipacs.demo import factory
from omipacs.index.models import Instance
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.services import Services
from omipacs.web import server as web_server
from omipacs.web.body import FileRange, SegmentedBody
from omipacs.web.sendfile import FileSlice, SegmentBuffer, middleware

ORIGIN = IngestOrigin(OriginKind.IMPORT, deidentify=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(settings: Settings, tmp_path: Path) -> Iterator[tuple[Services, int]]:
    port = free_port()
    settings = dataclasses.replace(settings, http=dataclasses.replace(settings.http, port=port))
    services = Services.create(settings)
    http_server = web_server.start(services)
    try:
        yield services, port
    finally:
        http_server.close()
        services.close()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Byte counts of every os.sendfile call made while the test runs."""
    calls: list[int] = []
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        n = real(out_fd, in_fd, offset, count)
        calls.append(n)
        return n

    monkeypatch.setattr(os, "sendfile", counting)
    return calls


def settled(sent: list[int], total: int) -> bool:
    """Whether the server's sendfile calls add up to ``total`` bytes.

    The client can read the last byte before the server thread, back from the system
    call, has recorded it: wait (briefly) for the record rather than race it.
    """
    deadline = time.monotonic() + 10
    while sum(sent) < total and time.monotonic() < deadline:
        time.sleep(0.01)
    return sum(sent) == total


def store(services: Services, tmp_path: Path, datasets: list[pydicom.Dataset]) -> list[Path]:
    paths = []
    for i, ds in enumerate(datasets):
        path = tmp_path / f"in{i}.dcm"
        factory.save(ds, path)
        services.pipeline.ingest_file(path, ORIGIN)
        paths.append(path)
    return paths


def instance_url(ds: pydicom.Dataset) -> str:
    return (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def blob_keys(services: Services) -> dict[str, str]:
    with services.sessions() as session:
        return dict(session.execute(select(Instance.sop_instance_uid, Instance.blob_key)).all())


def get(port: int, path: str, accept: str) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Accept": accept})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def test_a_study_is_sent_from_the_page_cache_byte_identical(
    live: tuple[Services, int], tmp_path: Path, sent: list[int]
) -> None:
    services, port = live
    study = pydicom.uid.generate_uid()
    datasets = [
        factory.make_mammo(rows=512, columns=416, study_uid=study, rng=1),
        factory.make_mammo(rows=512, columns=416, study_uid=study, view="MLO", rng=2),
        factory.make_dbt(frames=8, rows=256, columns=208, study_uid=study, rng=3),
    ]
    store(services, tmp_path, datasets)
    resp, body = get(
        port,
        f"/dicom-web/studies/{study}",
        'multipart/related; type="application/dicom"; transfer-syntax=*',
    )
    assert resp.status == 200
    assert int(resp.headers["Content-Length"]) == len(body)
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + resp.headers["Content-Type"].encode() + b"\r\n\r\n" + body
    )
    parts = [p.get_payload(decode=True) for p in message.iter_parts()]
    with services.sessions() as session:
        from omipacs.index.models import Instance

        keys = {i.sop_instance_uid: i.blob_key for i in session.query(Instance)}
    stored = {
        ds.SOPInstanceUID: services.blobs.open(keys[ds.SOPInstanceUID]).read() for ds in datasets
    }
    assert sorted(parts) == sorted(stored.values())  # type: ignore[type-var]
    assert settled(sent, sum(len(b) for b in stored.values()))


def test_single_part_and_bulk_data_ranges_use_sendfile(
    live: tuple[Services, int], tmp_path: Path, sent: list[int]
) -> None:
    services, port = live
    ds = factory.make_mammo(rows=512, columns=416, rng=4)
    store(services, tmp_path, [ds])
    base = instance_url(ds)
    resp, body = get(port, base, "application/dicom; transfer-syntax=*")
    assert resp.status == 200
    assert pydicom.dcmread(io.BytesIO(body)).PixelData == ds.PixelData
    assert settled(sent, len(body))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "GET",
        f"{base}/bulkdata/7FE00010",
        headers={"Accept": "application/octet-stream", "Range": "bytes=100-1099"},
    )
    r = conn.getresponse()
    assert r.status == 206
    assert r.read() == ds.PixelData[100:1100]
    assert settled(sent, len(body) + 1000) and sent[-1] == 1000
    # A resumed download: a byte range of the instance itself, also from the page cache.
    headers = {"Accept": "application/dicom; transfer-syntax=*", "Range": "bytes=1000-4999"}
    conn.request("GET", base, headers=headers)
    r = conn.getresponse()
    assert r.status == 206
    assert r.read() == body[1000:5000]
    assert settled(sent, len(body) + 1000 + 4000) and sent[-1] == 4000


def test_a_truncated_blob_ends_the_connection_and_the_server_goes_on(
    live: tuple[Services, int], tmp_path: Path
) -> None:
    services, port = live
    ds = factory.make_mammo(rows=512, columns=416, rng=5)
    store(services, tmp_path, [ds])
    (key,) = blob_keys(services).values()
    blob = services.blobs.local_path(key)
    assert blob is not None
    full = blob.stat().st_size
    os.truncate(blob, full // 2)
    base = instance_url(ds)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", base, headers={"Accept": "application/dicom; transfer-syntax=*"})
    resp = conn.getresponse()
    assert int(resp.headers["Content-Length"]) == full
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()
    resp2, _ = get(port, "/dicom-web/studies", "application/dicom+json")
    assert resp2.status == 200


def test_segment_buffer_hands_out_bytes_and_file_slices(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    buf = SegmentBuffer(SegmentedBody([b"ab", FileRange(path, 2, 6), b"yz"]))
    assert buf.prepare() == len(buf) == 10
    out: list[Any] = []
    while len(buf):
        chunk = buf.get(4)
        if isinstance(chunk, FileSlice):
            out.append(os.pread(chunk.fd, 3, chunk.offset)[: min(3, chunk.length)])
            buf.skip(min(3, chunk.length))  # a short send
        else:
            out.append(chunk)
            buf.skip(len(chunk))
    assert b"".join(out) == b"ab234567yz"
    buf.close()


def test_only_non_empty_segmented_bodies_become_file_buffers(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    bodies = {"/full": SegmentedBody([FileRange(path, 0, 3)]), "/empty": SegmentedBody([])}

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return bodies.get(environ["PATH_INFO"], [b"plain"])

    wrapped = middleware(app)
    assert isinstance(wrapped({"PATH_INFO": "/full"}, None), SegmentBuffer)
    assert wrapped({"PATH_INFO": "/empty"}, None) is bodies["/empty"]
    assert wrapped({"PATH_INFO": "/other"}, None) == [b"plain"]
