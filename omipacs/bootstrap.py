"""Assemble the archive for a process: services plus de-identification and quarantine.

The one place that decides which optional parts are wired in, so the CLI, the web
server and tests build the archive the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omipacs.annotations.indexer import SrMarkIndexer
from omipacs.config import Settings
from omipacs.deid.engine import Deidentifier
from omipacs.deid.identity import IdentityMap, identity_path
from omipacs.deid.keys import DeidKeys, create_demo_key, load_keys
from omipacs.errors import ConfigurationError
from omipacs.ingest.quarantine import Quarantine
from omipacs.services import Services

log = logging.getLogger(__name__)

DEMO_KEY_NAME = "demo-deid.key"


def demo_key_path(settings: Settings) -> Path:
    """Where ``omipacs demo`` keeps its generated key: inside the (demo) storage root."""
    return Path(settings.storage.root) / DEMO_KEY_NAME


def _keys(settings: Settings, *, require_key: bool, demo: bool) -> DeidKeys | None:
    try:
        return load_keys(settings.deid)
    except ConfigurationError:
        demo_path = demo_key_path(settings)
        if demo or demo_path.exists():
            # The demo's own data set was de-identified with this key; keep using it so
            # `omipacs demo && omipacs serve` works out of the box (logged as a DEMO key).
            return create_demo_key(demo_path)
        if require_key:
            raise
        return None


def open_archive(settings: Settings, *, require_key: bool = True, demo: bool = False) -> Services:
    """Open the archive described by ``settings``.

    ``require_key`` is False only for maintenance commands that never ingest (verify,
    init-db): serving or importing without a de-identification key is refused.
    ``demo`` lets ``omipacs demo`` create a demo key when none is configured.
    """
    cleaner = None
    keys = _keys(settings, require_key=require_key and settings.deid.enabled, demo=demo)
    if not settings.deid.enabled:
        log.warning("de-identification is DISABLED ([deid] enabled = false)")
    elif keys is not None:
        cleaner = Deidentifier(keys, IdentityMap(identity_path(settings)))
    services = Services.create(
        settings, cleaner=cleaner, quarantine=Quarantine(settings.storage.root)
    )
    # Clinical records are pseudonymised with the same keys as the images.
    services.extras["deid.keys"] = keys
    # Expert marks inside stored SRs (ours and viewers') are indexed as they arrive.
    services.pipeline.indexers.append(SrMarkIndexer(services.blobs))
    return services
