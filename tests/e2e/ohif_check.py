"""End-to-end check: the real OHIF v3 viewer, in headless Chromium, against an omipacs archive.

The check serves the prebuilt viewer (``@ohif/app``'s ``dist/``, installed by
``tests/e2e/ohif/setup.sh``) from a throwaway static server whose ``app-config.js`` is
``docs/ohif-app-config.js`` pointed at the archive, then drives Chromium with
playwright-core (``tests/e2e/ohif/check.mjs``):

1. the study list shows every study the archive's QIDO-RS returns (PS3.18 §10.6), and
   typing a patient ID in its MRN filter (sent as ``00100020=*id*``) leaves only that
   patient's studies;
2. expanding a row asks for the study's series;
3. the viewer opens one study (QIDO series, WADO-RS series metadata, frames) and a viewport
   canvas shows a non-blank image, judged from the canvas pixels and again from a
   screenshot of the viewport; every series thumbnail renders too;
4. a series whose image has a VOI LUT Function (0028,1056; SIGMOID on mammograms FOR
   PRESENTATION) is loaded into the viewport and must render: viewers that mishandle it
   (OHIF 3.13.2) show it blank;
5. with ``--marked``, the study opened is one with expert marks (``/api/v1/marks``): its
   mark SR series (Comprehensive 3D SR, TID 1500, PS3.16) must appear in the study panel,
   and opened from its thumbnail the SR viewport must show the referenced image with one
   drawn annotation per mark (cornerstone's SVG layer), each mark's box placed on the
   image the SR's SCOORD references (PS3.3 §C.18.6); answering OHIF's "continue tracking
   measurements?" prompt must then list every mark's finding in the measurements panel;
6. with ``--token`` (a root that needs one, such as a licence's ``/licences/{id}/dicom-web``),
   the study list opened without it must get 401 from the archive and show nothing; the
   viewer is opened the way OHIF documents, ``/viewer?StudyInstanceUIDs=...&token=...``
   (OHIF sends ``Authorization: Bearer`` on every request and drops the token from the
   address bar), and the study list reached from the viewer must show the root's studies.

Every request the browser sends to the archive is written to ``requests.json`` with its
``Accept`` header, status and response ``Content-Type``: the archive's real OHIF request
profile. Run ``python tests/e2e/ohif_check.py --help``; exit status 0 means the viewer works.

Only the standard library and Pillow are used, so the script runs from any checkout.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageStat

HERE = Path(__file__).resolve().parent
TOOLING = HERE / "ohif"
DIST = TOOLING / "node_modules" / "@ohif" / "app" / "dist"
CONFIG_TEMPLATE = HERE.parents[1] / "docs" / "ohif-app-config.js"
CHROMIUM = "/usr/bin/chromium"
DEFAULT_BASE_URL = "http://127.0.0.1:8042/dicom-web"
SETUP_HINT = "install them with: bash tests/e2e/ohif/setup.sh"
STUDY_LIST_PAGE = 25
"""Rows on the first page of OHIF's study list: studies beyond it are checked by count."""

_ROOT_LINE = re.compile(r"^const OMIPACS_DICOMWEB = '[^']*';$", re.MULTILINE)
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
}


class CheckError(RuntimeError):
    """The check could not run or the viewer did not work; the message says why."""


# --- tooling -------------------------------------------------------------------------------


def missing_tooling(chromium: str = CHROMIUM, dist: Path | None = DIST) -> list[str]:
    """What the check needs and cannot find (empty when everything is installed).

    ``dist=None``: the browser tooling only (for checks that need no viewer build)."""
    missing = []
    if shutil.which("node") is None:
        missing.append("node (Node.js >= 20)")
    if not Path(chromium).exists():
        missing.append(f"Chromium at {chromium} (Debian package 'chromium')")
    if not (TOOLING / "node_modules" / "playwright-core" / "package.json").exists():
        missing.append(f"playwright-core in {TOOLING / 'node_modules'}")
    if dist is not None and not (dist / "index.html").exists():
        missing.append(f"the OHIF viewer build in {dist}")
    return missing


def app_config(dicomweb_root: str, template: Path = CONFIG_TEMPLATE) -> str:
    """``docs/ohif-app-config.js`` with its archive URL set to ``dicomweb_root``."""
    text, count = _ROOT_LINE.subn(
        f"const OMIPACS_DICOMWEB = '{dicomweb_root.rstrip('/')}';", template.read_text()
    )
    if count != 1:
        raise CheckError(f"{template}: expected one `const OMIPACS_DICOMWEB = '...';` line")
    return text


