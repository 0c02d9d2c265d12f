"""The base URL clients used, and which forwarded headers to believe.

BulkDataURIs, RetrieveURLs and STOW responses carry absolute URLs, so they must name the
scheme, host and path prefix the client sees, not the archive's bind address. Three ways,
in order of preference:

1. ``[http] public_url`` pins them (``https://pacs.example.org/archive``); request headers
   are then never used to build a URL.
2. ``[http] trust_proxy_headers = true`` behind reverse proxies you run: ``X-Forwarded-For,
   -Proto, -Host, -Port, -Prefix`` are read by werkzeug's ``ProxyFix``, which believes only
   the right-most ``[http] trusted_proxies`` values of each (the ones our own proxies
   appended; anything further left came from the client). The result is checked: a scheme
   other than http/https, a host with characters no host has, or a prefix that is not a
   clean path (``/../evil``, ``//x``, ``%2e``) gives 400 instead of a URL pointing
   elsewhere.
3. Otherwise (the default) the request's own ``Host``, since a client reaching the archive
   directly could set any forwarded header it liked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, request
from werkzeug.middleware.proxy_fix import ProxyFix

from omipacs.config import HttpSettings, clean_url_path
from omipacs.errors import BadRequest

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_HOST = re.compile(r"^([A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(:[0-9]{1,5})?$")
_FORWARDED = (
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
)
_PROXIED = "omipacs.proxied"
_PROBLEM = "omipacs.proxy_problem"


class TrustedProxies:
    """WSGI middleware: ``ProxyFix`` for the last ``count`` proxies, then a sanity check.

    A problem is left in the environ for the app to answer with its one error shape.
    """

    def __init__(self, app: WSGIApplication, count: int) -> None:
        self._app = app
        self._fix = ProxyFix(
            self._checked, x_for=count, x_proto=count, x_host=count, x_port=count, x_prefix=count
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._fix(environ, start_response)

    def _checked(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        original: dict[str, Any] = environ.get("werkzeug.proxy_fix.orig", {})
        environ[_PROXIED] = any(name in environ for name in _FORWARDED)

        def changed(key: str) -> bool:
            return bool(environ.get(key, "") != original.get(key, ""))

        problem = None
        if changed("wsgi.url_scheme") and environ["wsgi.url_scheme"] not in ("http", "https"):
            problem = "X-Forwarded-Proto must be http or https"
        elif changed("HTTP_HOST") and not _HOST.match(environ.get("HTTP_HOST", "")):
            problem = "X-Forwarded-Host / X-Forwarded-Port do not make a host name"
        elif changed("SCRIPT_NAME"):
            prefix = str(environ.get("SCRIPT_NAME", "")).rstrip("/")
            if not clean_url_path(prefix):
                problem = "X-Forwarded-Prefix must be a clean path such as /archive"
            environ["SCRIPT_NAME"] = prefix
        if problem:
            environ[_PROBLEM] = problem
        return self._app(environ, start_response)


def install(app: Flask, http: HttpSettings) -> None:
    """Believe forwarded headers in ``app`` as ``http`` says (not at all by default)."""
    if not http.trust_proxy_headers:
        return
    app.wsgi_app = TrustedProxies(app.wsgi_app, http.trusted_proxies)  # type: ignore[method-assign]

    @app.before_request
    def _refuse_bad_forwarding() -> None:
        problem = request.environ.get(_PROBLEM)
        if problem:
            raise BadRequest(str(problem))


def _direct_host(request: Request) -> str:
    """The Host header, with the port we listen on added when a client left it out.

    Some clients (dicomweb-client among them) send ``Host`` without the port; URLs built
    from it would then point at port 80. Not used for proxied requests, whose host and
    port are the proxy's.
    """
    host = request.host
    port = str(request.environ.get("SERVER_PORT", ""))
    default = "443" if request.scheme == "https" else "80"
    if port and port != default and not host.endswith("]") and ":" not in host:
        host = f"{host}:{port}"
    return host


def base_url(request: Request, path: str, *, public_url: str = "") -> str:
    """``scheme://host[/prefix]<path>`` as the client addressed us.

    ``public_url`` (``[http] public_url``) pins scheme, host and prefix when set.
    """
    if public_url:
        return public_url.rstrip("/") + path
    host = request.host if request.environ.get(_PROXIED) else _direct_host(request)
    return f"{request.scheme}://{host}{request.script_root}{path}"
