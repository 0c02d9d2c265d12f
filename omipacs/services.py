"""The archive's long-lived parts, built once per process and shared by every door.

Web views, DIMSE handlers and CLI commands receive a :class:`Services` and open their
own sessions from it; nothing is taken from a global.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from omipacs.access.audit import AuditLog
from omipacs.blobs.base import BlobStore
from omipacs.blobs.filesystem import FilesystemBlobStore
from omipacs.blobs.spool import Spool
from omipacs.config import Settings
from omipacs.dicom.pixels import configure_decodes
from omipacs.filemodes import private_dir
from omipacs.index import db
from omipacs.ingest.pipeline import HeaderCleaner, IngestPipeline, QuarantineSink

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Engine, sessions, blob store and the ingest pipeline of one archive."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    write_sessions: sessionmaker[Session]
    blobs: BlobStore
    spool: Spool
    pipeline: IngestPipeline
    audit: AuditLog | None = None
    """The audit trail (None only when ``[audit] enabled = false``: see :func:`open_audit`)."""
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        migrate: bool = True,
        cleaner: HeaderCleaner | None = None,
        quarantine: QuarantineSink | None = None,
    ) -> Services:
        """Open (and by default migrate) the index and the storage of ``settings``."""
        root = Path(settings.storage.root)
        if not root.exists():
            private_dir(root)
        engine = db.make_engine(
            settings.database_url,
            echo=settings.database.echo,
            pool_size=settings.database.pool_size,
        )
        if migrate:
            db.upgrade(engine)
        configure_decodes(
            settings.retrieve.max_concurrent_decodes,
            settings.retrieve.decode_wait_seconds,
            settings.retrieve.decode_memory_mib << 20,
        )
        blobs = make_blob_store(settings)
        spool = Spool.claim(root)
        write_sessions = db.make_sessionmaker(engine, write=True)
        pipeline = IngestPipeline(
            blobs=blobs,
            spool=spool,
            write_sessions=write_sessions,
            max_instance_bytes=settings.storage.max_instance_bytes,
            max_frame_bytes=settings.storage.max_frame_bytes,
            min_free_bytes=settings.storage.min_free_bytes,
            presync=settings.storage.fsync and not settings.storage.url,
            cleaner=cleaner,
            quarantine=quarantine,
        )
        audit = open_audit(settings, write_sessions)
        return cls(
            settings,
            engine,
            db.make_sessionmaker(engine),
            write_sessions,
            blobs,
            spool,
            pipeline,
            audit,
        )

    def close(self) -> None:
        """Write the queued audit events, release database connections and the spool."""
        self.spool.release()
        if self.audit is not None:
            self.audit.close()
            self.audit = None
        self.engine.dispose()


def open_audit(settings: Settings, write_sessions: sessionmaker[Session]) -> AuditLog | None:
    """The audit trail, or None (said loudly) when ``[audit] enabled = false``."""
    if not settings.audit.enabled:
        log.warning(
            "AUDIT TRAIL DISABLED ([audit] enabled = false): no access decision or data "
            "access of this process is recorded, in the index or in a file"
        )
        return None
    forward = None
    if settings.audit.syslog:
        from omipacs.access.syslog import SyslogSender

        forward = SyslogSender(settings.audit.syslog, settings.dimse.ae_title).send
    return AuditLog(
        write_sessions,
        settings.audit.file or Path(settings.storage.root) / "audit" / "audit.jsonl",
        batch_seconds=settings.audit.batch_seconds,
        forward=forward,
    )


def make_blob_store(settings: Settings) -> BlobStore:
    """The blob store the settings name (files under the storage root by default)."""
    if settings.storage.url:
        from omipacs.blobs.fsspec_store import FsspecBlobStore

        storage = settings.storage
        store: BlobStore = FsspecBlobStore(
            storage.url,
            Spool(storage.root).dir,
            storage.options,
            upload_block_bytes=storage.upload_block_bytes,
            read_block_bytes=storage.read_block_bytes,
        )
        return store
    return FilesystemBlobStore(settings.storage.root, fsync=settings.storage.fsync)
