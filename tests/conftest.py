"""Shared fixtures: settings on a temporary root, both databases, a live server.

Fixtures build data and start real parts (a PostgreSQL server, an omipacs process
listening on real sockets); they never replace behaviour with mocks.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from omipacs.config import (
    DatabaseSettings,
    DeidSettings,
    DimseSettings,
    HttpSettings,
    Peer,
    Settings,
    StorageSettings,
)
from omipacs.services import Services
from tests.objectstores import (
    Bucket,
    FakeGcs,
    MotoS3,
    ObjectStoreServer,
    environment_without_cloud_credentials,
)
from tests.pg import PostgresServer, create_database, free_port

#: Screening sites (SITE_A, SITE_B) send identifiable data and are de-identified; the
#: tool AEs (dcmtk's and pynetdicom's defaults) are configured as trusted archive-side
#: senders so tests can check that stored bytes equal the bytes sent.
TEST_PEERS = (
    Peer("STORESCU", deidentify=False),
    Peer("ECHOSCU"),
    Peer("FINDSCU"),
    Peer("PYNETDICOM", deidentify=False),
    Peer("SITE_A"),
    Peer("SITE_B"),
    Peer("SITE_C"),
    Peer("VIEWER", deidentify=False),
)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """Admin URL of a real PostgreSQL server for this test session."""
    url = os.environ.get("OMIPACS_TEST_PG_URL")
    if url:
        yield url
        return
    server = PostgresServer()
    try:
        yield server.admin_url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """moto's S3 API server on loopback for this test session."""
    environment_without_cloud_credentials()
    server = MotoS3()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGcs]:
    """fake-gcs-server's GCS API on loopback for this test session."""
    environment_without_cloud_credentials()
    server = FakeGcs()
    yield server
    server.stop()


@pytest.fixture(params=["s3", "gcs"])
def bucket(request: pytest.FixtureRequest) -> Bucket:
    """A new, empty bucket on the S3 API and on the GCS API (the test runs once for each)."""
    server: ObjectStoreServer = request.getfixturevalue(
        "moto_s3" if request.param == "s3" else "fake_gcs"
    )
    return server.bucket()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty index database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'storage' / 'index.sqlite'}"
    admin: str = request.getfixturevalue("postgres")
    return create_database(admin)


