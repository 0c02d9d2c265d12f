"""Serve the Flask app with gunicorn: N pre-forked worker processes x threads.

``omipacs serve`` binds the listening sockets itself (so a bad address fails at once and
"READY" means connections are being queued), then forks one process that runs the
gunicorn arbiter on those sockets (``fd://``). The arbiter forks ``[http] workers``
worker processes; each opens its own connection to the index and the blob store after
the fork (nothing is shared but the listening sockets), which is what lets DICOMweb use
more than one core. Workers are gthread workers with the deadlines of
:mod:`omipacs.web.gworker`; stored bytes go out with ``sendfile`` (:mod:`omipacs.web.sendfile`).

Secure by default: the server binds to 127.0.0.1 unless configured otherwise, and
refuses to listen on any other address unless ``[auth] mode = "token"`` (exposed
archives without authentication are how most PACS data leaks happened).
HTTPS is served directly when ``[http] tls_cert`` and ``tls_key`` are set, else plain
HTTP (behind a TLS proxy, see docs/deployment.md).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from gunicorn.app.base import BaseApplication

from omipacs import children
from omipacs.config import Settings
from omipacs.dimse.scp import is_loopback
from omipacs.errors import ConfigurationError

log = logging.getLogger(__name__)

#: A request line longer than this is refused with 414 (QIDO URLs with many
#: includefields stay well below it).
MAX_REQUEST_LINE = 8190


def check_exposure(settings: Settings) -> None:
    """Refuse a non-loopback bind unless every request must carry a token.

    ``[auth] mode = "none"`` (a single-user local install, such as the demo) answers
    anyone who reaches the port, so it may only listen on loopback.
    """
    http = settings.http
    if (http.tls_cert is None) != (http.tls_key is None):
        raise ConfigurationError("[http] tls_cert and tls_key must be set together")
    if http.workers < 1 or http.threads < 1:
        raise ConfigurationError("[http] workers and threads must be at least 1")
    if settings.auth.mode == "token" or is_loopback(http.host):
        return
    raise ConfigurationError(
        f"refusing to serve DICOMweb on {http.host} with [auth] mode = \"none\": anyone "
        "reaching the port could read the archive. Set [auth] mode = \"token\" "
        "(docs/access.md) or bind to 127.0.0.1"
    )


def bind(settings: Settings) -> list[socket.socket]:
    """Listening sockets for every address ``[http] host`` resolves to."""
    http = settings.http
    try:
        infos = socket.getaddrinfo(
            http.host, http.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigurationError(f"[http] host {http.host!r}: {exc}") from None
    sockets: list[socket.socket] = []
    seen: set[Any] = set()
    try:
        for family, kind, proto, _name, address in infos:
            if address in seen:
                continue
            seen.add(address)
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ConfigurationError(f"cannot listen on {http.host}:{http.port}: {exc}") from None
    return sockets


def gunicorn_options(
    settings: Settings, fds: Sequence[int], on_worker_ready: Callable[[], None] | None = None
) -> dict[str, Any]:
    """gunicorn settings from ``[http]`` (one place, so tests and docs can read them)."""
    http = settings.http
    options: dict[str, Any] = {
        "bind": [f"fd://{fd}" for fd in fds],
        "workers": http.workers,
        "threads": http.threads,
        "worker_class": "omipacs.web.gworker.Worker",
        "worker_connections": 1000,
        "keepalive": http.keepalive,
        # The arbiter's heartbeat check: a worker blocked this long (not a request) is
        # restarted. Threads waiting on clients keep the heartbeat going.
        "timeout": 60,
        "graceful_timeout": 10,
        "limit_request_line": MAX_REQUEST_LINE,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        "proc_name": "omipacs-http",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        # Proxy headers are interpreted by omipacs.web.proxy alone, as the settings say.
        "forwarded_allow_ips": "",
        # (gunicorn's "sendfile" setting is left unset: any value given to it turns
        # sendfile off.)
        "preload_app": False,
    }
    if on_worker_ready is not None:
        options["post_worker_init"] = lambda worker: on_worker_ready()
    if http.tls_cert is not None and http.tls_key is not None:
        options["certfile"] = str(http.tls_cert)
        options["keyfile"] = str(http.tls_key)
    return options


class Application(BaseApplication):  # type: ignore[misc]
    """gunicorn's documented custom-application hook, configured from settings."""

    def __init__(
        self,
        settings: Settings,
        fds: Sequence[int],
        on_worker_ready: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._options = gunicorn_options(settings, fds, on_worker_ready)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Callable[..., Any]:
        # Runs in each worker after the fork: every worker has its own engine and pools.
        return build_wsgi(self.settings)


def build_wsgi(settings: Settings) -> Callable[..., Any]:
    """The WSGI callable a worker serves: the app behind the sending middleware."""
    from omipacs.bootstrap import open_archive
    from omipacs.web import sendfile
    from omipacs.web.app import create_app

    services = open_archive(settings, migrate=False)
    # A worker ends with sys.exit: write its queued audit events, close its connections.
    atexit.register(services.close)
    return sendfile.middleware(create_app(services), settings.http)


def _run_arbiter(settings: Settings, fds: Sequence[int], booted: Any) -> None:

    def ready() -> None:
        with booted.get_lock():
            booted.value += 1

    Application(settings, fds, ready).run()


class HttpServer:
    """The gunicorn arbiter process (and through it, its workers)."""

    def __init__(self, settings: Settings, sockets: list[socket.socket]) -> None:
        self.sockets = sockets
        self.workers = settings.http.workers
        fds = [s.fileno() for s in sockets]
        # Workers that have loaded the app (shared memory, counted up by each worker).
        self.booted = multiprocessing.get_context("fork").Value("i", 0)
        self.process = children.fork(_run_arbiter, (settings, fds, self.booted), "omipacs-http")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until every worker has loaded the app (or fail if the server died)."""
        deadline = time.monotonic() + timeout
        while self.booted.value < self.workers:
            if not self.process.is_alive():
                raise ConfigurationError("the DICOMweb server stopped while starting")
            if time.monotonic() > deadline:
                raise ConfigurationError("the DICOMweb workers did not start in time")
            time.sleep(0.05)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def close(self, timeout: float = 20.0) -> None:
        """Stop gracefully (in-flight requests finish), then make sure it is gone."""
        children.stop(self.process, timeout)
        for sock in self.sockets:
            sock.close()


def start(settings: Settings) -> HttpServer:
    """Bind and start serving DICOMweb; returns the server handle.

    Call before starting threads in this process (it forks), and after any database
    connections are closed or disposed (a forked copy must not share them).
    """
    check_exposure(settings)
    http = settings.http
    # Import the app's modules here so every forked worker starts with them loaded.
    import omipacs.web.app  # noqa: F401

    sockets = bind(settings)
    server = HttpServer(settings, sockets)
    scheme = "https" if http.tls_cert else "http"
    log.info(
        "DICOMweb listening on %s://%s:%d%s (%d workers x %d threads)",
        scheme,
        http.host,
        http.port,
        http.base_path,
        http.workers,
        http.threads,
    )
    return server
