"""The audit trail: every access decision and every data access, kept twice.

Each event is appended at once to a JSON-lines file (one ``write`` with ``O_APPEND``,
so processes sharing the file never interleave lines, and a killed process loses
nothing it had written) and queued for the ``audit_event`` table, which a background
thread fills in batches. Batching keeps the cost on the request path to building a
small dict and one system call: the QIDO and WADO benchmarks measure it
(``tests/benchmarks/bench_access.py``). The table is append-only (the migration's
triggers refuse UPDATE and DELETE).

Nothing identifying is recorded: resources are the archive's pseudonymous UIDs and IDs.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from omipacs.access.models import AuditEvent, Token

log = logging.getLogger(__name__)


DOORS = ("http", "dimse", "cli", "export")
"""Where an event came in."""
OUTCOMES = ("allowed", "denied")


@dataclass(frozen=True)
class AuditRecord:
    """One event, as written to both places."""

    at: datetime
    user_email: str
    token_prefix: str
    licence_pk: int | None
    remote: str
    door: str
    """One of :data:`DOORS`."""
    action: str
    resource: str
    outcome: str
    """allowed or denied."""
    reason: str = ""
    status: int | None = None
    bytes_sent: int | None = None

    def columns(self) -> dict[str, Any]:
        """The fields as a flat dict (every value is a scalar: no deep copy needed, as
        ``dataclasses.asdict`` makes, on the request path)."""
        return {name: getattr(self, name) for name in FIELDS}

    def to_json(self) -> dict[str, Any]:
        """A JSON object (time in ISO 8601, UTC)."""
        doc = self.columns()
        doc["at"] = self.at.isoformat(timespec="milliseconds") + "Z"
        return doc


FIELDS = tuple(f.name for f in fields(AuditRecord))
"""An audit record's fields, in order (the columns of a CSV export)."""

_TABLE = AuditEvent.metadata.tables[AuditEvent.__tablename__]


class AuditLog:
    """Writes audit records to the JSON-lines file now and to the index soon after.

    On the request path an event costs a small dict, ``json.dumps`` and one ``write``;
    it is then left on a queue that nobody is woken for. The writer thread wakes every
    ``batch_seconds`` (or when :meth:`flush` or :meth:`close` asks) and inserts whatever
    has gathered in one transaction. Waking it for every event cost a context switch
    and a hand-over of the interpreter lock per request, more than the rest of the
    audit trail together.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        path: Path,
        *,
        batch_seconds: float = 0.5,
        forward: Callable[[AuditRecord], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._forward = forward
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        # deque.append and popleft are atomic: request threads never take a lock here.
        self._queue: deque[tuple[AuditRecord, int | None] | threading.Event] = deque()
        self._batch_seconds = batch_seconds
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="audit", daemon=True)
        self._thread.start()

    def record(self, event: AuditRecord, *, token_id: int | None = None) -> None:
        """Append ``event`` (and note the token's use)."""
        line = json.dumps(event.to_json(), separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode("utf-8"))
        self._queue.append((event, token_id))

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every event recorded before this call is in the index."""
        written = threading.Event()
        self._queue.append(written)  # set by the writer once everything before it is in
        self._wake.set()
        written.wait(timeout)

    def close(self) -> None:
        """Write what is queued and stop."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)
        os.close(self._fd)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._batch_seconds)
            self._wake.clear()
            stopping = self._stopping
            self._drain()
            if stopping:
                return

    def _drain(self) -> None:
        """Write what was queued when the thread woke, in batches of at most 500 events,
        in order (what arrives meanwhile waits for the next wake-up, so a busy server
        still gets few, large batches)."""
        left = len(self._queue)
        while left:
            batch: list[tuple[AuditRecord, int | None]] = []
            written: list[threading.Event] = []
            while left and len(batch) < 500:
                left -= 1
                item = self._queue.popleft()
                if isinstance(item, threading.Event):
                    written.append(item)
                else:
                    batch.append(item)
            if batch:
                self._write(batch)
            for flushed in written:
                flushed.set()

    def _write(self, batch: Sequence[tuple[AuditRecord, int | None]]) -> None:
        try:
            with self._sessions.begin() as session:
                # A Core insert of plain rows (the ORM's bulk insert costs several times
                # more per row, on the same process as the requests).
                session.execute(insert(_TABLE), [e.columns() for e, _ in batch])
                used = {t for _, t in batch if t is not None}
                if used:
                    last = max(e.at for e, _ in batch)
                    session.execute(
                        update(Token).where(Token.pk.in_(used)).values(last_used_at=last)
                    )
        except Exception:  # the JSON-lines file still has them; say so loudly
            log.exception("could not write %d audit events to the index", len(batch))
        try:
            if self._forward is not None:  # e.g. DICOM audit messages to syslog
                for event, _ in batch:
                    self._forward(event)
        except Exception:
            log.exception("could not forward audit events")


