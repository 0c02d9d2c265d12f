"""``omipacs send``: push studies or a saved cohort to a DICOM peer (C-STORE SCU).

Registered from :mod:`omipacs.cli`; kept apart so the DIMSE commands live together.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from omipacs import config
from omipacs.bootstrap import open_archive
from omipacs.errors import ConfigurationError, InvalidQuery, OmipacsError
from omipacs.index.visibility import Visibility
from omipacs.query.attributes import BY_KEYWORD
from omipacs.query.params import QidoQuery, key_filter
from omipacs.retrieve.locate import locate_matching

console = Console(stderr=True)


def cmd_send(args: argparse.Namespace) -> int:
    """Send the named studies (or a saved cohort's) to an allow-listed peer."""
    from pathlib import Path

    from omipacs.dimse import scu

    settings = config.load(Path(args.config) if args.config else None)
    peer = scu.destination(settings, args.to)
    if not args.studies and args.cohort is None:
        raise ConfigurationError("name at least one Study Instance UID, or --cohort ID")
    services = open_archive(settings, require_key=False)
    try:
        filters = []
        if args.studies:
            attr = BY_KEYWORD["StudyInstanceUID"]
            try:
                filters.append(
                    key_filter(attr.keyword, (attr,), "\\".join(args.studies), "instance")
                )
            except InvalidQuery as exc:
                console.print(f"[red]{exc.reason}[/]")
                return 2
        restrict: Visibility | None = None
        if args.cohort is not None:
            from omipacs.cohorts import cohort_restriction, get_cohort

            with services.sessions() as session:
                get_cohort(session, args.cohort, with_members=False)
            restrict = Visibility(study=cohort_restriction(args.cohort))
        query = QidoQuery(level="instance", filters=tuple(filters), limit=1)
        with services.sessions() as session:
            locations = locate_matching(session, query, restrict=restrict)
        if not locations:
            console.print("[yellow]nothing to send: no stored instance matches[/]")
            return 1
        try:
            report = scu.send(services, peer, locations)
        except OmipacsError as exc:
            console.print(f"[red]send failed:[/] {exc.reason}")
            return 1
    finally:
        services.close()
    summary: dict[str, Any] = {
        "to": peer.ae_title,
        "instances": len(locations),
        "studies": len({loc.study_uid for loc in locations}),
        "completed": len(report.completed),
        "warning": len(report.warning),
        "failed": report.failed,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        table = Table(title=f"sent to {peer.ae_title}")
        table.add_column("outcome")
        table.add_column("instances", justify="right")
        for key in ("completed", "warning"):
            table.add_row(key, str(summary[key]))
        table.add_row("failed", str(len(report.failed)))
        console.print(table)
        for sop_uid, reason in list(report.failed.items())[:20]:
            console.print(f"  [red]{sop_uid}[/]: {reason}")
    return 1 if report.failed else 0


def register(sub: Any) -> None:
    """Add the DIMSE commands to the ``omipacs`` sub-command parser."""
    p = sub.add_parser("send", help="send studies or a saved cohort to a DICOM peer (C-STORE)")
    p.add_argument("studies", nargs="*", metavar="STUDY_UID", help="Study Instance UIDs")
    p.add_argument("--to", required=True, metavar="AE", help="a [[dimse.peers]] AE title")
    p.add_argument("--cohort", type=int, help="send every study of this saved cohort")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=cmd_send)
