"""The brochure's summary tables, from the live index.

Three tables count cases (clients) by outcome: those with 2D images (FFDM), those with
3D images (Breast Tomosynthesis) and those with expert marks, with the brochure's
labels ("Normal", "Benign", "Malignant", "Interval Cancers", "Unknown"; the marked
interval cancers are "Prior to Interval Cancer", since the marks of an interval cancer
are on the screen before it).

The counts come from ``clinical_tally`` (:mod:`omipacs.clinical.tally`), corrected by
the instances stored since the last :func:`~omipacs.clinical.imaging.sync_imaging`,
so they are exact at any moment while the cost stays independent of the archive's
size. Nothing is written.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Final

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from omipacs.clinical.codes import CASE_OUTCOME_ORDER, CaseOutcome
from omipacs.clinical.imaging import pending_imaging
from omipacs.clinical.models import Client
from omipacs.clinical.tally import ClientKey, read_tally

OUTCOME_LABELS: Final = {
    CaseOutcome.NORMAL: "Normal",
    CaseOutcome.BENIGN: "Benign",
    CaseOutcome.MALIGNANT: "Malignant",
    CaseOutcome.INTERVAL_CANCER: "Interval Cancers",
    CaseOutcome.UNKNOWN: "Unknown",
}
MARKED_LABELS: Final = {
    CaseOutcome.NORMAL: "Normal Marked",
    CaseOutcome.BENIGN: "Benign Marked",
    CaseOutcome.MALIGNANT: "Malignant Marked",
    CaseOutcome.INTERVAL_CANCER: "Prior to Interval Cancer Marked",
    CaseOutcome.UNKNOWN: "Unknown Marked",
}
_CHUNK: Final = 500


@dataclass(frozen=True)
class StatsTable:
    """One table: cases per outcome."""

    name: str
    """``2d``, ``3d`` or ``marked``."""
    title: str
    counts: dict[CaseOutcome, int]
    labels: dict[CaseOutcome, str]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def rows(self) -> list[dict[str, Any]]:
        """One row per outcome, in the brochure's order."""
        return [
            {"outcome": o.value, "label": self.labels[o], "cases": self.counts.get(o, 0)}
            for o in CASE_OUTCOME_ORDER
        ]


@dataclass(frozen=True)
class StatsTables:
    """The three tables, and the number of clients known at all."""

    two_d: StatsTable
    three_d: StatsTable
    marked: StatsTable
    clients: int

    @property
    def tables(self) -> tuple[StatsTable, StatsTable, StatsTable]:
        return (self.two_d, self.three_d, self.marked)

    def to_rows(self) -> list[dict[str, Any]]:
        """Flat rows (``table``, ``outcome``, ``label``, ``cases``) for CSV or a grid."""
        return [{"table": t.name, **row} for t in self.tables for row in t.rows()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: each table's title, rows and total."""
        return {
            "clients": self.clients,
            "tables": {
                t.name: {"title": t.title, "rows": t.rows(), "total": t.total}
                for t in self.tables
            },
        }

    def to_csv(self) -> str:
        """The flat rows as CSV text with a header line."""
        out = io.StringIO()
        writer = csv.DictWriter(out, ["table", "outcome", "label", "cases"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.to_rows())
        return out.getvalue()


def client_counts(session: Session) -> Counter[ClientKey]:
    """Clients per key right now: the tally plus instances not yet synced."""
    watermark, tally = read_tally(session)
    counts: Counter[ClientKey] = Counter(tally)
    pending = pending_imaging(session, watermark)
    current: dict[str, ClientKey] = {}
    ids = [p.client_id for p in pending]
    for start in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(Client.client_id, Client.outcome, Client.has_2d, Client.has_3d,
                   Client.is_marked)
            .where(Client.client_id.in_(ids[start : start + _CHUNK]))
        ).all()
        for cid, outcome, two, three, marked in rows:
            current[cid] = ClientKey(outcome, bool(two), bool(three), bool(marked))
    for p in pending:
        old = current.get(p.client_id)
        if old is None:
            counts[ClientKey(CaseOutcome.UNKNOWN.value, p.has_2d, p.has_3d, False)] += 1
            continue
        new = replace(old, has_2d=old.has_2d or p.has_2d, has_3d=old.has_3d or p.has_3d)
        if new != old:
            counts[old] -= 1
            counts[new] += 1
    return counts


def member_counts(session: Session, clients: ColumnElement[bool]) -> Counter[ClientKey]:
    """Clients per key among those ``clients`` (a condition on ``Client.client_id``)
    selects: a licence's cohort members, counted from their own rows."""
    rows = session.execute(
        select(Client.outcome, Client.has_2d, Client.has_3d, Client.is_marked, func.count())
        .where(clients)
        .group_by(Client.outcome, Client.has_2d, Client.has_3d, Client.is_marked)
    ).all()
    return Counter(
        {ClientKey(o, bool(two), bool(three), bool(m)): int(n) for o, two, three, m, n in rows}
    )


def stats(
    session: Session,
    *,
    clients: ColumnElement[bool] | None = None,
    tables: frozenset[str] = frozenset({"2d", "3d", "marked"}),
) -> StatsTables:
    """The summary tables of the archive as it is now (read-only).

    ``clients`` limits them to some clients (a licence's members); a table not in
    ``tables`` (a data type the caller's licence lacks) is left empty.
    """
    counts = client_counts(session) if clients is None else member_counts(session, clients)
    two: Counter[CaseOutcome] = Counter()
    three: Counter[CaseOutcome] = Counter()
    marked: Counter[CaseOutcome] = Counter()
    for key, n in counts.items():
        outcome = CaseOutcome(key.outcome)
        if key.has_2d and "2d" in tables:
            two[outcome] += n
        if key.has_3d and "3d" in tables:
            three[outcome] += n
        if key.is_marked and "marked" in tables:
            marked[outcome] += n
    return StatsTables(
        two_d=StatsTable("2d", "2D images", dict(two), dict(OUTCOME_LABELS)),
        three_d=StatsTable("3d", "3D images", dict(three), dict(OUTCOME_LABELS)),
        marked=StatsTable("marked", "Marked cases", dict(marked), dict(MARKED_LABELS)),
        clients=sum(counts.values()),
    )
