"""The base URL clients used, behind a reverse proxy.

BulkDataURIs, RetrieveURLs and STOW responses carry absolute URLs, so they must name
the host, scheme and path prefix the client sees, not the archive's bind address. The
RFC 7239 ``Forwarded`` header wins over ``X-Forwarded-Proto/Host/Prefix``.
"""

from __future__ import annotations

import re

from flask import Request

_PAIR = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')
_HOST = re.compile(r"^[A-Za-z0-9.\-:\[\]]{1,255}$")
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~\-]+)*$")


def _forwarded(value: str) -> dict[str, str]:
    first = value.split(",", 1)[0]
    out: dict[str, str] = {}
    for part in first.split(";"):
        m = _PAIR.fullmatch(part)
        if m:
            out[m.group(1).lower()] = m.group(2).strip('"')
    return out


def _direct_host(request: Request) -> str:
    """The Host header, with the port we listen on added when a client left it out.

    Some clients (dicomweb-client among them) send ``Host`` without the port; URLs built
    from it would then point at port 80. Only used when no proxy header is present.
    """
    host = request.host
    port = str(request.environ.get("SERVER_PORT", ""))
    default = "443" if request.scheme == "https" else "80"
    if port and port != default and not host.endswith("]") and ":" not in host:
        host = f"{host}:{port}"
    return host


def base_url(request: Request, base_path: str, *, trust_proxy: bool, public_url: str = "") -> str:
    """``scheme://host[/prefix]<base_path>`` as the client addressed us.

    ``public_url`` (``[http] public_url``) pins scheme, host and prefix when set.
    """
    if public_url:
        return public_url.rstrip("/") + base_path
    proxied = trust_proxy and any(
        h in request.headers for h in ("Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto")
    )
    scheme, host, prefix = request.scheme, request.host if proxied else _direct_host(request), ""
    if trust_proxy:
        fwd = _forwarded(request.headers.get("Forwarded", ""))
        scheme = fwd.get("proto") or request.headers.get("X-Forwarded-Proto", scheme)
        host = fwd.get("host") or request.headers.get("X-Forwarded-Host", host)
        prefix = request.headers.get("X-Forwarded-Prefix", "")
        scheme = scheme.split(",")[0].strip().lower()
        host = host.split(",")[0].strip()
        prefix = prefix.split(",")[0].strip().rstrip("/")
        if scheme not in ("http", "https"):
            scheme = request.scheme
        if not _HOST.match(host):
            host = request.host
        if not _PREFIX.match(prefix):
            prefix = ""
    return f"{scheme}://{host}{prefix}{base_path}"
