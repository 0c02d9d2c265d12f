"""Fixtures for the ingest tests that talk to a running server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from omipacs.services import Services
from tests.conftest import ServerProcess


@pytest.fixture
def archive(server: ServerProcess) -> Iterator[Services]:
    """The running server's index and storage, opened alongside it for checks."""
    svc = Services.create(server.settings, migrate=False)
    yield svc
    svc.close()
