"""Who gets a connection slot: silent sockets must not lock peers out of the SCP.

pynetdicom counts every connection thread against ``maximum_associations`` from the
moment the TCP connection is accepted, before an A-ASSOCIATE-RQ has arrived (and before
the allow-list can be checked), and waits ``acse_timeout`` for that request. Ten silent
sockets from anywhere therefore refuse every association for half a minute, and for
ever if they reconnect. Here, through pynetdicom's public extension points
(``AE.make_server(server_class=...)``, socketserver's ``verify_request`` hook and the
EVT_REQUESTED / EVT_CONN_CLOSE notification events):

* a connection is *pending* until its A-ASSOCIATE-RQ arrives; each address may hold at
  most ``max_pending_per_address`` pending connections and the server at most
  ``max_pending``, more are closed at once;
* a pending connection is closed after ``request_timeout`` seconds without a request;
* only associations that passed the request (allow-list included) count against
  ``max_associations``; one more is rejected as transient "local limit exceeded"
  (PS3.8 §9.3.4: result 2, source 3, reason 2), so a sender retries;
* with DICOM TLS, the handshake happens in the connection's own thread, within
  ``request_timeout``, not in the thread that accepts connections: pynetdicom's
  ``get_request`` handshakes there, without a timeout, so one silent TCP connection to a
  TLS port stopped every later association for as long as it stayed open.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

log = logging.getLogger(__name__)

Peer = tuple[str, int]


@dataclass
class Admission:
    """The bookkeeping shared by the server (connections) and the event handlers."""

    max_associations: int
    max_pending: int
    max_pending_per_address: int
    request_timeout: float
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: dict[Peer, tuple[socket.socket, float]] = field(default_factory=dict)
    _per_address: Counter[str] = field(default_factory=Counter)
    _established: set[Peer] = field(default_factory=set)

    def admit(self, sock: socket.socket, peer: Peer) -> bool:
        """A new TCP connection: room for one more pending connection from its address?"""
        with self._lock:
            if (
                len(self._pending) >= self.max_pending
                or self._per_address[peer[0]] >= self.max_pending_per_address
            ):
                log.warning("closing a connection from %s: too many without a request", peer[0])
                return False
            self._pending[peer] = (sock, time.monotonic())
            self._per_address[peer[0]] += 1
            return True

    def _unpend(self, peer: Peer) -> None:
        if self._pending.pop(peer, None) is not None:
            self._per_address[peer[0]] -= 1
            if not self._per_address[peer[0]]:
                del self._per_address[peer[0]]

    def requested(self, peer: Peer) -> bool:
        """An A-ASSOCIATE-RQ arrived: True if a slot is free (and now taken)."""
        with self._lock:
            self._unpend(peer)
            if len(self._established) >= self.max_associations:
                return False
            self._established.add(peer)
            return True

    def closed(self, peer: Peer) -> None:
        """The connection ended, whatever state it was in."""
        with self._lock:
            self._unpend(peer)
            self._established.discard(peer)

    def expire(self, now: float | None = None) -> int:
        """Close pending connections older than ``request_timeout``; returns how many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            late = [
                (peer, sock)
                for peer, (sock, since) in self._pending.items()
                if now - since >= self.request_timeout
            ]
            for peer, _ in late:
                self._unpend(peer)
        for peer, sock in late:
            log.warning("closing a connection from %s: no association request in time", peer[0])
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(late)

    @property
    def established(self) -> int:
        with self._lock:
            return len(self._established)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)


class AdmittingServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with :class:`Admission` at the door."""

    admission: Admission
    watchdog_stop: threading.Event | None = None

    def shutdown(self) -> None:
        """Stop the watchdog with the server.

        socketserver's own shutdown: a server made with ``AE.make_server`` is not in the
        AE's list of servers, which pynetdicom's ``shutdown`` removes it from (and fails).
        """
        if self.watchdog_stop is not None:
            self.watchdog_stop.set()
        socketserver.TCPServer.shutdown(self)
        self.server_close()

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection; wrap it for TLS without handshaking yet (socketserver's
        hook, which pynetdicom overrides to handshake here, in the accepting thread)."""
        assert self.socket is not None
        sock, address = self.socket.accept()
        if self.ssl_context:
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handshake (TLS) in the connection's thread, then serve the association.

        A peer that does not complete the handshake within ``request_timeout`` (or
        whose certificate is refused) is closed; the watchdog also closes it when it
        stays pending too long, which ends the handshake early.
        """
        if isinstance(request, ssl.SSLSocket):
            peer = (str(client_address[0]), int(client_address[1]))
            previous = request.gettimeout()
            try:
                request.settimeout(self.admission.request_timeout)
                request.do_handshake()
                request.settimeout(previous)
            except (OSError, ValueError) as exc:
                log.warning(
                    "closing a connection from %s: TLS handshake failed (%s)",
                    peer[0],
                    type(exc).__name__,
                )
                self.admission.closed(peer)
                self.shutdown_request(request)
                return
        super().finish_request(request, client_address)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """socketserver's hook, called before a thread is started for the connection."""
        if not isinstance(client_address, tuple):
            return True
        return self.admission.admit(request, (str(client_address[0]), int(client_address[1])))


def _peer(event: Any) -> Peer:
    requestor = event.assoc.requestor
    return (str(requestor.address), int(requestor.port))


def handle_requested(event: Any, admission: Admission) -> None:
    """EVT_REQUESTED (after the allow-list check): take a slot or reject, transient."""
    assoc = event.assoc
    if assoc.is_rejected or assoc.is_aborted:
        admission.closed(_peer(event))
        return
    if not admission.requested(_peer(event)):
        log.warning("rejecting an association: %d already established", admission.established)
        assoc.acse.send_reject(0x02, 0x03, 0x02)  # transient, provider, local-limit-exceeded
        assoc.is_rejected = True
        assoc.kill()


def handle_closed(event: Any, admission: Admission) -> None:
    """EVT_CONN_CLOSE: free the connection's pending or established slot."""
    admission.closed(_peer(event))


def watch(admission: Admission, stop: threading.Event, every: float = 0.25) -> threading.Thread:
    """Start the thread that closes pending connections past their time."""

    def run() -> None:
        while not stop.wait(every):
            admission.expire()

    thread = threading.Thread(target=run, name="dimse-admission", daemon=True)
    thread.start()
    return thread
