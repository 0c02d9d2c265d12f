"""Several SCP processes on one port, with one association limit across them.

One Python process decodes every association's PDUs under one interpreter lock, which
caps C-STORE throughput at about one core; ``storescp --fork`` gets its speed from a
process per association. With ``[dimse] processes = N`` the archive runs N SCP
processes that accept from one listening socket, made before they are forked, and each
process ingests into the same index and blob store as any other worker would.

Who takes a connection is decided by load, as a process per association would: each
process publishes how many connections it serves (shared memory), and one serving more
than the least loaded leaves a new connection to that one (for at most
:data:`MAX_DEFER` seconds, in case it is stalled). With ``SO_REUSEPORT`` the kernel
hashes each connection to a process whatever its load: of 4 associations over 2
processes, 3 or 4 landed on one process in more than half of the runs, which then
decoded them on one core while the other idled.

``[dimse] max_associations`` stays one limit for the whole archive: a counter in shared
memory is taken when an association is requested and given back when its connection
closes; over the limit, the request gets A-ASSOCIATE-RJ "local limit exceeded"
(transient), as pynetdicom's own per-process limit answers.
"""

from __future__ import annotations

import logging
import multiprocessing
import select
import signal
import socket
import threading
import time
from multiprocessing.context import ForkProcess
from typing import Any

from pynetdicom import evt
from pynetdicom.transport import AddressInformation

from omipacs import children
from omipacs.config import Settings
from omipacs.dimse.admission import AdmittingServer
from omipacs.errors import ConfigurationError

log = logging.getLogger(__name__)

#: A-ASSOCIATE-RJ: rejected-transient, service-provider (presentation), local limit
#: exceeded (PS3.8 §9.3.4).
_RJ_TRANSIENT, _RJ_PROVIDER_PRESENTATION, _RJ_LOCAL_LIMIT = 0x02, 0x03, 0x02


#: Longest a busier process leaves a waiting connection to a less loaded one.
MAX_DEFER = 0.2


def listen(host: str, port: int) -> socket.socket:
    """The listening socket every SCP process accepts from (made before they fork),
    bound as pynetdicom binds its own (its address resolution, ``SO_REUSEADDR``)."""
    info = AddressInformation.from_tuple((host, port))
    sock = socket.socket(info.address_family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info.as_tuple)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen for DICOM on {host}:{port}: {exc.strerror or exc}"
        ) from None
    # Non-blocking: a process that lost the race for a connection gets EAGAIN at once
    # (socketserver then goes back to waiting), not a block in accept().
    sock.setblocking(False)
    return sock


class SharedPortServer(AdmittingServer):
    """The admitting server (:mod:`omipacs.dimse.admission`) on the shared listening
    socket; ``listener``, ``loads`` (connections served, one entry per process) and
    ``index`` (this process's entry) are set per process before ``AE.make_server``."""

    listener: socket.socket | None = None
    loads: Any = None
    index: int = 0

    def server_bind(self) -> None:
        if self.listener is None:
            raise ConfigurationError("no shared DICOM listening socket in this process")
        if self.socket is not None:
            self.socket.close()
        self.socket = self.listener
        self.server_address = self.listener.getsockname()

    def server_activate(self) -> None:
        """Already listening (the pool made the socket)."""

    def _publish(self, extra: int = 0) -> int:
        mine = len(self.active_associations) + extra
        if self.loads is not None:
            self.loads[self.index] = mine
        return mine

    def service_actions(self) -> None:
        """socketserver's per-loop hook: keep this process's published load current
        as associations end."""
        self._publish()

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept, unless a less loaded process is there to take the connection."""
        mine = self._publish()
        if self.loads is not None and self.listener is not None:
            deadline = time.monotonic() + MAX_DEFER
            while mine > min(self.loads[:]) and time.monotonic() < deadline:
                readable, _, _ = select.select([self.listener], [], [], 0.005)
                if not readable:
                    raise BlockingIOError("another process took the connection")
        request = super().get_request()
        self._publish(extra=1)  # its thread starts after this returns
        return request


class AssociationSlots:
    """The archive-wide association limit, shared by the SCP processes."""

    def __init__(self, limit: int, counter: Any) -> None:
        self.limit = limit
        self.counter = counter
        self._held: set[int] = set()
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, limit: int) -> AssociationSlots:
        """Slots whose counter lives in memory the forked processes share."""
        return cls(limit, multiprocessing.get_context("fork").Value("i", 0))

    def in_use(self) -> int:
        return int(self.counter.value)

    def handle_requested(self, event: Any) -> None:
        """EVT_REQUESTED (after the allow-list): take a slot or reject the association."""
        assoc = event.assoc
        if assoc.is_rejected or assoc.is_aborted:
            return
        with self.counter.get_lock():
            if self.counter.value >= self.limit:
                full = True
            else:
                self.counter.value += 1
                full = False
        if full:
            log.warning("rejecting an association: %d associations are open", self.limit)
            assoc.acse.send_reject(_RJ_TRANSIENT, _RJ_PROVIDER_PRESENTATION, _RJ_LOCAL_LIMIT)
            assoc.is_rejected = True
            assoc.kill()
            return
        with self._lock:
            self._held.add(id(assoc))

    def handle_closed(self, event: Any) -> None:
        """EVT_CONN_CLOSE: give the association's slot back, if it took one."""
        with self._lock:
            if id(event.assoc) not in self._held:
                return
            self._held.discard(id(event.assoc))
        with self.counter.get_lock():
            self.counter.value -= 1

    def handlers(self) -> list[Any]:
        return [
            (evt.EVT_REQUESTED, self.handle_requested),
            (evt.EVT_CONN_CLOSE, self.handle_closed),
        ]


