"""The ``e2e`` marker: tests that drive a real browser against a live server."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: drives a real viewer in headless Chromium (bash tests/e2e/ohif/setup.sh)"
    )