# --- serving the viewer --------------------------------------------------------------------


class _ViewerHandler(http.server.SimpleHTTPRequestHandler):
    """Static files from OHIF's dist/, our app-config.js, SPA fallback, optional proxy."""

    server: _ViewerServer

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".json": "application/json",
        ".svg": "image/svg+xml",
    }

    def __init__(self, request: Any, client_address: Any, server: _ViewerServer) -> None:
        super().__init__(request, client_address, server, directory=str(server.dist))

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _proxied(self) -> bool:
        prefix = self.server.proxy_prefix
        path = urllib.parse.urlsplit(self.path).path
        return bool(prefix) and (path == prefix or path.startswith(prefix + "/"))

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if self._proxied():
            self._proxy()
            return
        if path == "/app-config.js":
            body = self.server.config_js.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return
        local = Path(self.translate_path(path))
        if not local.exists() and "." not in path.rsplit("/", 1)[-1]:
            # A client-side route (/viewer?StudyInstanceUIDs=...): the app decides.
            self.path = "/index.html"
        super().do_GET()

    def do_HEAD(self) -> None:
        if self._proxied():
            self._proxy()
        else:
            super().do_HEAD()

    def do_POST(self) -> None:
        self._proxy() if self._proxied() else self.send_error(405)

    def do_OPTIONS(self) -> None:
        self._proxy() if self._proxied() else self.send_error(405)

    def do_DELETE(self) -> None:
        self._proxy() if self._proxied() else self.send_error(405)

    def _proxy(self) -> None:
        """Forward to the archive as a reverse proxy would (X-Forwarded-* for its URLs)."""
        target = self.server.proxy_target
        assert target is not None
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["X-Forwarded-Host"] = self.headers.get("Host", "")
        headers["X-Forwarded-Proto"] = "http"
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=120)
        self.close_connection = True
        try:
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
            except OSError as exc:
                self.send_error(502, f"archive unreachable: {exc}")
                return
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Connection", "close")
            self.end_headers()
            while chunk := response.read(65536):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser gave up on this request (navigation): nothing to tell it
        finally:
            conn.close()


class _ViewerServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    dist: Path = DIST
    config_js: str = ""
    proxy_prefix: str = ""
    proxy_target: urllib.parse.SplitResult | None = None


@contextmanager
def serve_viewer(
    base_url: str, *, same_origin: bool = False, dist: Path = DIST
) -> Iterator[tuple[str, str]]:
    """Serve OHIF on a free loopback port; yield (viewer URL, DICOMweb root OHIF uses).

    With ``same_origin`` the viewer's server also reverse-proxies the archive's base path,
    as an nginx in front of both would; otherwise OHIF calls the archive cross-origin (CORS).
    """
    server = _ViewerServer(("127.0.0.1", 0), _ViewerHandler)
    server.dist = dist
    viewer = f"http://127.0.0.1:{server.server_address[1]}"
    archive = urllib.parse.urlsplit(base_url.rstrip("/"))
    if same_origin:
        server.proxy_prefix = archive.path
        server.proxy_target = archive
        root = viewer + archive.path
    else:
        root = base_url.rstrip("/")
    server.config_js = app_config(root)
    thread = threading.Thread(target=server.serve_forever, name="ohif-static", daemon=True)
    thread.start()
    try:
        yield viewer, root
    finally:
        server.shutdown()
        server.server_close()


# --- the archive's own answer ------------------------------------------------------------


def _first(attrs: dict[str, Any], tag: str) -> Any:
    values = attrs.get(tag, {}).get("Value") or [None]
    return values[0]


def _auth(token: str | None) -> dict[str, str]:
    """The Authorization header a token gives (none without one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def _get_json(url: str, timeout: float, token: str | None = None) -> list[dict[str, Any]]:
    headers = {"Accept": "application/dicom+json", **_auth(token)}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise CheckError(f"GET {url} -> {exc.code} {exc.reason}: {exc.read()[:500]!r}") from exc
    except OSError as exc:
        raise CheckError(f"GET {url}: archive unreachable ({exc})") from exc
    items: list[dict[str, Any]] = json.loads(body) if body.strip() else []
    return items


def archive_studies(
    base_url: str, timeout: float = 30, token: str | None = None
) -> list[dict[str, str]]:
    """Studies the archive lists over QIDO-RS: what OHIF's study list must show."""
    studies = []
    for attrs in _get_json(base_url.rstrip("/") + "/studies?limit=1000", timeout, token):
        name = _first(attrs, "00100010")
        studies.append(
            {
                "uid": str(_first(attrs, "0020000D") or ""),
                "patientId": str(_first(attrs, "00100020") or ""),
                "patientName": str(name.get("Alphabetic", "")) if isinstance(name, dict) else "",
                "accession": str(_first(attrs, "00080050") or ""),
                "modalities": "\\".join(attrs.get("00080061", {}).get("Value") or []),
            }
        )
    return studies


