"""``omipacs changes`` (the change feed) and ``omipacs withdraw`` (a client's opt-out).

Registered from :mod:`omipacs.cli`; thin: parse, call :mod:`omipacs.index.changes` or
:mod:`omipacs.withdrawal.withdraw`, print.
"""

from __future__ import annotations

import argparse
import getpass
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


def cmd_withdraw(args: argparse.Namespace) -> int:
    """Withdraw a client: remove her data everywhere, keep the keyed tombstone."""
    from omipacs.bootstrap import open_archive
    from omipacs.withdrawal.withdraw import run_withdrawal

    if (args.client_id is None) == (args.nhs_number is None):
        console.print("[red]give either CLIENT_ID or --nhs-number N[/]")
        return 2
    services = open_archive(_settings(args))
    try:
        report = run_withdrawal(
            services,
            client_id=args.client_id,
            nhs_number=args.nhs_number,
            actor=getpass.getuser(),
            on_progress=lambda n: console.print(f"  {n} instances removed") if n % 1000 == 0
            else None,
        )
    finally:
        services.close()
    doc = report.to_dict()
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    table = Table(title="withdrawal" + (" (already complete; checked again)"
                                         if report.already_complete else ""))
    table.add_column("removed")
    table.add_column("count", justify="right")
    for key, value in doc.items():
        if key not in ("client_hash", "already_complete"):
            table.add_row(key.replace("_", " "), str(value))
    Console().print(table)
    console.print(f"tombstone: keyed hash {report.client_hash[:16]}…; later sends for her "
                  "are refused")
    return 0


def register(sub: Any) -> None:
    """Add ``changes`` and ``withdraw`` to the ``omipacs`` subcommands."""
    p = sub.add_parser("changes", help="the change feed: what changed in the index, in order")
    p.add_argument("--since", default="0", metavar="N",
                   help="show events after sequence number N (default 0: from the start)")
    p.add_argument("--limit", default="1000", metavar="M", help="at most M events (1-10000)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_changes)

    p = sub.add_parser("withdraw", help="withdraw a client (data opt-out): remove her data "
                       "everywhere and refuse it from now on")
    p.add_argument("client_id", nargs="?", metavar="CLIENT_ID", help="her client ID")
    p.add_argument("--nhs-number", metavar="N",
                   help="her NHS number instead (checked, hashed with the archive's key, "
                   "never stored or logged)")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=cmd_withdraw)