@dataclass(frozen=True)
class AuditFilter:
    """What to look for in the audit trail; None (or empty) matches anything.

    Every field is an exact match on an indexed or short column except ``resource``,
    which matches a substring (resources are UIDs, IDs and paths, never patient values).
    """

    user: str | None = None
    licence: int | None = None
    door: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    """Events strictly before this time."""
    resource: str | None = None

    def apply(self, stmt: Select[AuditEvent]) -> Select[AuditEvent]:
        """``stmt`` narrowed to the matching events."""
        if self.user:
            stmt = stmt.where(AuditEvent.user_email == self.user.strip().lower())
        if self.licence is not None:
            stmt = stmt.where(AuditEvent.licence_pk == self.licence)
        if self.door:
            stmt = stmt.where(AuditEvent.door == self.door)
        if self.action:
            stmt = stmt.where(AuditEvent.action == self.action)
        if self.outcome:
            stmt = stmt.where(AuditEvent.outcome == self.outcome)
        if self.since is not None:
            stmt = stmt.where(AuditEvent.at >= self.since)
        if self.until is not None:
            stmt = stmt.where(AuditEvent.at < self.until)
        if self.resource:
            pattern = "".join("\\" + c if c in "\\%_" else c for c in self.resource)
            stmt = stmt.where(AuditEvent.resource.like(f"%{pattern}%", escape="\\"))
        return stmt


@dataclass(frozen=True)
class AuditPage:
    """A page of events, newest first, and where the next (older) page starts."""

    events: list[tuple[int, AuditRecord]]
    """(event ID, record) pairs."""
    older: int | None
    """Pass as ``before`` for the next page; None when this is the last."""


def _record(r: AuditEvent) -> AuditRecord:
    return AuditRecord(
        at=r.at,
        user_email=r.user_email,
        token_prefix=r.token_prefix,
        licence_pk=r.licence_pk,
        remote=r.remote,
        door=r.door,
        action=r.action,
        resource=r.resource,
        outcome=r.outcome,
        reason=r.reason,
        status=r.status,
        bytes_sent=r.bytes_sent,
    )


def query_events(
    session: Session,
    *,
    user: str | None = None,
    licence: int | None = None,
    since: datetime | None = None,
    outcome: str | None = None,
    limit: int = 1000,
) -> list[AuditRecord]:
    """Events matching the filters, oldest first."""
    where = AuditFilter(user=user, licence=licence, since=since, outcome=outcome)
    stmt = where.apply(select(AuditEvent).order_by(AuditEvent.pk))
    rows: Iterable[AuditEvent] = session.scalars(stmt.limit(limit))
    return [_record(r) for r in rows]


def browse_events(
    session: Session, where: AuditFilter, *, before: int | None = None, limit: int = 100
) -> AuditPage:
    """A page of matching events, newest first: those with an ID below ``before``.

    Keyset paging on the primary key, so a page deep in a long trail costs as little
    as the first, and events appended meanwhile do not shift the pages.
    """
    limit = max(1, min(limit, 1000))
    stmt = where.apply(select(AuditEvent).order_by(AuditEvent.pk.desc()))
    if before is not None:
        stmt = stmt.where(AuditEvent.pk < before)
    rows = list(session.scalars(stmt.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage([(r.pk, _record(r)) for r in rows], rows[-1].pk if more and rows else None)