def _serve(
    settings: Settings,
    slots: AssociationSlots,
    listening: Any,
    listener: socket.socket,
    loads: Any,
    index: int,
) -> None:
    """One SCP process: its own archive connections, the shared socket and slots."""
    from omipacs.bootstrap import open_archive
    from omipacs.dimse import scp

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    services = open_archive(settings, migrate=False)
    server_class = type(
        "PoolServer", (SharedPortServer,), {"listener": listener, "loads": loads, "index": index}
    )
    server = scp.start(services, server_class=server_class, extra_handlers=slots.handlers())
    with listening.get_lock():
        listening.value += 1
    try:
        stop.wait()
    finally:
        server.shutdown()
        services.close()


class ScpPool:
    """``[dimse] processes`` SCP processes sharing the port."""

    def __init__(self, settings: Settings) -> None:
        count = settings.dimse.processes
        self.slots = AssociationSlots.shared(settings.dimse.max_associations)
        # Processes listening (shared memory, counted up by each).
        self.listening = multiprocessing.get_context("fork").Value("i", 0)
        # Connections each process serves (published by each, read by all).
        self.loads = multiprocessing.get_context("fork").Array("i", count)
        self.listener = listen(settings.dimse.host, settings.dimse.port)
        args = (settings, self.slots, self.listening, self.listener, self.loads)
        self.processes: list[ForkProcess] = [
            children.fork(_serve, (*args, n), f"omipacs-dimse-{n}") for n in range(count)
        ]
        log.info(
            "DICOM SCP %s: %d processes on %s:%d, %d associations at most",
            settings.dimse.ae_title,
            count,
            settings.dimse.host,
            settings.dimse.port,
            settings.dimse.max_associations,
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until every SCP process listens (or fail if one of them died)."""
        deadline = time.monotonic() + timeout
        while self.listening.value < len(self.processes):
            if not all(p.is_alive() for p in self.processes):
                raise ConfigurationError("a DICOM SCP process stopped while starting")
            if time.monotonic() > deadline:
                raise ConfigurationError("the DICOM SCP processes did not start in time")
            time.sleep(0.05)

    def shutdown(self, timeout: float = 8.0) -> None:
        """Stop every SCP process: SIGTERM (associations in progress are let finish
        briefly), then SIGKILL for any still running ``timeout`` seconds later, all
        processes together. Whatever was acknowledged is already durable (synced before
        the response), so a process that does not stop in time loses nothing that was
        acknowledged, and one that hangs cannot hold up the archive's stop."""
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.processes:
            children.stop(process, max(0.0, deadline - time.monotonic()))
        self.listener.close()