def make_settings(root: Path, db_url: str = "", **dimse: object) -> Settings:
    """Settings for a throwaway archive under ``root`` on free ports, with its own key."""
    key = root / "deid.key"
    if not key.exists():
        key.write_text(secrets.token_hex(32) + "\n")
        key.chmod(0o600)
    return Settings(
        storage=StorageSettings(root=root / "storage"),
        database=DatabaseSettings(url=db_url),
        deid=DeidSettings(key_file=key),
        dimse=replace(DimseSettings(port=free_port(), peers=TEST_PEERS), **dimse),  # type: ignore[arg-type]
        http=HttpSettings(port=free_port()),
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for an archive on SQLite under ``tmp_path``."""
    return make_settings(tmp_path)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    """Open services (SQLite) for in-process tests of the core."""
    svc = Services.create(settings)
    yield svc
    svc.close()


@pytest.fixture
def any_db_services(tmp_path: Path, db_url: str) -> Iterator[Services]:
    """Open services on SQLite and on PostgreSQL (the test runs once per backend)."""
    svc = Services.create(make_settings(tmp_path, db_url))
    yield svc
    svc.close()


def toml_value(value: object) -> str:
    """A TOML value (strings, numbers, booleans, inline tables) for a config file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def write_config(settings: Settings, path: Path, extra_http: str = "") -> Path:
    """Write ``settings`` as a config.toml a server process can read."""
    peers = "\n".join(
        f'[[dimse.peers]]\nae_title = "{p.ae_title}"\n'
        + (f'host = "{p.host}"\n' if p.host else "")
        + (f"port = {p.port}\n" if p.port else "")
        + f"deidentify = {'true' if p.deidentify else 'false'}\n"
        + f"patient_id_is_nhs_number = {'true' if p.patient_id_is_nhs_number else 'false'}\n"
        for p in settings.dimse.peers
    )
    text = f"""
[storage]
root = "{settings.storage.root}"
min_free_bytes = {settings.storage.min_free_bytes}
max_frame_bytes = {settings.storage.max_frame_bytes}
url = "{settings.storage.url}"
options = {toml_value(settings.storage.options)}
[database]
url = "{settings.database.url}"
[dimse]
ae_title = "{settings.dimse.ae_title}"
host = "{settings.dimse.host}"
port = {settings.dimse.port}
max_associations = {settings.dimse.max_associations}
request_timeout = {settings.dimse.request_timeout}
max_pending_per_address = {settings.dimse.max_pending_per_address}
max_pending_connections = {settings.dimse.max_pending_connections}
processes = {settings.dimse.processes}
acse_timeout = {settings.dimse.acse_timeout}
dimse_timeout = {settings.dimse.dimse_timeout}
network_timeout = {settings.dimse.network_timeout}
max_pdu_size = {settings.dimse.max_pdu_size}
{peers}
[http]
host = "{settings.http.host}"
port = {settings.http.port}
cors_origins = [{", ".join(f'"{o}"' for o in settings.http.cors_origins)}]
trust_proxy_headers = {str(settings.http.trust_proxy_headers).lower()}
stow_deidentify = {str(settings.http.stow_deidentify).lower()}
trusted_proxies = {settings.http.trusted_proxies}
public_url = "{settings.http.public_url}"
workers = {settings.http.workers}
threads = {settings.http.threads}
timeout = {settings.http.timeout}
header_timeout = {settings.http.header_timeout}
keepalive = {settings.http.keepalive}
max_client_requests = {settings.http.max_client_requests}
{extra_http}
[retrieve]
max_concurrent_decodes = {settings.retrieve.max_concurrent_decodes}
decode_wait_seconds = {settings.retrieve.decode_wait_seconds!r}
decode_memory_mib = {settings.retrieve.decode_memory_mib}
[auth]
mode = "{settings.auth.mode}"
cache_seconds = {settings.auth.cache_seconds}
[ui]
ohif_url = "{settings.ui.ohif_url}"
"""
    text += "[deid]\n"
    deid = settings.deid
    text += (f"quarantine_retention_days = {deid.quarantine_retention_days!r}\n"
             f"spool_max_age_seconds = {deid.spool_max_age_seconds!r}\n"
             f"residue_sweep_seconds = {deid.residue_sweep_seconds!r}\n")
    if settings.deid.key_file:
        text += f'key_file = "{settings.deid.key_file}"\n'
    if settings.deid.identity_db:
        text += f'identity_db = "{settings.deid.identity_db}"\n'
    if settings.deid.identity_url:
        text += f'identity_url = "{settings.deid.identity_url}"\n'
    for allow in settings.deid.burned_in_allow:
        text += (f'[[deid.burned_in_allow]]\nsop_class_uid = "{allow.sop_class_uid}"\n'
                 f'manufacturer = "{allow.manufacturer}"\n')
    path.write_text(text)
    return path


def run_cli(
    settings: Settings, workdir: Path, *args: str, timeout: float = 280
) -> subprocess.CompletedProcess[str]:
    """Run ``omipacs --config <workdir>/cli.toml ARGS`` for ``settings`` to completion."""
    config = write_config(settings, workdir / "cli.toml")
    return subprocess.run(
        [sys.executable, "-m", "omipacs", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class ServerProcess:
    """An ``omipacs serve`` process on real sockets."""

    settings: Settings
    config: Path
    process: subprocess.Popen[str]
    log: list[str]

    @property
    def dimse_port(self) -> int:
        return self.settings.dimse.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http.port}{self.settings.http.base_path}"

    wrapped: bool = False
    """The process is a wrapper (strace) whose child is the server."""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            if self.wrapped:
                for pid in child_pids(self.process.pid):
                    os.kill(pid, sig)
            else:
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (read from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # The parent pid is the second field after the parenthesised command name.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def start_server(
    settings: Settings,
    workdir: Path,
    *args: str,
    wrapper: tuple[str, ...] = (),
    extra_http: str = "",
) -> ServerProcess:
    """Start ``omipacs serve`` and wait until it says READY.

    ``wrapper`` runs the server under another program (``strace -f ...``);
    ``extra_http`` is added to the config's ``[http]`` table.
    """
    config = write_config(settings, workdir / "config.toml", extra_http)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("OMIPACS_CONFIG", None)
    proc = subprocess.Popen(
        [*wrapper, sys.executable, "-m", "omipacs", "--config", str(config), "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=workdir,
    )
    log: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            if line.strip() == "READY":
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.time() + 60
    while not ready.wait(0.1):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError("server did not start:\n" + "".join(log))
    return ServerProcess(settings, config, proc, log, wrapped=bool(wrapper))


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    """A running archive (SQLite) with DIMSE and DICOMweb."""
    srv = start_server(settings, tmp_path)
    yield srv
    srv.stop()