def archive_api_root(base_url: str) -> str:
    """The archive's own root for ``/api/v1``: the DICOMweb base URL minus its last segment."""
    parts = urllib.parse.urlsplit(base_url.rstrip("/"))
    path = parts.path.rsplit("/", 1)[0] if parts.path.count("/") >= 1 else ""
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _get_marks(
    base_url: str, study: str | None, timeout: float, token: str | None
) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"study": study, "limit": 1000} if study else {"limit": 1000})
    url = f"{archive_api_root(base_url)}/api/v1/marks?{query}"
    try:
        request = urllib.request.Request(url, headers=_auth(token))
        with urllib.request.urlopen(request, timeout=timeout) as response:
            marks: list[dict[str, Any]] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise CheckError(f"GET {url} -> {exc.code} {exc.reason}: {exc.read()[:500]!r}") from exc
    except OSError as exc:
        raise CheckError(f"GET {url}: archive unreachable ({exc})") from exc
    return marks


COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
"""Comprehensive 3D SR Storage (PS3.4 §B.5): the SOP class of the archive's mark reports."""


def marked_study(
    base_url: str, study: str | None = None, timeout: float = 30, token: str | None = None
) -> dict[str, Any] | None:
    """A study with expert marks, its mark SR and the image the SR's first mark is drawn on.

    The marks come from the archive's ``/api/v1/marks``; the SR and image series are looked
    up over QIDO-RS (PS3.18 §10.6) as OHIF will see them. ``None`` when nothing is marked.
    """
    marks = [m for m in _get_marks(base_url, study, timeout, token) if m.get("sr_uid")]
    if not marks:
        return None
    first = marks[0]
    uid = str(first["study_uid"])
    root = base_url.rstrip("/") + f"/studies/{uid}"
    described = {
        str(_first(s, "0020000E")): s
        for s in _get_json(f"{root}/series?includefield=0008103E", timeout, token)
    }
    reports = _get_json(f"{root}/instances?SOPClassUID={COMPREHENSIVE_3D_SR}", timeout, token)
    series_of = {str(_first(i, "00080018")): str(_first(i, "0020000E")) for i in reports}
    sr_series = series_of.get(str(first["sr_uid"]))
    if sr_series is None:
        raise CheckError(
            f"mark {first.get('id')} names SR {first['sr_uid']}, which QIDO does not list "
            f"in study {uid} ({root}/instances?SOPClassUID={COMPREHENSIVE_3D_SR})"
        )
    in_report = [m for m in marks if m["study_uid"] == uid and m["sr_uid"] == first["sr_uid"]]
    image_series = described.get(str(first["series_uid"]), {})
    sr = described.get(sr_series, {})
    return {
        "study": uid,
        "srSeries": sr_series,
        "srInstance": str(first["sr_uid"]),
        "srDescription": str(_first(sr, "0008103E") or ""),
        "srSeriesNumber": _first(sr, "00200011"),
        "srSeriesInStudy": len(set(series_of.values())),
        "imageSeries": str(first["series_uid"]),
        "imageInstance": str(first["sop_uid"]),
        "imageDescription": str(_first(image_series, "0008103E") or ""),
        "marks": [
            {
                "box": m.get("box"),
                "graphicType": m.get("graphic_type"),
                "finding": m.get("finding_meaning"),
                "trackingId": m.get("omidb_mark_id"),
            }
            for m in in_report
        ],
    }


def voi_lut_series(
    base_url: str, study: str, timeout: float = 30, token: str | None = None
) -> dict[str, str] | None:
    """A series of ``study`` whose image carries a VOI LUT Function (0028,1056), if any.

    Mammograms FOR PRESENTATION usually do (SIGMOID); viewers that mishandle it show a
    blank viewport, so the check loads one such series on purpose.
    """
    root = base_url.rstrip("/") + f"/studies/{study}"
    for series in _get_json(f"{root}/series?includefield=0008103E", timeout, token):
        uid = _first(series, "0020000E")
        for instance in _get_json(f"{root}/series/{uid}/metadata", timeout, token):
            function = _first(instance, "00281056")
            description = _first(instance, "0008103E")
            if function and description:
                return {"description": str(description), "voiLutFunction": str(function)}
    return None


