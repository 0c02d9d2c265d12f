"""Client rows and the running count of clients per (outcome, 2D, 3D, marked).

The brochure's tables count cases by outcome among clients with 2D images, with 3D
images, and with marks. Counting 470k clients on every request would take time growing
with the archive, so every change of one of those four facts of a client goes through
:func:`change_client`, which moves the client from one ``clinical_tally`` row to
another in the same transaction. Reading the tables is then reading at most 40 rows
(see :mod:`omipacs.clinical.stats`).

The invariant is that ``clinical_tally`` holds, per key, the number of ``client`` rows
with that key. Code that creates clients or changes those columns must use
:func:`ensure_client`, :func:`change_client` or :func:`set_marked`;
:func:`rebuild_tally` recomputes the table from the clients (repair, or after bulk
loads that bypass these functions).

Concurrency: the client row is locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite
writers hold the database lock) before its old key is read, and tally rows are updated
with ``clients = clients + n`` in key order, so concurrent imports never lose a count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, delete, func, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from omipacs.clinical.codes import CaseOutcome
from omipacs.clinical.models import Client, ClinicalState, ClinicalTally

WATERMARK_KEY = "instance_pk"
"""``clinical_state`` key: every instance with a pk up to this one is folded into clients."""


@dataclass(frozen=True, order=True)
class ClientKey:
    """The facts of a client that the brochure's tables count by."""

    outcome: str
    has_2d: bool
    has_3d: bool
    is_marked: bool


NEW_CLIENT_KEY = ClientKey(CaseOutcome.UNKNOWN.value, False, False, False)


def key_of(client: Client) -> ClientKey:
    """The client's current key."""
    return ClientKey(client.outcome, bool(client.has_2d), bool(client.has_3d),
                     bool(client.is_marked))


def dialect_insert(session: Session, table: Any) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the session's database."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the clinical layer does not support {dialect}")


def add_to_tally(session: Session, deltas: Mapping[ClientKey, int]) -> None:
    """Add ``deltas`` to the tally rows (upserts, in key order to avoid deadlocks)."""
    for key in sorted(k for k, n in deltas.items() if n):
        stmt = dialect_insert(session, ClinicalTally.__table__).values(
            outcome=key.outcome, has_2d=key.has_2d, has_3d=key.has_3d,
            is_marked=key.is_marked, clients=deltas[key],
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["outcome", "has_2d", "has_3d", "is_marked"],
            set_={"clients": ClinicalTally.clients + stmt.excluded.clients},
        )
        session.execute(stmt)


def ensure_client(session: Session, client_id: str, *, patient_pk: int | None = None) -> Client:
    """The client row for ``client_id``, created (and counted) if missing, and locked.

    Creation is ``INSERT .. ON CONFLICT DO NOTHING``, so an importer and the imaging
    sync creating the same client at once both end up with the one row.
    """
    stmt = dialect_insert(session, Client.__table__).values(client_id=client_id)
    inserted = session.execute(
        stmt.on_conflict_do_nothing(index_elements=["client_id"]).returning(Client.pk)
    ).first()
    if inserted is not None:
        add_to_tally(session, {NEW_CLIENT_KEY: 1})
    client = session.scalars(
        select(Client).where(Client.client_id == client_id).with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if patient_pk is not None and client.patient_pk is None:
        client.patient_pk = patient_pk
    return client


def change_client(
    session: Session,
    client: Client,
    *,
    outcome: str | None = None,
    has_2d: bool | None = None,
    has_3d: bool | None = None,
    is_marked: bool | None = None,
) -> bool:
    """Set the given facts of a (locked) client, moving it between tally rows.

    Returns True when the key changed.
    """
    old = key_of(client)
    if outcome is not None:
        client.outcome = CaseOutcome(outcome).value
    if has_2d is not None:
        client.has_2d = has_2d
    if has_3d is not None:
        client.has_3d = has_3d
    if is_marked is not None:
        client.is_marked = is_marked
    new = key_of(client)
    if new == old:
        return False
    session.flush()
    add_to_tally(session, {old: -1, new: 1})
    return True


def set_marked(session: Session, client_id: str, marked: bool = True) -> None:
    """Record that a client has (or no longer has) expert marks.

    This is the hook for the marks table: whatever stores marks calls it when a
    client's first mark is added or her last one removed, in the same transaction.
    """
    change_client(session, ensure_client(session, client_id), is_marked=marked)


def read_tally(session: Session) -> tuple[int, dict[ClientKey, int]]:
    """The imaging watermark and the tally, read in one statement (one snapshot)."""
    state = (
        select(func.coalesce(func.max(ClinicalState.value), 0).label("value"))
        .where(ClinicalState.key == WATERMARK_KEY)
        .subquery()
    )
    rows = session.execute(
        select(
            state.c.value,
            ClinicalTally.outcome,
            ClinicalTally.has_2d,
            ClinicalTally.has_3d,
            ClinicalTally.is_marked,
            ClinicalTally.clients,
        ).select_from(state).outerjoin(ClinicalTally, literal(1, Integer) == 1)
    ).all()
    watermark = int(rows[0][0]) if rows else 0
    counts: dict[ClientKey, int] = {}
    for _, outcome, has_2d, has_3d, marked, clients in rows:
        if outcome is not None and clients:
            counts[ClientKey(outcome, bool(has_2d), bool(has_3d), bool(marked))] = int(clients)
    return watermark, counts


def rebuild_tally(session: Session) -> None:
    """Recount the tally from the client rows (set-based)."""
    session.execute(delete(ClinicalTally))
    grouped = select(
        Client.outcome, Client.has_2d, Client.has_3d, Client.is_marked, func.count()
    ).group_by(Client.outcome, Client.has_2d, Client.has_3d, Client.is_marked)
    session.execute(
        insert(ClinicalTally).from_select(
            ["outcome", "has_2d", "has_3d", "is_marked", "clients"], grouped
        )
    )


def count_clients(session: Session) -> dict[ClientKey, int]:
    """The tally recomputed from the client rows, without writing (a check)."""
    rows = session.execute(
        select(Client.outcome, Client.has_2d, Client.has_3d, Client.is_marked, func.count())
        .group_by(Client.outcome, Client.has_2d, Client.has_3d, Client.is_marked)
    ).all()
    return {ClientKey(o, bool(a), bool(b), bool(m)): int(n) for o, a, b, m, n in rows}


def nonzero(counts: Iterable[tuple[ClientKey, int]]) -> dict[ClientKey, int]:
    """Drop zero rows (the tally keeps rows that went back to zero)."""
    return {k: n for k, n in counts if n}
