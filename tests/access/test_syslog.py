"""DICOM Audit Messages (PS3.15 A.5) over syslog (RFC 5424), to a collector on loopback."""

from __future__ import annotations

import dataclasses
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from omipacs.access.audit import AuditRecord
from omipacs.access.authenticate import utcnow
from omipacs.access.syslog import SyslogSender
from omipacs.config import AuditSettings, AuthSettings, Settings
from omipacs.errors import ConfigurationError
from omipacs.services import Services
from omipacs.web.app import create_app


def _parse(frame: bytes) -> tuple[str, ET.Element]:
    header, bom, xml = frame.partition(b"\xef\xbb\xbf")
    assert bom, frame[:80]
    return header.decode("ascii"), ET.fromstring(xml)


@pytest.fixture
def collector() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def test_every_http_request_reaches_syslog_as_a_dicom_audit_message(
    settings: Settings, collector: socket.socket
) -> None:
    port = collector.getsockname()[1]
    settings = dataclasses.replace(
        settings,
        auth=AuthSettings(mode="token"),
        audit=AuditSettings(syslog=f"udp://127.0.0.1:{port}", batch_seconds=0.05),
    )
    services = Services.create(settings)
    try:
        client = create_app(services).test_client()
        assert client.get("/dicom-web/studies").status_code == 401
        header, message = _parse(collector.recv(65536))
    finally:
        services.close()
    assert header.startswith("<85>1 ") and " omipacs - DICOM+RFC3881 - " in header
    assert message.tag == "AuditMessage"
    ident = message.find("EventIdentification")
    assert ident is not None and ident.get("EventOutcomeIndicator") == "4"
    event = ident.find("EventID")
    assert event is not None and event.get("csd-code") == "110114"  # User Authentication
    requestor = message.find("ActiveParticipant[@UserIsRequestor='true']")
    assert requestor is not None and requestor.get("UserID") == "anonymous"
    obj = message.find("ParticipantObjectIdentification")
    assert obj is not None and "/dicom-web/studies" in (obj.get("ParticipantObjectID") or "")


def test_tcp_uses_octet_counting() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    sender = SyslogSender(f"tcp://127.0.0.1:{listener.getsockname()[1]}")
    record = AuditRecord(
        at=utcnow(), user_email="r@lab.example", token_prefix="omi_abcdefgh", licence_pk=3,
        remote="127.0.0.1", door="http", action="read-images",
        resource="licence:3 GET /licences/3/dicom-web/studies/2.25.1", outcome="allowed",
        status=200, bytes_sent=10,
    )
    sender.send(record)
    conn, _ = listener.accept()
    conn.settimeout(10)
    data = b""
    while True:
        chunk = conn.recv(65536)
        assert chunk, "the connection closed before the whole message came"
        data += chunk
        size, _, frame = data.partition(b" ")
        if frame and len(frame) >= int(size):
            break
    assert int(size) == len(frame)
    _, message = _parse(frame)
    event = message.find("EventIdentification/EventID")
    assert event is not None and event.get("csd-code") == "110103"  # Instances Accessed
    detail = message.find("ParticipantObjectIdentification/ParticipantObjectDetail")
    assert detail is not None and detail.get("value") == "3"
    sender.close()
    conn.close()
    listener.close()


def test_syslog_url_is_checked() -> None:
    for url in ("syslog.example:514", "http://x:1", "udp://host"):
        with pytest.raises(ConfigurationError):
            SyslogSender(url)