# --- results -------------------------------------------------------------------------------


def screenshot_nonblank(path: Path) -> dict[str, float | bool]:
    """Pixel statistics of a viewport screenshot; an image fills far more than its overlay text."""
    with Image.open(path) as image:
        grey = image.convert("L")
        stat = ImageStat.Stat(grey)
        histogram = grey.histogram()
    total = sum(histogram)
    lit = sum(histogram[17:]) / total if total else 0.0
    std = float(stat.stddev[0])
    return {"std": std, "litFraction": lit, "nonBlank": std > 4 and lit > 0.05}


_UID = r"[0-9]+(?:\.[0-9]+)+"
_PATTERNS = [
    (re.compile(rf"/studies/{_UID}"), "/studies/{study}"),
    (re.compile(rf"/series/{_UID}"), "/series/{series}"),
    (re.compile(rf"/instances/{_UID}"), "/instances/{instance}"),
    (re.compile(r"/frames/[0-9,]+"), "/frames/{n}"),
]


_BOUNDARY = re.compile(r";\s*boundary=[^;]*")


def route_of(url: str, root: str) -> str:
    """``GET`` route pattern of an archive URL: UIDs and frame numbers abstracted."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path[len(urllib.parse.urlsplit(root).path) :] or "/"
    for pattern, replacement in _PATTERNS:
        path = pattern.sub(replacement, path)
    keys = [k for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    return path + ("?" + "&".join(keys) if keys else "")


def request_profile(requests: Sequence[dict[str, Any]], root: str) -> list[dict[str, Any]]:
    """Requests grouped by method and route, with Accept headers and statuses seen."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for r in requests:
        key = (r["method"], route_of(r["url"], root))
        group = groups.setdefault(
            key,
            {
                "method": key[0],
                "route": key[1],
                "count": 0,
                "accept": Counter[str](),
                "status": Counter[str](),
                "contentType": Counter[str](),
                "example": r["url"],
            },
        )
        group["count"] += 1
        group["accept"][r["requestHeaders"].get("accept", "")] += 1
        group["status"][str(r["status"] or r["failure"] or "no response")] += 1
        ctype = (r["responseHeaders"] or {}).get("content-type", "")
        group["contentType"][_BOUNDARY.sub("", ctype)] += 1
    return [
        {
            **g,
            "accept": dict(g["accept"]),
            "status": dict(g["status"]),
            "contentType": dict(g["contentType"]),
        }
        for g in sorted(groups.values(), key=lambda g: (-int(g["count"]), g["route"]))
    ]


@dataclass
class CheckResult:
    """Outcome of one run of the viewer against the archive."""

    ok: bool
    message: str
    out_dir: Path
    seconds: float
    steps: list[dict[str, Any]] = field(default_factory=list)
    profile: list[dict[str, Any]] = field(default_factory=list)
    screenshots: dict[str, str] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    console_errors: dict[str, int] = field(default_factory=dict)
    sr_requests: list[dict[str, Any]] = field(default_factory=list)
    marked: dict[str, Any] | None = None
    tokenless: list[dict[str, Any]] = field(default_factory=list)
    """Request profile of the study list opened without the token (meant to be refused)."""
    authorized: list[bool] = field(default_factory=list)
    """For each other archive request: did it carry an ``Authorization`` header."""

    def report(self) -> str:
        """A few lines for people: verdict, steps with timings, request profile."""
        lines = [("OK: " if self.ok else "FAIL: ") + self.message]
        for s in self.steps:
            mark = "ok " if s["ok"] else "ERR"
            lines.append(f"  [{mark}] {s['name']:<18} {s['ms'] / 1000:6.2f}s  {s['detail'] or ''}")
        lines.append("  archive requests (method route x count: status; accept):")
        for g in self.profile:
            lines.append(
                f"    {g['method']} {g['route']} x{g['count']}: {g['status']}; {list(g['accept'])}"
            )
        if self.marked is not None:
            lines.append(f"  mark SR series {self.marked['srSeries']}: requests for it:")
            for g in self.sr_requests:
                lines.append(
                    f"    {g['method']} {g['route']} x{g['count']}: {g['status']}; "
                    f"{list(g['accept'])}"
                )
        if self.tokenless:
            lines.append("  without the token:")
            for g in self.tokenless:
                lines.append(f"    {g['method']} {g['route']} x{g['count']}: {g['status']}")
        for problem in self.server_errors:
            lines.append(f"  archive error: {problem}")
        for text, count in list(self.console_errors.items())[:8]:
            lines.append(f"  console error x{count}: {text[:200]}")
        for name, path in self.screenshots.items():
            lines.append(f"  screenshot {name}: {path}")
        lines.append(f"  total {self.seconds:.1f}s; details in {self.out_dir}")
        return "\n".join(lines)


