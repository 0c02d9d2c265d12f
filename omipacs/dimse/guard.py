"""A bounded, fast PDU reader for pynetdicom's upper layer.

pynetdicom reads a PDU by trusting its 32-bit length field and buffering that many
bytes: one forged P-DATA-TF header could make the server allocate up
to 4 GiB. It also reads the body 4 KiB per ``recv`` call, which makes receiving a 1 GB
tomosynthesis object cost hundreds of thousands of system calls.

This module replaces ``DULServiceProvider._read_pdu_data`` with an equivalent that
reads the 6-byte header first, refuses a PDU longer than this side's negotiated maximum
(or, for non-data PDUs, a small fixed cap) with an A-ABORT *before* reading its body,
and then reads the body straight into one preallocated buffer. Events put on the queue
are the ones pynetdicom's own reader puts (Evt17 transport closed, Evt19 invalid PDU,
or the PDU's own event).
"""

from __future__ import annotations

import logging
import socket
import struct
from typing import Any, Final

from pynetdicom.dul import DULServiceProvider

log = logging.getLogger(__name__)

#: Cap for PDUs other than P-DATA-TF (association negotiation, release, abort).
CONTROL_PDU_CAP = 1 << 20
#: Cap for P-DATA-TF when the negotiated maximum is 0 ("unlimited").
UNLIMITED_DATA_CAP = 64 << 20
#: A-ABORT PDU, source 2 (service provider), reason 0 (not specified) (PS3.8 §9.3.8).
A_ABORT = bytes([0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x02, 0x00])
_PDU_TYPES = frozenset(range(0x01, 0x08))
_READ_CHUNK = 1 << 20

_installed = False


def _limit(dul: Any, pdu_type: int) -> int:
    if pdu_type != 0x04:
        return CONTROL_PDU_CAP
    assoc = dul.assoc
    local = assoc.acceptor if assoc.is_acceptor else assoc.requestor
    maximum = int(local.maximum_length or 0)
    # The PDU length counts the PDV item headers too (a few bytes beyond the value).
    return maximum + 64 if maximum else UNLIMITED_DATA_CAP


def _read_exact(raw: socket.socket, n: int) -> bytearray | None:
    """Read exactly ``n`` bytes into one buffer; None if the connection ends first."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        count = raw.recv_into(view[got:], min(n - got, _READ_CHUNK))
        if count == 0:
            return None
        got += count
    return buf


def read_pdu(dul: Any) -> None:
    """Read one PDU from the association's socket and queue its event."""
    raw = dul.socket.socket
    try:
        head = _read_exact(raw, 6)
    except (OSError, TimeoutError):
        head = None
    if head is None:
        dul.event_queue.put("Evt17")
        return
    pdu_type, _, length = struct.unpack(">BBL", head)
    if pdu_type not in _PDU_TYPES:
        log.error("unknown PDU type 0x%02X received", pdu_type)
        dul.event_queue.put("Evt19")
        return
    if length > _limit(dul, pdu_type):
        log.warning(
            "aborting association: PDU type 0x%02X announces %d bytes, over the limit",
            pdu_type,
            length,
        )
        try:
            raw.sendall(A_ABORT)
            raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        dul.event_queue.put("Evt17")
        return
    try:
        body = _read_exact(raw, length)
    except (OSError, TimeoutError):
        body = None
    if body is None:
        log.error("connection closed before the entire PDU was received")
        dul.event_queue.put("Evt17")
        return
    try:
        pdu, event = dul._decode_pdu(head + body)
        dul.event_queue.put(event)
    except Exception:
        log.exception("unable to decode the received PDU")
        dul.event_queue.put("Evt19")
        return
    dul._recv_pdu.put(pdu)


#: pynetdicom's own reader, as imported (what :func:`install` replaces).
ORIGINAL_READER: Final = DULServiceProvider._read_pdu_data


def install() -> None:
    """Install the reader once per process (idempotent)."""
    global _installed
    if _installed:
        return
    DULServiceProvider._read_pdu_data = read_pdu  # type: ignore[method-assign,assignment]
    _installed = True
