"""Errors to HTTP responses: the one place the mapping happens.

An :class:`OmipacsError` becomes its ``http_status`` with its reason; anything else is
logged and becomes a 500 whose body says nothing about the cause (internals and patient
data never leak; docs/architecture.md, "Errors").
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException

from omipacs.errors import OmipacsError

log = logging.getLogger(__name__)


def error_response(status: int, reason: str) -> Response:
    """The one JSON error shape."""
    response = jsonify({"error": reason, "status": status})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Install the handlers on ``app``."""

    @app.errorhandler(OmipacsError)
    def _ours(exc: OmipacsError) -> Response:
        g.error_reason = exc.reason  # for the audit trail
        return error_response(exc.http_status, exc.reason)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        response = error_response(exc.code or 500, exc.description or exc.name)
        # A 405 must say which methods the resource has (RFC 9110 §15.5.6): werkzeug
        # knows them from the route table and puts them in the exception's headers.
        for name, value in exc.get_headers():
            if name.lower() == "allow":
                response.headers["Allow"] = value
        return response

    @app.errorhandler(TimeoutError)
    def _stalled(exc: TimeoutError) -> Response:
        # The connection's socket deadline (omipacs.web.sendfile): the body stopped coming.
        response = error_response(408, "the request body stopped arriving; try again")
        response.headers["Connection"] = "close"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error serving a request", exc_info=exc)
        return error_response(500, "internal server error")