CLIENT_ABORT = "net::ERR_ABORTED"
"""Chromium's word for a request the page itself cancelled (navigation, a closed tab)."""


def _server_errors(requests: Sequence[dict[str, Any]]) -> list[str]:
    """Archive requests that failed for a reason other than the page cancelling them."""
    out = []
    for r in requests:
        if (r["failure"] and r["failure"] != CLIENT_ABORT) or (r["status"] or 0) >= 400:
            outcome = r["failure"] or r["status"]
            said = f": {r['errorBody']!r}" if r.get("errorBody") else ""
            out.append(
                f"{r['method']} {r['url']} -> {outcome}{said} (Accept: "
                f"{r['requestHeaders'].get('accept', '')})"
            )
    return out


def run_check(
    base_url: str = DEFAULT_BASE_URL,
    out_dir: Path | None = None,
    *,
    study: str | None = None,
    shell_only: bool = False,
    marked: bool = False,
    same_origin: bool = False,
    timeout: float = 60,
    chromium: str = CHROMIUM,
    dist: Path = DIST,
    token: str | None = None,
    hidden_studies: Sequence[dict[str, str]] = (),
) -> CheckResult:
    """Run the viewer against ``base_url``; raise CheckError if the tooling is missing.

    With ``marked`` the study opened is one with expert marks (``study`` if given), and the
    check goes on to open its mark SR (see :func:`marked_study`).

    With ``token`` (a root such as a licence's ``/licences/{id}/dicom-web`` that needs one),
    the study list is first opened without it and must be refused; the viewer is then
    opened with ``?token=`` and the study list reached from it must show every study of
    the root and nothing of ``hidden_studies`` (studies of the archive outside the root).
    """
    missing = missing_tooling(chromium, dist)
    if missing:
        raise CheckError("missing " + "; ".join(missing) + f"; {SETUP_HINT}")
    started = time.monotonic()
    out = (out_dir or Path(tempfile.mkdtemp(prefix="ohif-check-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    studies = [] if shell_only else archive_studies(base_url, token=token)
    if not shell_only and not studies:
        raise CheckError(f"{base_url}/studies lists no studies: load some (omipacs demo)")
    report = None
    if marked and not shell_only:
        report = marked_study(base_url, study, token=token)
        if report is None:
            raise CheckError(
                f"{archive_api_root(base_url)}/api/v1/marks lists no marks with an SR"
                + (f" for study {study}" if study else "")
                + ": load marked demo clients (omipacs demo --clients 20)"
            )
        study = report["study"]
    if study is None and studies:
        study = next((s["uid"] for s in studies if "MG" in s["modalities"]), studies[0]["uid"])
    voi, preflight = None, []
    if study:
        try:
            voi = voi_lut_series(base_url, study, token=token)
        except CheckError as exc:  # let the browser run: it shows what a user would see
            preflight.append(str(exc))
    with serve_viewer(base_url, same_origin=same_origin, dist=dist) as (viewer, root):
        options = {
            "ohifUrl": viewer,
            "archiveRoots": [root],
            "outDir": str(out),
            "executablePath": chromium,
            "studies": studies if len(studies) <= STUDY_LIST_PAGE else [],
            "openStudy": "" if shell_only else study,
            "voiSeries": voi,
            "marked": report,
            "timeoutMs": int(timeout * 1000),
            "token": token,
            "hiddenStudies": list(hidden_studies),
        }
        (out / "app-config.js").write_text(app_config(root))
        try:
            proc = subprocess.run(
                ["node", str(TOOLING / "check.mjs"), json.dumps(options)],
                cwd=TOOLING,
                capture_output=True,
                text=True,
                timeout=timeout * 5 + 60,
            )
        except subprocess.TimeoutExpired as exc:
            raise CheckError(f"the browser check did not finish in {exc.timeout:.0f}s") from exc
    result_file = out / "result.json"
    if not result_file.exists():
        raise CheckError(f"check.mjs wrote no result (exit {proc.returncode}):\n{proc.stderr}")
    result = json.loads(result_file.read_text())
    tokenless = [r for r in result["requests"] if r.get("phase") == "no-token"]
    requests = [r for r in result["requests"] if r.get("phase") != "no-token"]
    profile = request_profile(requests, root)
    sr_requests = (
        request_profile([r for r in requests if report["srSeries"] in r["url"]], root)
        if report
        else []
    )
    (out / "requests.json").write_text(
        json.dumps(
            {
                "root": root,
                "profile": profile,
                "srRequests": sr_requests,
                "tokenless": request_profile(tokenless, root),
                "requests": result["requests"],
            },
            indent=2,
        )
    )
    ok, message = bool(result["ok"]), result["error"] or ""
    viewport_png = result["screenshots"].get("viewport")
    if ok and viewport_png:
        pixels = screenshot_nonblank(Path(viewport_png))
        result["viewport"]["screenshot"] = pixels
        if not pixels["nonBlank"]:
            ok, message = False, f"the viewport screenshot is blank ({pixels})"
    sr_png = result["screenshots"].get("sr-viewport")
    if ok and sr_png:
        pixels = screenshot_nonblank(Path(sr_png))
        result["srViewport"]["screenshot"] = pixels
        if not pixels["nonBlank"]:
            ok, message = False, f"the SR viewport screenshot is blank ({pixels})"
    if ok:
        rendered = (result.get("viewport") or {}).get("rendered")
        message = (
            "OHIF rendered its study list"
            if shell_only
            else f"OHIF listed {len(studies)} studies and rendered study {study} "
            f"({rendered} viewport(s) with an image)"
        )
        if report:
            sr = result["srViewport"]
            message += (
                f" and its mark SR on image {report['imageDescription']!r} "
                f"({sr['annotations']} annotation(s) drawn for {len(report['marks'])} mark(s))"
            )
        if token:
            message += (
                f", with its token (refused without it), showing none of the "
                f"{len(hidden_studies)} studies outside this root"
            )
    elif not message:
        message = "a step failed; see result.json"
    errors = preflight + _server_errors(requests)
    if ok and preflight:
        ok, message = False, "the archive failed a request of the check itself"
    if not ok and errors:
        message += f"; {len(errors)} archive request(s) failed, first: {errors[0]}"
    return CheckResult(
        ok=ok,
        message=message,
        out_dir=out,
        seconds=time.monotonic() - started,
        steps=result["steps"],
        profile=profile,
        screenshots=result["screenshots"],
        server_errors=errors,
        console_errors=dict(
            Counter(c["text"] for c in result["console"] if c["type"] != "warning").most_common()
        ),
        sr_requests=sr_requests,
        marked=report,
        tokenless=request_profile(tokenless, root),
        authorized=["authorization" in r["requestHeaders"] for r in requests],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "base_url", nargs="?", default=DEFAULT_BASE_URL, help=f"default {DEFAULT_BASE_URL}"
    )
    parser.add_argument(
        "--out", type=Path, help="folder for screenshots and JSON (default: a new temporary one)"
    )
    parser.add_argument("--study", help="StudyInstanceUID to open (default: the first MG study)")
    parser.add_argument(
        "--shell-only",
        action="store_true",
        help="only check that OHIF's study list page renders (no studies needed)",
    )
    parser.add_argument(
        "--marked",
        action="store_true",
        help="open a study with expert marks (/api/v1/marks) and its mark SR "
        "(with --study: that study's marks)",
    )
    parser.add_argument(
        "--same-origin",
        action="store_true",
        help="reverse-proxy the archive through the viewer's origin instead of CORS",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("OMIPACS_TOKEN"),
        help="bearer token for a root that needs one, e.g. /licences/{id}/dicom-web "
        "(default: $OMIPACS_TOKEN)",
    )
    parser.add_argument("--timeout", type=float, default=60, help="seconds per wait (default 60)")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"browser binary ({CHROMIUM})")
    parser.add_argument(
        "--viewer-dist", type=Path, default=DIST, help="another OHIF build's dist/ to try"
    )
    args = parser.parse_args(argv)
    try:
        result = run_check(
            args.base_url,
            args.out,
            study=args.study,
            shell_only=args.shell_only,
            marked=args.marked,
            same_origin=args.same_origin,
            timeout=args.timeout,
            chromium=args.chromium,
            dist=args.viewer_dist,
            token=args.token,
        )
    except CheckError as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
