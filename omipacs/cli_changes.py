"""``omipacs changes`` (the change feed) and ``omipacs withdraw`` (a client's opt-out).

Registered from :mod:`omipacs.cli`; thin: parse, call :mod:`omipacs.index.changes` or
:mod:`omipacs.withdrawal.withdraw`, print.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from omipacs import config
from omipacs.index import db
from omipacs.index.changes import changes_since, current_sequence, parse_cursor

console = Console(stderr=True, soft_wrap=True)


def _settings(args: argparse.Namespace) -> config.Settings:
    return config.load(Path(args.config) if args.config else None)


def cmd_changes(args: argparse.Namespace) -> int:
    """Print the change feed after ``--since`` (read-only: nothing is migrated or written)."""
    since, limit = parse_cursor(args.since, args.limit)
    settings = _settings(args)
    engine = db.make_engine(settings.database_url, read_only=True)
    try:
        with db.make_sessionmaker(engine)() as session:
            found = changes_since(session, since, limit)
            current = current_sequence(session)
    finally:
        engine.dispose()
    nxt = found[-1].seq if found else since
    if args.json:
        print(json.dumps({
            "since": since,
            "next": nxt,
            "current": current,
            "more": bool(found) and nxt < current,
            "changes": [c.to_dict() for c in found],
        }, indent=2))
        return 0
    table = Table(title=f"changes after {since} (newest {current})")
    for col in ("seq", "at", "kind", "client"):
        table.add_column(col, no_wrap=True)
    for col in ("study", "series", "instance"):
        table.add_column(col, overflow="fold")  # whole UIDs, folded, so they can be copied
    for c in found:
        doc: dict[str, Any] = c.to_dict()
        table.add_row(
            str(c.seq), doc["at"], c.kind.value,
            c.client_id or (f"hash {c.client_hash[:12]}…" if c.client_hash else ""),
            c.study_instance_uid or "", c.series_instance_uid or "", c.sop_instance_uid or "",
        )
    Console().print(table)
    if found and nxt < current:
        console.print(f"more: omipacs changes --since {nxt}")
    return 0


def register(sub: Any) -> None:
    """Add ``changes`` and ``withdraw`` to the ``omipacs`` subcommands."""
    p = sub.add_parser("changes", help="the change feed: what changed in the index, in order")
    p.add_argument("--since", default="0", metavar="N",
                   help="show events after sequence number N (default 0: from the start)")
    p.add_argument("--limit", default="1000", metavar="M", help="at most M events (1-10000)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_changes)
