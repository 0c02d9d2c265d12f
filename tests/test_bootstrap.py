"""Which de-identification key an archive opens with: the configured one, or a demo key
only for an archive ``omipacs demo`` created with it."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
import requests

from omipacs.bootstrap import DEMO_SETTING, demo_key_path
from omipacs.config import Settings
from omipacs.deid.keys import create_demo_key
from omipacs.demo import factory
from omipacs.index.models import Setting
from omipacs.services import Services
from tests.conftest import run_cli, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMIPACS_DEID_KEY", raising=False)


def _said(result: subprocess.CompletedProcess[str]) -> str:
    """stderr with the console's line wrapping undone."""
    return " ".join(result.stderr.split())


def _keyless(settings: Settings) -> Settings:
    return dataclasses.replace(settings, deid=dataclasses.replace(settings.deid, key_file=None))


def test_demo_then_serve_works_without_a_configured_key(
    settings: Settings, tmp_path: Path
) -> None:
    keyless = _keyless(settings)
    demo = run_cli(keyless, tmp_path, "demo", "--clients", "1")
    assert demo.returncode == 0, demo.stderr
    assert demo_key_path(keyless).exists()
    services = Services.create(keyless, migrate=False)
    with services.sessions() as session:
        assert session.get(Setting, DEMO_SETTING) is not None
    services.close()
    server = start_server(keyless, tmp_path)
    try:
        studies = requests.get(f"{server.base_url}/studies", timeout=10).json()
        assert studies
        assert any("DEMO" in line for line in server.log)  # said loudly
    finally:
        server.stop()


def test_a_real_archive_never_uses_a_demo_key_in_its_root(
    settings: Settings, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    factory.save(factory.make_mammo(rows=32, columns=32), src / "a.dcm")
    assert run_cli(settings, tmp_path, "import", str(src)).returncode == 0
    # The configured key goes missing; a demo key lies in the storage root.
    create_demo_key(demo_key_path(settings))
    result = run_cli(_keyless(settings), tmp_path, "serve")
    assert result.returncode == 2, result.stderr
    assert "not created by `omipacs demo`" in _said(result)
    assert "READY" not in result.stdout
    # `omipacs demo` does not turn it into a demo archive either.
    demo = run_cli(_keyless(settings), tmp_path, "demo", "--clients", "1")
    assert demo.returncode == 2 and "not loaded by `omipacs demo`" in _said(demo)


def test_a_configured_key_that_is_missing_is_never_replaced_by_the_demo_key(
    settings: Settings, tmp_path: Path
) -> None:
    keyless = _keyless(settings)
    assert run_cli(keyless, tmp_path, "demo", "--clients", "1").returncode == 0
    missing = dataclasses.replace(
        settings, deid=dataclasses.replace(settings.deid, key_file=tmp_path / "gone.key")
    )
    result = run_cli(missing, tmp_path, "serve")
    assert result.returncode == 2
    assert "gone.key not found" in _said(result)


def test_a_demo_archive_refuses_another_demo_key(settings: Settings, tmp_path: Path) -> None:
    keyless = _keyless(settings)
    assert run_cli(keyless, tmp_path, "demo", "--clients", "1").returncode == 0
    demo_key_path(keyless).unlink()
    create_demo_key(demo_key_path(keyless))
    result = run_cli(keyless, tmp_path, "serve")
    assert result.returncode == 2
    assert "not the one `omipacs demo` created this archive with" in _said(result)
