"""The OHIF v3 viewer, in headless Chromium, against a live omipacs server with demo data.

Needs Chromium, Node.js and the viewer build: ``bash tests/e2e/ohif/setup.sh``. Missing
tooling fails the test (it never skips), so a CI that selects ``-m e2e`` must install it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, make_settings, start_server, write_config
from tests.e2e.ohif_check import SETUP_HINT, missing_tooling, run_check

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An ``omipacs serve`` process over a demo archive of two clients."""
    missing = missing_tooling()
    if missing:
        pytest.fail("OHIF end-to-end tooling missing: " + "; ".join(missing) + f"; {SETUP_HINT}")
    root = tmp_path_factory.mktemp("ohif-archive")
    settings = make_settings(root)
    config = write_config(settings, root / "config.toml")
    subprocess.run(
        [sys.executable, "-m", "omipacs", "--config", str(config), "demo", "--clients", "2"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    server = start_server(settings, root)
    yield server
    server.stop()


@pytest.mark.parametrize("same_origin", [False, True], ids=["cross-origin", "reverse-proxy"])
def test_ohif_lists_and_renders_demo_studies(
    demo_server: ServerProcess, tmp_path: Path, same_origin: bool
) -> None:
    result = run_check(demo_server.base_url, tmp_path / "ohif", same_origin=same_origin)
    assert result.ok, result.report() + "\nserver log:\n" + "".join(demo_server.log[-40:])
    routes = {(g["method"], g["route"].split("?")[0]) for g in result.profile}
    assert {
        ("GET", "/studies"),
        ("GET", "/studies/{study}/series"),
        ("GET", "/studies/{study}/series/{series}/metadata"),
        ("GET", "/studies/{study}/series/{series}/instances/{instance}/frames/{n}"),
    } <= routes, result.report()
    assert not result.server_errors, result.report()
