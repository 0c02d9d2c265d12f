"""The audit trail as DICOM Audit Messages (PS3.15 A.5) over syslog (RFC 5424).

A hospital's audit record repository collects events from every system that touches
patient data; it speaks syslog and reads the DICOM audit message schema (the RFC 3881
successor in PS3.15 A.5.1). Each :class:`~omipacs.access.audit.AuditRecord` becomes one
message: the event (what was done, when, success or failure), the requesting user and
their network address, the archive as audit source, and the object (the resource path,
whose UIDs are the archive's pseudonymous ones).

Transport: ``udp://host:port`` (RFC 5426, one datagram per message) or
``tcp://host:port`` (RFC 6587 octet counting). Sending never blocks a request: the
audit writer thread sends after the index write, and a failed send is logged, not
retried (the JSON-lines file and the index still hold the event).
"""

from __future__ import annotations

import logging
import socket
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from omipacs.access.audit import AuditRecord
from omipacs.errors import ConfigurationError

log = logging.getLogger(__name__)

#: RFC 5424 PRI: facility 10 (security/authorization), severity 5 (notice).
PRI = 10 * 8 + 5
MSGID = "DICOM+RFC3881"

#: PS3.15 A.5.3 event IDs (DCM codes) and action codes, by the archive's actions.
_EVENTS: dict[str, tuple[str, str, str]] = {
    "read-images": ("110103", "DICOM Instances Accessed", "R"),
    "read-stats": ("110112", "Query", "E"),
    "read-clinical": ("110110", "Patient Record", "R"),
    "read-marks": ("110103", "DICOM Instances Accessed", "R"),
    "query-cohorts": ("110112", "Query", "E"),
    "read-cohorts": ("110112", "Query", "E"),
    "write-cohorts": ("110112", "Query", "E"),
    "ingest": ("110104", "DICOM Instances Transferred", "C"),
    "export": ("110106", "Export", "R"),
}
_SECURITY = ("110113", "Security Alert", "E")
_LOGIN = ("110114", "User Authentication", "E")


def _event(record: AuditRecord) -> tuple[str, str, str]:
    if record.status == 401:
        return _LOGIN
    return _EVENTS.get(record.action, _SECURITY)


def _code(parent: ET.Element, tag: str, code: tuple[str, str]) -> None:
    ET.SubElement(parent, tag, {"csd-code": code[0], "codeSystemName": "DCM",
                                "originalText": code[1]})


def audit_message(record: AuditRecord, source: str) -> bytes:
    """The DICOM Audit Message (PS3.15 A.5.1) for one record, as UTF-8 XML."""
    code, meaning, action = _event(record)
    outcome = "0" if record.outcome == "allowed" else "4"
    root = ET.Element("AuditMessage")
    ident = ET.SubElement(root, "EventIdentification", {
        "EventActionCode": action,
        "EventDateTime": record.at.isoformat(timespec="milliseconds") + "Z",
        "EventOutcomeIndicator": outcome,
    })
    _code(ident, "EventID", (code, meaning))
    if record.reason:
        ET.SubElement(ident, "EventOutcomeDescription").text = record.reason
    ET.SubElement(root, "ActiveParticipant", {
        "UserID": record.user_email or "anonymous",
        "AlternativeUserID": record.token_prefix,
        "UserIsRequestor": "true",
        "NetworkAccessPointID": record.remote,
        "NetworkAccessPointTypeCode": "2",
    })
    ET.SubElement(root, "ActiveParticipant", {
        "UserID": source, "UserIsRequestor": "false",
    })
    ET.SubElement(root, "AuditSourceIdentification", {"AuditSourceID": source})
    obj = ET.SubElement(root, "ParticipantObjectIdentification", {
        "ParticipantObjectID": record.resource[:1024],
        "ParticipantObjectTypeCode": "2",  # system object
        "ParticipantObjectTypeCodeRole": "3",  # report / resource
    })
    ET.SubElement(obj, "ParticipantObjectIDTypeCode", {
        "csd-code": "12", "codeSystemName": "RFC-3881", "originalText": "URI",
    })
    if record.licence_pk is not None:
        ET.SubElement(obj, "ParticipantObjectDetail", {
            "type": "licence", "value": str(record.licence_pk),
        })
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return body


def syslog_frame(record: AuditRecord, source: str, hostname: str) -> bytes:
    """An RFC 5424 syslog message carrying the record's audit message."""
    stamp = record.at.isoformat(timespec="milliseconds") + "Z"
    header = f"<{PRI}>1 {stamp} {hostname[:255] or '-'} omipacs - {MSGID} - "
    return header.encode("ascii", "replace") + b"\xef\xbb\xbf" + audit_message(record, source)


class SyslogSender:
    """Sends audit messages to one syslog collector."""

    def __init__(self, url: str, source: str = "omipacs") -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("udp", "tcp") or not parts.hostname or not parts.port:
            raise ConfigurationError(
                f"audit.syslog: expected udp://host:port or tcp://host:port, got {url!r}"
            )
        self._address = (parts.hostname, parts.port)
        self._tcp = parts.scheme == "tcp"
        self._source = source
        self._hostname = socket.gethostname()
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            kind = socket.SOCK_STREAM if self._tcp else socket.SOCK_DGRAM
            sock = socket.socket(socket.AF_INET6 if ":" in self._address[0] else socket.AF_INET,
                                 kind)
            sock.settimeout(5)
            if self._tcp:
                sock.connect(self._address)
            self._sock = sock
        return self._sock

    def send(self, record: AuditRecord) -> None:
        """Send one record; failures are logged and the connection reset."""
        frame = syslog_frame(record, self._source, self._hostname)
        try:
            sock = self._connect()
            if self._tcp:
                sock.sendall(str(len(frame)).encode() + b" " + frame)
            else:
                sock.sendto(frame, self._address)
        except OSError as exc:
            log.warning("could not send an audit message to syslog: %s", exc)
            self.close()

    def close(self) -> None:
        """Drop the connection (a new one is made for the next message)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
