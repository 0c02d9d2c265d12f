"""gunicorn's gthread worker with a deadline on request heads and a per-client limit.

gthread keeps idle kept-alive connections in its poller (no thread held) and gives a
new connection's first byte a few seconds before parking it there, but once a byte
has arrived a thread reads the rest of the head with no deadline: a client sending a
header byte every few seconds holds that thread for as long as it likes (slowloris).
This worker gives every head ``[http] header_timeout`` seconds from the moment a thread
takes the connection; past it, a watchdog shuts the socket down, the blocked read
returns, and gunicorn closes the connection as for any client that went away. Request
bodies and responses are bounded by socket timeouts set per request
(:mod:`omipacs.web.sendfile`).

Each client address may hold at most ``[http] max_client_requests`` of a worker's
threads at once (reading a head, running a request, or writing a response it does not
read); a connection over that gets 503 with ``Retry-After`` and is closed, so a few
misbehaving clients cannot take every thread from everyone else.

The worker class is gunicorn's public extension point (``worker_class``); the methods
overridden here (``handle``, ``handle_request``, ``init_process``), the module
constant ``DEFAULT_WORKER_DATA_TIMEOUT`` and the main loop's graceful close of ended
connections are gthread internals, pinned in
pyproject.toml and checked by tests/web/test_gworker.py, which fails loudly when
gunicorn changes them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from typing import Any

from gunicorn import util
from gunicorn.workers import gthread

#: How long a thread waits for a new connection's first byte before parking it in the
#: poller (gunicorn's default is 5 s: 100 silent sockets would hold 100 threads).
FIRST_BYTE_WAIT = 0.5

OVER_LIMIT = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: 67\r\n\r\n"
    b'{"error": "too many connections from this client", "status": 503}\r\n'
)


class ClientLimit:
    """Threads held per client address, with a ceiling (0: no limit)."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()

    def enter(self, client: str) -> bool:
        """Count a thread for ``client``; False (not counted) if it is at the ceiling."""
        with self._lock:
            if self.ceiling > 0 and self._held[client] >= self.ceiling:
                return False
            self._held[client] += 1
            return True

    def leave(self, client: str) -> None:
        """A thread ``client`` held is free again."""
        with self._lock:
            self._held[client] -= 1
            if self._held[client] <= 0:
                del self._held[client]


class Worker(gthread.ThreadWorker):  # type: ignore[misc]
    """gthread with a bounded request head (see the module docstring)."""

    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._heads: dict[Any, float] = {}
        self._heads_lock = threading.Lock()
        self._clients = ClientLimit(0)

    def init_process(self) -> None:
        gthread.DEFAULT_WORKER_DATA_TIMEOUT = FIRST_BYTE_WAIT
        settings = getattr(self.app, "settings", None)
        if settings is not None:
            self.header_timeout = float(settings.http.header_timeout)
            self._clients = ClientLimit(settings.http.max_client_requests)
        threading.Thread(target=self._watch_heads, name="head-deadlines", daemon=True).start()
        super().init_process()

    def handle(self, conn: Any) -> Any:
        client = str(conn.client[0]) if isinstance(conn.client, tuple) else str(conn.client)
        if not self._clients.enter(client):
            self.log.info("refusing a connection: too many from one client address")
            try:
                conn.sock.setblocking(True)
                conn.sock.settimeout(1.0)
                conn.sock.sendall(OVER_LIMIT)
            except OSError:
                pass
            conn.sock.close()  # here, not in gunicorn's main loop (see below)
            return False
        with self._heads_lock:
            self._heads[conn] = time.monotonic() + self.header_timeout + FIRST_BYTE_WAIT
        try:
            result = super().handle(conn)
            if not result:
                # gunicorn closes ended connections in its main loop, lingering up to
                # 2 s for the peer's FIN: a peer that never sends one would stall every
                # other connection of this worker. Linger here, in this thread.
                util.close_graceful(conn.sock)
            return result
        finally:
            with self._heads_lock:
                self._heads.pop(conn, None)
            self._clients.leave(client)

    def handle_request(self, req: Any, conn: Any) -> Any:
        # The head is in: from here the per-request socket timeouts apply.
        with self._heads_lock:
            self._heads.pop(conn, None)
        return super().handle_request(req, conn)

    def _watch_heads(self) -> None:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            with self._heads_lock:
                late = [conn for conn, deadline in self._heads.items() if deadline < now]
                for conn in late:
                    del self._heads[conn]
            for conn in late:
                self.log.info("closing a connection whose request head took too long")
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
