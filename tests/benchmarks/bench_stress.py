"""Stress: hostile clients on every door at once, and how a normal user fares meanwhile.

Runs ``omipacs serve`` (whatever HTTP server it runs) and, all at the same time:

* 100 slow and idle HTTP clients: 40 sockets that connect and send nothing, 30 that send
  a request header one byte a second, 30 that ask for a large body and never read it;
* 20 silent TCP sockets on the DIMSE port, reconnecting when closed;
* a decompression-bomb loop: STOW-RS of a 1 KB JPEG-LS stream declaring 8192 x 8192
  (refused), and ``/rendered`` of the largest frame the archive accepts (8192 x 8192
  x 8 bits, 64 MiB decoded; JPEG-LS, or JPEG 2000 with ``--codec jpeg2000``) from 4
  threads.

The hostile clients all come from 127.0.0.2, the normal user from 127.0.0.1.
Meanwhile it times normal QIDO, WADO (one small instance) and C-ECHO requests and prints
their latency (target: under 1 s) next to a baseline measured first in the same run,
and the server's peak memory (target: under 1 GB), sampled over its whole process tree
(``serve``, the gunicorn arbiter and workers, the SCP processes) as summed PSS, since
the work is spread over several processes.

    python tests/benchmarks/bench_stress.py [--seconds 30] [--codec jpeg-ls|jpeg2000]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import pydicom  # noqa: E402
import requests  # noqa: E402
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless  # noqa: E402

from omipacs.demo import factory  # noqa: E402
from tests.benchmarks.common import TreeMemory  # noqa: E402
from tests.conftest import make_settings, start_server  # noqa: E402
from tests.ingest import doors  # noqa: E402
from tests.ingest.malformed import stream_declares_more_pixels  # noqa: E402
from tests.retrieve.builders import largest_accepted_frame  # noqa: E402

CODECS = {"jpeg-ls": JPEGLSLossless, "jpeg2000": JPEG2000Lossless}
"""Compressions of the frame rendered in a loop (``--codec``)."""

ATTACKER = "127.0.0.2"
"""Every hostile client connects from here; the normal user from 127.0.0.1. The server
limits what one address may hold (``[http] max_client_requests``, the SCP's pending
connections per address), so an attacker sharing the user's address would be measuring
that limit, not whether the user is still served."""


class _FromAttacker(requests.adapters.HTTPAdapter):
    """Connections from :data:`ATTACKER`."""

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        kwargs["source_address"] = (ATTACKER, 0)
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]


def attacker_session() -> requests.Session:
    session = requests.Session()
    session.mount("http://", _FromAttacker())
    return session


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Load:
    """The hostile clients, each on its own thread until ``stop`` is set."""

    def __init__(self, http_port: int, dimse_port: int, rendered_url: str, base: str) -> None:
        self.http_port, self.dimse_port = http_port, dimse_port
        self.rendered_url, self.base = rendered_url, base
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.counts = {"rendered_ok": 0, "rendered_busy": 0, "bombs_refused": 0}

    def _spawn(self, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, daemon=True)
        t.start()
        self.threads.append(t)

    def _connect(self, port: int, source: str = "127.0.0.1") -> socket.socket | None:
        try:
            s = socket.socket()
            s.settimeout(5)
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
            return s
        except OSError:
            return None

    def idle_http(self) -> None:
        s = self._connect(self.http_port, ATTACKER)
        while not self.stop.wait(1):
            if s is None or _closed(s):
                s = self._connect(self.http_port, ATTACKER)

    def slow_header(self) -> None:
        request = f"GET /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1:{self.http_port}\r\n"
        s = self._connect(self.http_port, ATTACKER)
        i = 0
        while not self.stop.wait(1):
            try:
                assert s is not None
                s.send(request[i % len(request)].encode())
                i += 1
            except (OSError, AssertionError):
                s, i = self._connect(self.http_port, ATTACKER), 0

    def never_reads(self) -> None:
        request = (
            f"GET /dicom-web/studies?limit=1000&includefield=all HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.http_port}\r\n\r\n"
        ).encode()
        s = self._connect(self.http_port, ATTACKER)
        while not self.stop.wait(2):
            try:
                assert s is not None
                s.send(request)  # pipelined requests whose answers are never read
            except (OSError, AssertionError):
                s = self._connect(self.http_port, ATTACKER)

    def silent_dimse(self) -> None:
        s = self._connect(self.dimse_port, ATTACKER)
        while not self.stop.wait(0.5):
            if s is None or _closed(s):
                s = self._connect(self.dimse_port, ATTACKER)

    def rendered_loop(self) -> None:
        session = attacker_session()
        while not self.stop.is_set():
            try:
                r = session.get(self.rendered_url, timeout=60)
                key = "rendered_ok" if r.status_code == 200 else "rendered_busy"
                self.counts[key] += 1
            except requests.RequestException:
                self.counts["rendered_busy"] += 1

    def bomb_loop(self) -> None:
        bomb = doors.multipart(stream_declares_more_pixels())
        session = attacker_session()
        while not self.stop.wait(0.2):
            try:
                r = session.post(f"{self.base}/studies", data=bomb, timeout=60,
                                 headers={"Content-Type": doors.STOW_CT})
                if r.status_code != 200:
                    self.counts["bombs_refused"] += 1
            except requests.RequestException:
                pass

    def start(self) -> None:
        for _ in range(40):
            self._spawn(self.idle_http)
        for _ in range(30):
            self._spawn(self.slow_header)
        for _ in range(30):
            self._spawn(self.never_reads)
        for _ in range(20):
            self._spawn(self.silent_dimse)
        for _ in range(4):
            self._spawn(self.rendered_loop)
        self._spawn(self.bomb_loop)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def _closed(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.setblocking(True)


def probes(base: str, dimse_port: int, instance_url: str) -> dict[str, Callable[[], object]]:
    def qido() -> None:
        r = requests.get(f"{base}/studies", params={"limit": "10"}, timeout=30)
        r.raise_for_status()

    def wado() -> None:
        r = requests.get(
            instance_url, headers={"Accept": "application/dicom; transfer-syntax=*"}, timeout=30
        )
        r.raise_for_status()

    def echo() -> None:
        assoc = doors.scu().associate("127.0.0.1", dimse_port, ae_title="OMIPACS")
        try:
            assert assoc.is_established and assoc.send_c_echo().Status == 0
        finally:
            assoc.release()

    return {"QIDO": qido, "WADO": wado, "C-ECHO": echo}


def measure(fns: dict[str, Callable[[], object]], seconds: float) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in fns}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, fn in fns.items():
            try:
                out[name].append(timed(fn))
            except Exception:
                out[name].append(float("inf"))
        time.sleep(0.2)
    return out


def summary(values: list[float]) -> str:
    finite = sorted(v for v in values if v != float("inf"))
    failed = len(values) - len(finite)
    if not finite:
        return f"all {failed} failed"
    p95 = finite[min(len(finite) - 1, int(len(finite) * 0.95))]
    return (
        f"n={len(values):3d} median {statistics.median(finite) * 1000:7.1f} ms  "
        f"p95 {p95 * 1000:7.1f} ms  max {finite[-1] * 1000:7.1f} ms  failed {failed}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--codec",
        choices=sorted(CODECS),
        default="jpeg-ls",
        help="how the 8192 x 8192 frame rendered in a loop is compressed (JPEG 2000 "
        "decodes through 32-bit samples: about 2.5 times JPEG-LS's memory)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        settings = make_settings(work)
        server = start_server(settings, work)
        try:
            base = server.base_url
            small = work / "small.dcm"
            small.write_bytes(factory.to_bytes(factory.make_mammo(rows=256, columns=208)))
            big = work / "big.dcm"
            big.write_bytes(largest_accepted_frame(syntax=CODECS[args.codec]))
            for path in (small, big):
                assert doors.c_store(server.dimse_port, path).accepted, path
            urls = {}
            for path in (small, big):
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                urls[path.name] = (
                    f"{base}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                    f"/instances/{ds.SOPInstanceUID}"
                )
            fns = probes(base, server.dimse_port, urls["small.dcm"])
            memory = TreeMemory(server.process.pid)
            with memory:
                print(f"baseline ({min(args.seconds, 10):.0f} s, no load):")
                baseline = measure(fns, min(args.seconds, 10))
                for name, values in baseline.items():
                    print(f"  {name:7s} {summary(values)}")
                load = Load(
                    settings.http.port, server.dimse_port, urls["big.dcm"] + "/rendered", base
                )
                load.start()
                time.sleep(3)
                print(f"under load ({args.seconds:.0f} s): 100 slow/idle HTTP clients, "
                      f"20 silent DIMSE sockets, bomb loop, 4 x /rendered of 8192 x 8192 "
                      f"{args.codec}")
                loaded = measure(fns, args.seconds)
                worst = 0.0
                for name, values in loaded.items():
                    base_median = statistics.median(
                        v for v in baseline[name] if v != float("inf")
                    )
                    finite = [v for v in values if v != float("inf")]
                    ratio = statistics.median(finite) / base_median if finite else float("inf")
                    worst = max([worst, *values])
                    print(f"  {name:7s} {summary(values)}  median x{ratio:.1f} of baseline")
                load.finish()
            print(f"  load: {load.counts}")
            print(f"slowest normal request under load: {worst * 1000:.0f} ms (target < 1000)"
                  f" -> {'ok' if worst < 1 else 'MISSED'}")
            print(f"server memory, whole process tree ({len(memory.processes)} processes seen:"
                  f" serve, gunicorn arbiter and workers, SCP processes): peak PSS "
                  f"{memory.peak_pss_mib:.0f} MiB (target < 1024) -> "
                  f"{'ok' if memory.peak_pss_mib < 1024 else 'MISSED'}; peak summed RSS "
                  f"{memory.peak_rss_mib:.0f} MiB; largest single-process VmHWM "
                  f"{memory.peak_process_mib:.0f} MiB")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
