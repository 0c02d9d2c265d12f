"""``omipacs conformance-statement`` and ``omipacs conformance URL``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

console = Console(stderr=True)


def cmd_statement(args: argparse.Namespace) -> int:
    """Print the conformance statement, write it, or check a file against it."""
    from omipacs.conformance.statement import generate

    text = generate()
    if args.check:
        current = Path(args.check).read_text(encoding="utf-8")
        if current != text:
            console.print(
                f"[red]{args.check} is out of date[/]: run "
                f"omipacs conformance-statement --write {args.check}"
            )
            return 1
        console.print(f"{args.check} matches the code")
        return 0
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
        console.print(f"wrote {args.write}")
        return 0
    sys.stdout.write(text)
    return 0


def cmd_conformance(args: argparse.Namespace) -> int:
    """Run the DICOMweb (and DIMSE) checks against a server and print a table."""
    from rich.table import Table

    from omipacs.conformance.checks import Outcome, Result, make_sample, run_web

    results: list[Result] = []
    sample = make_sample()
    target = None
    if args.dimse:
        from omipacs.conformance.dimse_checks import parse_target

        try:
            target = parse_target(args.dimse, calling=args.ae_title, move_port=args.move_port)
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            return 2
    token = os.environ.get(args.token_env, "") if args.token_env else ""
    results += run_web(args.url, sample, token)
    if target is not None and sample.study:
        from omipacs.conformance.dimse_checks import run_dimse

        results += run_dimse(target, sample)
    colours = {Outcome.PASSED: "green", Outcome.FAILED: "red", Outcome.UNSUPPORTED: "yellow"}
    table = Table(title=f"conformance of {args.url}" + (f" and {args.dimse}" if target else ""))
    for column in ("area", "check", "result", "detail"):
        table.add_column(column)
    for r in results:
        colour = colours[r.outcome]
        table.add_row(r.area, r.name, f"[{colour}]{r.outcome.value}[/]", r.detail)
    out = Console(width=args.width) if args.width else Console()
    out.print(table)
    counts = {o: sum(r.outcome is o for r in results) for o in Outcome}
    out.print(", ".join(f"{n} {o.value}" for o, n in counts.items()))
    return 1 if counts[Outcome.FAILED] else 0


def register(sub: Any) -> None:
    """Add the conformance commands to the ``omipacs`` sub-command parser."""
    p = sub.add_parser(
        "conformance-statement",
        help="the DICOM conformance statement, generated from the code's own tables",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", help="write it (docs/conformance.md)")
    group.add_argument("--check", metavar="PATH", help="exit 1 if PATH differs from it")
    p.set_defaults(func=cmd_statement)

    p = sub.add_parser(
        "conformance",
        help="run DICOMweb (and DIMSE) conformance checks against any server",
        description="Stores one synthetic study with STOW-RS, then checks QIDO-RS, WADO-RS "
        "and (with --dimse) C-ECHO, C-FIND, C-GET and C-MOVE against it.",
    )
    p.add_argument("url", help="the DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web")
    p.add_argument("--dimse", metavar="HOST:PORT:AET", help="also check the DIMSE side")
    p.add_argument("--ae-title", default="OMIPACSCHECK", help="our calling AE title")
    p.add_argument(
        "--move-port",
        type=int,
        default=0,
        help="listen here as --ae-title for the C-MOVE check (the server must know it)",
    )
    p.add_argument(
        "--token-env",
        metavar="VAR",
        default="",
        help="environment variable holding a bearer token for the DICOMweb requests",
    )
    p.add_argument("--width", type=int, default=0, help="table width (default: terminal)")
    p.set_defaults(func=cmd_conformance)
