"""Serve the Flask app with waitress (a production WSGI server, pure Python).

Secure by default: the server binds to 127.0.0.1 unless configured otherwise, and
refuses to listen on any other address unless ``[auth] mode = "token"`` (exposed
archives without authentication are how most PACS data leaks happened).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from waitress.server import create_server

from omipacs.config import Settings
from omipacs.dimse.scp import is_loopback
from omipacs.errors import ConfigurationError
from omipacs.services import Services
from omipacs.web import sendfile
from omipacs.web.app import create_app

log = logging.getLogger(__name__)


class HttpServer:
    """A running waitress server in a background thread."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.run, name="http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop accepting and shut down."""
        self._server.close()
        self._thread.join(timeout=10)


def check_exposure(settings: Settings) -> None:
    """Refuse a non-loopback bind unless every request must carry a token.

    ``[auth] mode = "none"`` (a single-user local install, such as the demo) answers
    anyone who reaches the port, so it may only listen on loopback.
    """
    http = settings.http
    if settings.auth.mode == "token" or is_loopback(http.host):
        return
    raise ConfigurationError(
        f"refusing to serve DICOMweb on {http.host} with [auth] mode = \"none\": anyone "
        "reaching the port could read the archive. Set [auth] mode = \"token\" "
        "(docs/access.md) or bind to 127.0.0.1"
    )


def start(services: Services) -> HttpServer:
    """Start serving DICOMweb; returns the server handle."""
    check_exposure(services.settings)
    http = services.settings.http
    server = create_server(
        sendfile.middleware(create_app(services)),
        host=http.host,
        port=http.port,
        threads=http.threads,
        channel_timeout=300,
        max_request_body_size=http.max_request_bytes,
        # Keep WADO-RS responses in memory up to the high watermark (where waitress pauses
        # the app) instead of spooling them to temporary files after 1 MB.
        outbuf_overflow=16 << 20,
        outbuf_high_watermark=16 << 20,
        ident="omipacs",
        url_scheme="http",
        # Proxy headers are interpreted by omipacs.web.proxy, as the settings say.
        clear_untrusted_proxy_headers=False,
    )
    # Stored bytes go from the page cache to the socket with os.sendfile (web/sendfile.py).
    server.channel_class = sendfile.SendfileChannel
    log.info("DICOMweb listening on http://%s:%d%s", http.host, http.port, http.base_path)
    return HttpServer(server)
