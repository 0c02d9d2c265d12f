"""A throwaway PostgreSQL server for the test session.

``.ci/run`` installs PostgreSQL; this module starts a private cluster in a temporary
directory on a free port (as the ``postgres`` user when running as root, since the
server refuses to run as root), or uses ``OMIPACS_TEST_PG_URL`` if set.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL's {name} was not found: install PostgreSQL (bash .ci/run does) "
            "or set OMIPACS_TEST_PG_URL"
        )
    return candidates[-1]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A private PostgreSQL cluster, started and stopped by the test session."""

    def __init__(self, options: str = "") -> None:
        """``options``: more ``-c name=value`` server settings (benchmarks size memory)."""
        self.dir = Path(tempfile.mkdtemp(prefix="omipacs-pg-"))
        self.port = free_port()
        self.user = "omipacs"
        as_root = os.geteuid() == 0
        self._prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        if as_root:
            shutil.chown(self.dir, "postgres")
        data = self.dir / "data"
        self._run(
            [
                _pg_bin("initdb"),
                "-D",
                str(data),
                "-U",
                self.user,
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )
        self._run(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.dir / "log"),
                "-w",
                "-o",
                f"-p {self.port} -k {self.dir} -h 127.0.0.1 -c fsync=off "
                f"-c full_page_writes=off -c max_connections=200 {options}",
                "start",
            ]
        )
        self.data = data

    def _run(self, cmd: list[str]) -> None:
        subprocess.run(
            self._prefix + cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            self._prefix + [_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


def create_database(admin_url: str) -> str:
    """Create a fresh, empty database and return its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    for attempt in range(50):
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            break
        except sa.exc.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.2)
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"
