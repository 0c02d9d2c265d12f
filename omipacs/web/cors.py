"""CORS for browser viewers (OHIF) served from another origin.

Preflights are answered with the methods and headers viewers send (``authorization``
included, for when access control is on); responses expose the headers viewers read
(``Warning`` for truncated searches, ``Content-Range``). ``Cross-Origin-Resource-Policy``
lets a cross-origin-isolated page (OHIF's volume rendering) load our responses.
"""

from __future__ import annotations

from flask import Flask, Response, request

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = "authorization, accept, content-type, range, x-requested-with, cache-control"
EXPOSED_HEADERS = "Warning, Content-Range, Content-Length, Content-Type, Content-Location"


def install(app: Flask, origins: tuple[str, ...]) -> None:
    """Add CORS handling to ``app`` for ``origins`` ('*' for any)."""

    def allowed(origin: str | None) -> str | None:
        if not origin or not origins:
            return None
        if "*" in origins:
            return origin
        return origin if origin in origins else None

    @app.before_request
    def _preflight() -> Response | None:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response = Response(status=204)
            origin = allowed(request.headers.get("Origin"))
            if origin:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
                asked = request.headers.get("Access-Control-Request-Headers", "")
                response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS + (
                    ", " + asked if asked else ""
                )
                response.headers["Access-Control-Allow-Credentials"] = "true"
                response.headers["Access-Control-Max-Age"] = "600"
                response.headers["Vary"] = "Origin"
            return response
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        origin = allowed(request.headers.get("Origin"))
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            response.headers.add("Vary", "Origin")
        response.headers.setdefault("Cross-Origin-Resource-Policy", "cross-origin")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
