"""Capabilities (PS3.18 §8.9): ``OPTIONS`` on the service root describes what we serve.

The description is WADL (the standard's default, ``application/vnd.sun.wadl+xml``),
built from the same route table Flask dispatches on, so it cannot drift from what the
server actually does. A browser CORS preflight (an ``OPTIONS`` with
``Access-Control-Request-Method``) is answered by the CORS layer instead.
"""

from __future__ import annotations

from collections import defaultdict
from xml.sax.saxutils import escape

from flask import Blueprint, Response, current_app, request

from omipacs.web.context import dicomweb_base

bp = Blueprint("capabilities", __name__)

WADL = "application/vnd.sun.wadl+xml"


def _routes(prefix: str) -> dict[str, set[str]]:
    table: dict[str, set[str]] = defaultdict(set)
    for rule in current_app.url_map.iter_rules():
        if not rule.rule.startswith(prefix) or rule.endpoint.startswith("capabilities"):
            continue
        path = rule.rule[len(prefix) :] or "/"
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                table[path.replace("<", "{").replace(">", "}").replace("path:", "")].add(method)
    return dict(sorted(table.items()))


def wadl(base: str, prefix: str) -> str:
    """The WADL document for every route under ``prefix``."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<application xmlns="http://wadl.dev.java.net/2009/02">',
        f'  <resources base="{escape(base)}">',
    ]
    for path, methods in _routes(prefix).items():
        lines.append(f'    <resource path="{escape(path)}">')
        for method in sorted(methods):
            lines.append(f'      <method name="{method}"/>')
        lines.append("    </resource>")
    lines += ["  </resources>", "</application>"]
    return "\n".join(lines) + "\n"


@bp.route("", methods=["OPTIONS"])
@bp.route("/", methods=["OPTIONS"])
def capabilities() -> Response:
    prefix = request.path.rstrip("/")
    body = wadl(dicomweb_base(), prefix)
    allow = "GET, POST, OPTIONS"
    return Response(body, content_type=WADL, headers={"Allow": allow})
