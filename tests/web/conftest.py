"""An in-process Flask test client over real services (SQLite, files)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from omipacs.services import Services
from omipacs.web.app import create_app


@pytest.fixture
def web(services: Services) -> FlaskClient:
    """A test client for the DICOMweb app of ``services``."""
    return create_app(services).test_client()
