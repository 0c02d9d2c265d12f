"""The change feed: every change to the index, numbered in the order it was committed.

Every writer of the index calls :func:`record_change` inside the transaction that makes
the change (an instance stored by the one ingest pipeline, an instance deleted, a
clinical record changed, marks changed, a client withdrawn), so an event exists exactly
when its change does. Consumers (incremental releases, ``GET /api/v1/changes``,
``omipacs changes``) read :func:`changes_since` the last sequence number they saw.

Order. A sequence number is handed out when the event row is inserted, but transactions
commit in their own order: on PostgreSQL a reader could see event 12 committed while 11
is still in flight, move its cursor to 12 and never see 11. :func:`record_change`
therefore takes a transaction-scoped advisory lock before inserting, so events are
numbered and committed one transaction at a time (it is the last statement of a writing
transaction, so the lock is held only for the commit). SQLite has a single writer and
needs nothing more.

A withdrawn client's events are deleted (:mod:`omipacs.withdrawal.withdraw`) and one
``client-withdrawn`` event carrying only the keyed hash of her client ID is added, so the
feed never keeps her pseudonymous UIDs. Sequence numbers are never reused, so a gap in
the feed means "something here was withdrawn", never "something will appear here".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from omipacs.errors import BadRequest
from omipacs.index.models import ChangeEvent

MAX_LIMIT: Final = 10_000
"""Most events one call of :func:`changes_since` returns."""

_FEED_LOCK: Final = 0x6F6D6970  # "omip": the advisory lock that orders the feed


class ChangeKind(StrEnum):
    """What changed."""

    INSTANCE_STORED = "instance-stored"
    INSTANCE_DELETED = "instance-deleted"
    CLINICAL_CHANGED = "clinical-changed"
    MARKS_CHANGED = "marks-changed"
    CLIENT_WITHDRAWN = "client-withdrawn"


@dataclass(frozen=True)
class Change:
    """One event of the feed, as consumers see it."""

    seq: int
    at: datetime
    kind: ChangeKind
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    client_id: str | None = None
    client_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON object (time in ISO 8601, UTC; absent fields left out)."""
        doc = {k: v for k, v in asdict(self).items() if v is not None}
        doc["at"] = self.at.isoformat(timespec="milliseconds") + "Z"
        doc["kind"] = self.kind.value
        return doc


def record_change(
    session: Session,
    kind: ChangeKind | str,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    client_id: str | None = None,
    client_hash: str | None = None,
) -> int:
    """Add an event to the feed in ``session``'s transaction; returns its sequence number.

    Call it as the last write of the transaction (see the module notes on order).
    """
    kind = ChangeKind(kind)
    lock_feed(session)
    event = ChangeEvent(
        at=datetime.now(UTC).replace(tzinfo=None),
        kind=kind.value,
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        sop_instance_uid=sop_uid,
        client_id=client_id,
        client_hash=client_hash,
    )
    session.add(event)
    session.flush()
    return int(event.seq)


def parse_cursor(since: str | None, limit: str | None) -> tuple[int, int]:
    """``since`` and ``limit`` as given to the API or the CLI, checked.

    Raises
    ------
    BadRequest
        Not a decimal integer, ``since`` negative or beyond any sequence number,
        ``limit`` outside 1 to :data:`MAX_LIMIT`.
    """

    def number(name: str, text: str) -> int:
        text = text.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 18:
            raise BadRequest(f"{name} must be a non-negative integer")
        return int(text)

    start = 0 if since is None or since == "" else number("since", since)
    count = 1000 if limit is None or limit == "" else number("limit", limit)
    if not 1 <= count <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return start, count


def lock_feed(session: Session) -> None:
    """Take the feed's lock until the end of ``session``'s transaction (PostgreSQL; SQLite
    writers are serialised already). Also taken by a withdrawal writing its tombstone and
    by ingest before it checks the tombstone, so the two are ordered."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FEED_LOCK})


def changes_since(session: Session, since: int, limit: int = 1000) -> list[Change]:
    """Events with a sequence number above ``since``, oldest first, at most ``limit``."""
    if since < 0 or limit < 1:
        raise ValueError("since must be >= 0 and limit >= 1")
    rows = session.scalars(
        select(ChangeEvent)
        .where(ChangeEvent.seq > since)
        .order_by(ChangeEvent.seq)
        .limit(min(limit, MAX_LIMIT))
    )
    return [
        Change(
            seq=int(r.seq),
            at=r.at,
            kind=ChangeKind(r.kind),
            study_instance_uid=r.study_instance_uid,
            series_instance_uid=r.series_instance_uid,
            sop_instance_uid=r.sop_instance_uid,
            client_id=r.client_id,
            client_hash=r.client_hash,
        )
        for r in rows
    ]


def iter_changes(
    session: Session, since: int, upto: int | None = None, page: int = 1000
) -> Iterator[Change]:
    """Every event above ``since`` (up to ``upto`` included), oldest first, read
    ``page`` at a time: a consumer of a long feed never holds more than one page."""
    cursor = since
    while True:
        batch = changes_since(session, cursor, page)
        for change in batch:
            if upto is not None and change.seq > upto:
                return
            yield change
        if len(batch) < min(page, MAX_LIMIT):
            return
        cursor = batch[-1].seq


def current_sequence(session: Session) -> int:
    """The newest sequence number in the feed (0 when empty): a cursor for "from now on"."""
    return int(session.scalar(select(func.coalesce(func.max(ChangeEvent.seq), 0))) or 0)
