"""Archives for the marks tests: the real pipeline, with the SR mark indexer wired in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from omipacs.bootstrap import open_archive
from omipacs.config import Settings
from omipacs.services import Services


@pytest.fixture
def archive(settings: Settings) -> Iterator[Services]:
    """An archive on SQLite opened as the server opens it (keys, quarantine, indexer)."""
    svc = open_archive(settings)
    yield svc
    svc.close()


@pytest.fixture
def viewer_archive(settings: Settings) -> Iterator[Services]:
    """An archive whose STOW-RS stores viewers' objects unchanged (``stow_deidentify``
    false): they are made against its own pseudonymous UIDs."""
    svc = open_archive(replace(settings, http=replace(settings.http, stow_deidentify=False)))
    yield svc
    svc.close()
