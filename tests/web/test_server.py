"""The HTTP server process: N gunicorn workers, HTTPS by its own certificate."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from omipacs.config import Settings
from omipacs.errors import ConfigurationError
from omipacs.web.server import check_exposure
from tests.conftest import child_pids, start_server

pytestmark = pytest.mark.slow


def test_http_workers_option_forks_that_many_worker_processes(
    settings: Settings, tmp_path: Path
) -> None:
    server = start_server(settings, tmp_path, "--http-workers", "3")
    try:
        (arbiter,) = child_pids(server.process.pid)
        assert len(child_pids(arbiter)) == 3
        for _ in range(6):
            assert requests.get(f"{server.base_url}/studies", timeout=10).status_code == 200
    finally:
        server.stop()
    assert server.process.returncode == 0


def test_https_with_the_servers_own_certificate(settings: Settings, tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "openssl makes the test certificate"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    config_extra = f'tls_cert = "{cert}"\ntls_key = "{key}"\n'
    http = dataclasses.replace(settings.http, tls_cert=cert, tls_key=key)
    server = start_server(
        dataclasses.replace(settings, http=http), tmp_path, extra_http=config_extra
    )
    try:
        url = f"https://127.0.0.1:{http.port}{http.base_path}/studies"
        assert requests.get(url, timeout=10, verify=str(cert)).status_code == 200
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url.replace("https:", "http:"), timeout=10)
    finally:
        server.stop()


def test_a_certificate_without_its_key_is_refused(settings: Settings, tmp_path: Path) -> None:
    http = dataclasses.replace(settings.http, tls_cert=tmp_path / "cert.pem")
    with pytest.raises(ConfigurationError, match="together"):
        check_exposure(dataclasses.replace(settings, http=http))
