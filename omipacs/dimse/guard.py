"""A PDU-length guard for pynetdicom's upper layer.

pynetdicom reads a PDU by trusting its 32-bit length field and buffering that many
bytes (robustness.md F8): one forged P-DATA-TF header could make the server allocate up
to 4 GiB. Before each PDU is read we peek at its 6-byte header; a PDU longer than this
side's negotiated maximum (or, for non-data PDUs, a small fixed cap) is answered with an
A-ABORT and the connection is closed without reading the body.
"""

from __future__ import annotations

import logging
import socket
import struct
from typing import Any

from pynetdicom.dul import DULServiceProvider

log = logging.getLogger(__name__)

#: Cap for PDUs other than P-DATA-TF (association negotiation, release, abort).
CONTROL_PDU_CAP = 1 << 20
#: Cap for P-DATA-TF when the negotiated maximum is 0 ("unlimited").
UNLIMITED_DATA_CAP = 64 << 20
#: A-ABORT PDU, source 2 (service provider), reason 0 (not specified) (PS3.8 §9.3.8).
A_ABORT = bytes([0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x02, 0x00])

_installed = False


def _limit(dul: Any, pdu_type: int) -> int:
    if pdu_type != 0x04:
        return CONTROL_PDU_CAP
    assoc = dul.assoc
    local = assoc.acceptor if assoc.is_acceptor else assoc.requestor
    maximum = int(local.maximum_length or 0)
    # The PDU length counts the PDV item headers too (6 bytes per item beyond the value).
    return maximum + 64 if maximum else UNLIMITED_DATA_CAP


def install() -> None:
    """Wrap ``DULServiceProvider._read_pdu_data`` once per process (idempotent)."""
    global _installed
    if _installed:
        return
    original = DULServiceProvider._read_pdu_data

    def guarded(self: Any) -> None:
        raw = getattr(self.socket, "socket", None)
        if raw is not None:
            try:
                head = raw.recv(6, socket.MSG_PEEK)
            except (OSError, ValueError):
                head = b""
            if len(head) == 6:
                pdu_type, _, length = struct.unpack(">BBL", head)
                if length > _limit(self, pdu_type):
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
                    self.event_queue.put("Evt17")
                    return
        original(self)

    DULServiceProvider._read_pdu_data = guarded  # type: ignore[method-assign]
    _installed = True
