"""``omipacs conformance`` against omipacs itself, over real sockets, both doors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from omipacs.config import Peer
from tests.conftest import TEST_PEERS, make_settings, start_server
from tests.pg import free_port

pytestmark = pytest.mark.slow


def test_conformance_self_test_passes_against_omipacs(tmp_path: Path) -> None:
    move_port = free_port()
    peers = (*TEST_PEERS, Peer("OMIPACSCHECK", host="127.0.0.1", port=move_port))
    server = start_server(make_settings(tmp_path, peers=peers), tmp_path)
    try:
        run = subprocess.run(
            [
                sys.executable, "-m", "omipacs", "conformance", server.base_url,
                "--dimse", f"127.0.0.1:{server.dimse_port}:OMIPACS",
                "--move-port", str(move_port), "--width", "160",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
    finally:
        server.stop()
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 failed" in run.stdout
    # omipacs offers everything the checks ask for except re-encoding frames as JPEG.
    assert "30 passed, 0 failed, 1 unsupported" in run.stdout
    assert "wado-frames-jpeg" in run.stdout


def test_conformance_reports_an_unreachable_server() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "omipacs", "conformance", f"http://127.0.0.1:{free_port()}/x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert "stow-store" in run.stdout and "failed" in run.stdout


def test_conformance_with_a_bearer_token(tmp_path: Path) -> None:
    # An archive with [auth] mode = "token": the self-test sends the token it is given
    # (read from an environment variable, never from the command line).
    from tests.web.access_fixture import build

    for archive in build(tmp_path, "", "sqlite"):
        url = f"{archive.base}/dicom-web"
        command = [sys.executable, "-m", "omipacs", "conformance", url, "--width", "160"]
        env = {**os.environ, "OMIPACS_CHECK_TOKEN": archive.tokens["admin"]}
        with_token = subprocess.run(
            [*command, "--token-env", "OMIPACS_CHECK_TOKEN"],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        without = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert with_token.returncode == 0, with_token.stdout + with_token.stderr
        assert "0 failed" in with_token.stdout
        assert without.returncode == 1 and "HTTP 401" in without.stdout
