"""CORS for browser viewers (OHIF) served from another origin.

Preflights are answered with the methods and headers viewers send (``authorization``
included, for when access control is on); responses expose the headers viewers read
(``Warning`` for truncated searches, ``Content-Range``). ``Cross-Origin-Resource-Policy``
lets a cross-origin-isolated page (OHIF's volume rendering) load our responses.
"""

from __future__ import annotations

from flask import Flask, Response, request

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = (
    "authorization, accept, content-type, range, if-range, if-none-match, x-requested-with, "
    "cache-control"
)
EXPOSED_HEADERS = (
    "Warning, Content-Range, Content-Length, Content-Type, Content-Location, ETag, Accept-Ranges"
)


def install(app: Flask, origins: tuple[str, ...]) -> None:
    """Add CORS handling to ``app`` for ``origins`` ('*' for any)."""

    any_origin = "*" in origins

    def allowed(origin: str | None) -> str | None:
        # With "*" the answer is the literal "*" and never with credentials, so no other
        # site can read the archive through a browser's stored credentials; listed
        # origins are echoed and may send credentials.
        if not origin or not origins:
            return None
        if any_origin:
            return "*"
        return origin if origin in origins else None

    def credentials(response: Response) -> None:
        if not any_origin:
            response.headers["Access-Control-Allow-Credentials"] = "true"

    @app.before_request
    def _preflight() -> Response | None:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response = Response(status=204)
            if allowed(request.headers.get("Origin")):
                asked = request.headers.get("Access-Control-Request-Headers", "")
                names = [h.strip() for h in ALLOWED_HEADERS.split(",")]
                names += [
                    h.strip().lower()
                    for h in asked.split(",")
                    if h.strip() and h.strip().lower() not in names
                ]
                response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
                response.headers["Access-Control-Allow-Headers"] = ", ".join(names)
                response.headers["Access-Control-Max-Age"] = "600"
            return response  # origin, credentials and Vary are added below
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        origin = allowed(request.headers.get("Origin"))
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            credentials(response)
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            response.headers.add("Vary", "Origin")
        response.headers.setdefault("Cross-Origin-Resource-Policy", "cross-origin")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
