"""Several SCP processes on one port, with one association limit across them.

One Python process decodes every association's PDUs under one interpreter lock, which
caps C-STORE throughput at about one core; ``storescp --fork`` gets its speed from a
process per association. With ``[dimse] processes = N`` the archive runs N SCP
processes that each listen on the same address with ``SO_REUSEPORT``: the kernel
spreads incoming connections over them, and each process ingests into the same index
and blob store as any other worker would.

``[dimse] max_associations`` stays one limit for the whole archive: a counter in shared
memory is taken when an association is requested and given back when its connection
closes; over the limit, the request gets A-ASSOCIATE-RJ "local limit exceeded"
(transient), as pynetdicom's own per-process limit answers.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
import time
from multiprocessing.context import ForkProcess
from typing import Any

from pynetdicom import evt

from omipacs import children
from omipacs.config import Settings
from omipacs.dimse.admission import AdmittingServer
from omipacs.errors import ConfigurationError

log = logging.getLogger(__name__)

#: A-ASSOCIATE-RJ: rejected-transient, service-provider (presentation), local limit
#: exceeded (PS3.8 §9.3.4).
_RJ_TRANSIENT, _RJ_PROVIDER_PRESENTATION, _RJ_LOCAL_LIMIT = 0x02, 0x03, 0x02


class SharedPortServer(AdmittingServer):
    """The admitting server (:mod:`omipacs.dimse.admission`), bound with ``SO_REUSEPORT``
    so N processes can share the port (``server_class`` is ``AE.make_server``'s hook)."""

    def server_bind(self) -> None:
        if self.socket is not None:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


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


def _serve(settings: Settings, slots: AssociationSlots, listening: Any) -> None:
    """One SCP process: its own archive connections, the shared port and slots."""
    from omipacs.bootstrap import open_archive
    from omipacs.dimse import scp

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    services = open_archive(settings, migrate=False)
    server = scp.start(services, server_class=SharedPortServer, extra_handlers=slots.handlers())
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
        # Processes bound and listening (shared memory, counted up by each).
        self.listening = multiprocessing.get_context("fork").Value("i", 0)
        self.processes: list[ForkProcess] = [
            children.fork(_serve, (settings, self.slots, self.listening), f"omipacs-dimse-{n}")
            for n in range(count)
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

    def shutdown(self) -> None:
        """Stop every SCP process (associations in progress are let finish briefly)."""
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                process.terminate()
        for process in self.processes:
            children.stop(process)
