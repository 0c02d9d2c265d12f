"""Assemble the archive for a process: services plus de-identification and quarantine.

The one place that decides which optional parts are wired in, so the CLI, the web
server and tests build the archive the same way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import inspect, select

from omipacs.annotations.indexer import SrMarkIndexer
from omipacs.config import Settings
from omipacs.deid.engine import Deidentifier
from omipacs.deid.identity import open_identity_map
from omipacs.deid.keys import DeidKeys, create_demo_key, load_keys
from omipacs.deid.tombstones import Tombstones
from omipacs.errors import ConfigurationError
from omipacs.index import db
from omipacs.index.models import Instance, Setting
from omipacs.ingest.quarantine import Quarantine
from omipacs.services import Services

log = logging.getLogger(__name__)

DEMO_KEY_NAME = "demo-deid.key"
DEMO_SETTING = "demo_key_id"
"""Index setting written by ``omipacs demo``: the id of the demo key it created the archive
with. Its presence is what allows a demo key in the storage root to be used at all."""


def demo_key_path(settings: Settings) -> Path:
    """Where ``omipacs demo`` keeps its generated key: inside the (demo) storage root."""
    return Path(settings.storage.root) / DEMO_KEY_NAME


def _key_configured(settings: Settings) -> bool:
    deid = settings.deid
    return deid.key_file is not None or bool(
        deid.key_env and os.environ.get(deid.key_env, "").strip()
    )


def _index_facts(settings: Settings) -> tuple[str | None, bool]:
    """(demo key id recorded by ``omipacs demo``, whether the index holds instances)."""
    engine = db.make_engine(settings.database_url)
    try:
        tables = inspect(engine)
        with engine.connect() as conn:
            recorded = (
                conn.scalar(select(Setting.value).where(Setting.key == DEMO_SETTING))
                if tables.has_table(Setting.__tablename__)
                else None
            )
            stored = tables.has_table(Instance.__tablename__) and (
                conn.scalar(select(Instance.pk).limit(1)) is not None
            )
        return recorded, bool(stored)
    finally:
        engine.dispose()


def _demo_keys(settings: Settings, *, demo: bool) -> DeidKeys | None:
    """The storage root's demo key, if this archive may use it; raise if it may not.

    ``omipacs demo`` (``demo``) may create one for an empty archive or one it created
    before; every other command may use it only on an archive ``omipacs demo`` created
    with that very key, as recorded in the index. A real archive whose key went missing
    must never fall back to a key that happens to lie in its storage root.
    """
    path = demo_key_path(settings)
    if not demo and not path.exists():
        return None
    recorded, stored = _index_facts(settings)
    if recorded is None and (stored or not demo):
        if demo:
            raise ConfigurationError(
                "this archive holds data not loaded by `omipacs demo` and no "
                "de-identification key is configured: set [deid] key_file or "
                "OMIPACS_DEID_KEY to its key"
            )
        raise ConfigurationError(
            "no de-identification key is configured ([deid] key_file or OMIPACS_DEID_KEY), "
            f"and the demo key {path} is not used: this archive was not created by "
            "`omipacs demo`"
        )
    keys = create_demo_key(path)
    if recorded is not None and recorded != keys.key_id:
        raise ConfigurationError(
            f"the demo key {path} is not the one `omipacs demo` created this archive with"
        )
    return keys


def _keys(settings: Settings, *, require_key: bool, demo: bool) -> DeidKeys | None:
    try:
        return load_keys(settings.deid)
    except ConfigurationError:
        # A configured key that cannot be loaded is an error whatever lies in the root.
        if not _key_configured(settings):
            try:
                keys = _demo_keys(settings, demo=demo)
            except ConfigurationError:
                if require_key or demo:
                    raise
                keys = None
            if keys is not None:
                return keys
        if require_key:
            raise
        return None


def _record_demo(services: Services, keys: DeidKeys) -> None:
    with services.write_sessions.begin() as session:
        session.merge(Setting(key=DEMO_SETTING, value=keys.key_id))


def open_archive(
    settings: Settings, *, require_key: bool = True, demo: bool = False, migrate: bool = True
) -> Services:
    """Open the archive described by ``settings``.

    ``require_key`` is False only for maintenance commands that never ingest (verify,
    init-db): serving or importing without a de-identification key is refused.
    ``demo`` lets ``omipacs demo`` create a demo key when none is configured, and records
    in the index that this archive was made with it (see :func:`_demo_keys`).
    ``migrate`` is False in server workers: the process that started them has already
    brought the index up to date, and N workers must not race to do it again.
    """
    cleaner = None
    keys = _keys(settings, require_key=require_key and settings.deid.enabled, demo=demo)
    if not settings.deid.enabled:
        log.warning("de-identification is DISABLED ([deid] enabled = false)")
    elif keys is not None:
        cleaner = Deidentifier(
            keys, open_identity_map(settings),
            burned_in_allow=settings.deid.burned_in_allow,
            oldest_age=settings.deid.oldest_age,
        )
    services = Services.create(
        settings, migrate=migrate, cleaner=cleaner, quarantine=Quarantine(settings.storage.root)
    )
    if demo and keys is not None and keys.demo and not _key_configured(settings):
        _record_demo(services, keys)
    # Clinical records are pseudonymised with the same keys as the images.
    services.extras["deid.keys"] = keys
    # Expert marks inside stored SRs (ours and viewers') are indexed as they arrive.
    services.pipeline.indexers.append(SrMarkIndexer(services.blobs))
    if keys is not None:
        # Withdrawn clients are refused at both checks: before de-identification
        # records anything, and in the transaction that would index the instance.
        tombstones = Tombstones(keys, services.sessions)
        services.pipeline.tombstones = tombstones
        if cleaner is not None:
            cleaner.refuse = tombstones.refuse_client
    return services
