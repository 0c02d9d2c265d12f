"""CORS: which other web origins may call the archive from a browser.

Off by default. A browser sends the user's credentials (cookies, HTTP authentication) with
cross-origin requests, so any page the user visits could otherwise read and write the
archive through their browser. Only the origins listed in ``[http] cors_origins`` get an
``Access-Control-Allow-Origin``; ``["*"]`` allows any origin but is answered with the
literal ``*`` and never with ``Access-Control-Allow-Credentials``, which browsers then
refuse to combine with credentials. Listed origins are echoed back with credentials
allowed, for a viewer (OHIF) on another host that signs in.

Preflights (``OPTIONS`` with ``Access-Control-Request-Method``) are answered here, before
any view: 204 with the methods and headers viewers send when the origin and method are
allowed, 403 with a reason otherwise. Responses expose the headers viewers read
(``Warning`` for truncated searches, ``Content-Range``). ``Cross-Origin-Resource-Policy``
is ``cross-origin`` only when origins are configured, so a cross-origin-isolated viewer
page can load our responses; otherwise ``same-origin``.
"""

from __future__ import annotations

import re

from flask import Flask, Response, request

from omipacs.web.errors import error_response

ALLOWED_METHODS = ("GET", "HEAD", "POST", "DELETE", "OPTIONS")
ALLOWED_HEADERS = (
    "authorization, accept, content-type, range, if-range, if-none-match, x-requested-with, "
    "cache-control"
)
EXPOSED_HEADERS = (
    "Warning, Content-Range, Content-Length, Content-Type, Content-Location, ETag, Accept-Ranges"
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def install(app: Flask, origins: tuple[str, ...]) -> None:
    """Add CORS handling to ``app`` for ``origins`` (empty: no cross-origin access).

    ``origins`` were checked when the settings were read (:class:`~omipacs.config.HttpSettings`).
    """
    any_origin = origins == ("*",)
    listed = frozenset(origins)

    def allowed(origin: str | None) -> str | None:
        if not origin or not listed:
            return None
        if any_origin:
            return "*"
        return origin if origin in listed else None

    @app.before_request
    def _preflight() -> Response | None:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        origin = request.headers.get("Origin")
        if allowed(origin) is None:
            where = origin or "no origin"
            return error_response(
                403, f"cross-origin requests from {where} are not allowed ([http] cors_origins)"
            )
        method = request.headers["Access-Control-Request-Method"].strip()
        if method not in ALLOWED_METHODS:
            return error_response(403, f"method {method[:20]!r} is not allowed cross-origin")
        names = [h.strip() for h in ALLOWED_HEADERS.split(",")]
        for asked in request.headers.get("Access-Control-Request-Headers", "").split(","):
            name = asked.strip().lower()
            if name and name not in names:
                if not _TOKEN.match(name):
                    return error_response(403, "malformed Access-Control-Request-Headers")
                names.append(name)
        response = Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = ", ".join(ALLOWED_METHODS)
        response.headers["Access-Control-Allow-Headers"] = ", ".join(names)
        response.headers["Access-Control-Max-Age"] = "600"
        response.headers.add("Vary", "Access-Control-Request-Method")
        response.headers.add("Vary", "Access-Control-Request-Headers")
        return response  # origin, credentials and Vary: Origin are added below

    @app.after_request
    def _headers(response: Response) -> Response:
        origin = allowed(request.headers.get("Origin"))
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            if not any_origin:
                response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if listed and not any_origin:
            # The answer depends on Origin: caches must not give one origin's to another.
            response.headers.add("Vary", "Origin")
        response.headers.setdefault(
            "Cross-Origin-Resource-Policy", "cross-origin" if listed else "same-origin"
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
