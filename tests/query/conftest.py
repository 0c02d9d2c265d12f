"""The fixture archive of :mod:`tests.query.archive`, once per backend per test run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from omipacs.services import Services
from tests.conftest import make_settings
from tests.pg import create_database
from tests.query.archive import Archive, populate


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Archive]:
    """The fixture archive on SQLite and on PostgreSQL."""
    root = tmp_path_factory.mktemp(f"query-{request.param}")
    url = ""
    if request.param == "postgresql":
        url = create_database(request.getfixturevalue("postgres"))
    services = Services.create(make_settings(root, url))
    populate(services, root)
    yield Archive(services, request.param)
    services.close()
