"""Keys and archives for the clinical tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omipacs.deid.engine import Deidentifier
from omipacs.deid.keys import DeidKeys
from omipacs.deid.pseudonyms import client_pseudonym, episode_pseudonym
from omipacs.services import Services
from tests.conftest import make_settings

KEYS = DeidKeys.from_secret(bytes(range(1, 33)))


def episode_id(raw: str, nhs: str = "9990000018") -> str:
    """The pseudonym an NBSS episode ID of the client with NHS number ``nhs`` gets."""
    return episode_pseudonym(KEYS, client_pseudonym(KEYS, nhs, "", "").client_id, raw)
"""The archive key of every clinical test (a fixed test secret)."""


@pytest.fixture
def deid_services(tmp_path: Path) -> Iterator[Services]:
    """An archive on SQLite that de-identifies what it ingests with :data:`KEYS`."""
    svc = Services.create(make_settings(tmp_path), cleaner=Deidentifier(KEYS, None))
    yield svc
    svc.close()
