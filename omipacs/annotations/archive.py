"""The parts of an archive that importing and indexing marks use.

:class:`omipacs.services.Services` has them all; taking this protocol instead of
``Services`` keeps the marks below the composition of the whole archive (which wires in
access control and audit, and those read cohorts, which read marks).
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from omipacs.blobs.base import BlobStore
from omipacs.blobs.spool import Spool
from omipacs.ingest.pipeline import IngestPipeline


class MarkArchive(Protocol):
    """Sessions, blobs, the spool and the one ingest pipeline of an archive."""

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def write_sessions(self) -> sessionmaker[Session]: ...

    @property
    def blobs(self) -> BlobStore: ...

    @property
    def spool(self) -> Spool: ...

    @property
    def pipeline(self) -> IngestPipeline: ...

    @property
    def extras(self) -> dict[str, object]: ...
