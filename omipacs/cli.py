"""The ``omipacs`` command line: serve, import, verify, demo, init-db.

Each command parses arguments, builds the services from settings and calls core code;
output is for people (rich tables and progress bars) with ``--json`` where scripts
need it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from omipacs import config
from omipacs.bootstrap import open_archive
from omipacs.deid.keys import DeidKeys
from omipacs.errors import ConfigurationError, OmipacsError
from omipacs.filemodes import UMASK
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.ingest.pipeline import reject_reason
from omipacs.ingest.quarantine import Quarantine
from omipacs.ingest.residue import sweep_residue
from omipacs.ingest.result import IngestOutcome
from omipacs.services import Services

# Soft wrap: messages naming long paths stay whole, so they can be copied.
console = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("omipacs")


def _settings(args: argparse.Namespace) -> config.Settings:
    return config.load(Path(args.config) if args.config else None)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


# --- serve -----------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the DIMSE SCP and the DICOMweb server until interrupted."""
    from omipacs.children import limit_malloc_arenas
    from omipacs.dicom.pixels import share_decodes
    from omipacs.dimse import scp
    from omipacs.dimse.pool import ScpPool
    from omipacs.web import server as web_server

    limit_malloc_arenas()  # before any thread or fork: every server process inherits it
    settings = _settings(args)
    if args.http_workers is not None:
        settings = dataclasses.replace(
            settings, http=dataclasses.replace(settings.http, workers=args.http_workers)
        )
    if args.dimse_processes is not None:
        settings = dataclasses.replace(
            settings, dimse=dataclasses.replace(settings.dimse, processes=args.dimse_processes)
        )
    # One set of decode slots for every HTTP worker and DIMSE process forked below.
    share_decodes(
        settings.retrieve.max_concurrent_decodes,
        settings.retrieve.decode_wait_seconds,
        settings.retrieve.decode_memory_mib << 20,
    )
    # Refuse unsafe exposure before anything starts listening.
    scp.check_exposure(settings)
    if not args.no_http:
        web_server.check_exposure(settings)
    services = open_archive(settings)
    quarantine = Quarantine(settings.storage.root)
    sweep_residue(services.spool, quarantine, settings.deid,
                  spool_max_age=0 if args.sweep_all else None)

    stop = threading.Event()
    # The HTTP workers and SCP processes are forked before this process runs any thread
    # (the archive's audit writer is one) or holds a database connection: a lock that a
    # thread held at the fork would stay locked forever in the child. The archive opened
    # above (to migrate and sweep) is closed, and opened again once the children run.
    services.close()
    http = None if args.no_http else web_server.start(settings)
    dimse: Any = ScpPool(settings) if settings.dimse.processes > 1 else None
    services = open_archive(settings, migrate=False)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if dimse is None:
        dimse = scp.start(services)
    try:
        if isinstance(dimse, ScpPool):
            dimse.wait_ready()
        if http is not None:
            http.wait_ready()
    except OmipacsError:
        if http is not None:
            http.close()
        dimse.shutdown()
        raise
    threading.Thread(
        target=_sync_loop, args=(services, stop), name="clinical-sync", daemon=True
    ).start()
    threading.Thread(
        target=_residue_loop, args=(services, quarantine, stop), name="residue", daemon=True
    ).start()
    console.print(
        f"omipacs: DICOM {settings.dimse.ae_title}@{settings.dimse.host}:{settings.dimse.port}"
        + (
            f", DICOMweb http://{settings.http.host}:{settings.http.port}{settings.http.base_path}"
            if http is not None
            else ""
        )
        + f", storage {settings.storage.root}"
    )
    try:
        print("READY", flush=True)
        stop.wait()
        console.print("omipacs: shutting down")
    finally:
        # Whatever happened above (even a closed stdout), the HTTP workers and the SCP
        # are stopped before this process ends.
        if http is not None:
            http.close()
        dimse.shutdown()
        services.close()
    return 0


def _residue_loop(services: Services, quarantine: Quarantine, stop: threading.Event) -> None:
    """Sweep the spool and purge quarantine past its retention, by itself, while serving."""
    every = max(1.0, services.settings.deid.residue_sweep_seconds)
    while not stop.wait(every):
        try:
            sweep_residue(services.spool, quarantine, services.settings.deid)
        except Exception:
            log.exception("residue sweep failed; retrying in %.0f s", every)


def _sync_loop(services: Services, stop: threading.Event, every: float = 60.0) -> None:
    """Keep the clinical layer (clients' 2D/3D flags, study links) up with new images."""
    from omipacs.annotations.indexer import resolve_pending_marks
    from omipacs.clinical.imaging import sync_imaging

    while not stop.wait(every):
        try:
            with services.write_sessions.begin() as session:
                sync_imaging(session)
                resolve_pending_marks(session)
        except Exception:
            log.exception("clinical sync failed; retrying in %.0f s", every)


# --- import ----------------------------------------------------------------------------


def _walk(paths: Sequence[str]) -> Iterator[Path]:
    for name in paths:
        p = Path(name)
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                if child.is_file() and child.name.upper() != "DICOMDIR":
                    yield child
        elif p.is_file():
            yield p
        else:
            console.print(f"[yellow]skipping {p}: not a file or directory")


def cmd_import(args: argparse.Namespace) -> int:
    """Backfill folders of DICOM files through the ingest pipeline."""
    settings = _settings(args)
    services = open_archive(settings)
    files = list(_walk(args.paths))
    origin = IngestOrigin(
        OriginKind.IMPORT, ae_title=args.source[:16], deidentify=not args.no_deidentify
    )
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    rejected: list[tuple[str, str]] = []
    with _progress() as progress:
        task = progress.add_task("importing", total=len(files))
        for path in files:
            try:
                result = services.pipeline.ingest_file(path, origin)
                outcomes[result.outcome.value] += 1
            except OmipacsError as exc:
                outcomes["rejected"] += 1
                reasons[exc.reason] += 1
                rejected.append((str(path), exc.reason))
            except Exception as exc:
                log.exception("unexpected error importing %s", path)
                outcomes["rejected"] += 1
                reasons[reject_reason(exc)] += 1
                rejected.append((str(path), reject_reason(exc)))
            progress.advance(task)
    summary = {
        "files": len(files),
        "stored": outcomes[IngestOutcome.STORED.value],
        "already_stored": outcomes[IngestOutcome.ALREADY_STORED.value],
        "quarantined": outcomes[IngestOutcome.QUARANTINED.value],
        "rejected": outcomes["rejected"],
        "reasons": dict(reasons),
    }
    if args.json:
        print(json.dumps({**summary, "rejected_files": rejected}, indent=2))
    else:
        table = Table(title="import summary")
        table.add_column("outcome")
        table.add_column("files", justify="right")
        for key in ("stored", "already_stored", "quarantined", "rejected"):
            table.add_row(key.replace("_", " "), str(summary[key]))
        console.print(table)
        for reason, n in reasons.most_common():
            console.print(f"  rejected x{n}: {reason}")
        for name, reason in rejected[:20]:
            console.print(f"  [red]{name}[/]: {reason}")
    _sync(services)
    services.close()
    return 1 if outcomes["rejected"] and args.strict else 0


# --- verify ----------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    """Compare the index with the stored bytes; ``--repair`` fixes what it can."""
    from omipacs.integrity.verify import verify

    settings = _settings(args)
    services = open_archive(settings, require_key=False)
    report = verify(
        services, repair=args.repair, checksums=not args.no_checksums, grace_seconds=args.grace
    )
    doc = {
        "checked": report.checked,
        "missing": report.missing,
        "corrupt": report.corrupt,
        "orphans": report.orphans,
        "spool_leftovers": report.spool_leftovers,
        "repaired": report.repaired,
        "ok": report.ok,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        table = Table(title="verify")
        table.add_column("check")
        table.add_column("count", justify="right")
        table.add_row("instances checked", str(report.checked))
        table.add_row("missing bytes", str(len(report.missing)))
        table.add_row("checksum mismatch", str(len(report.corrupt)))
        table.add_row("orphan blobs", str(len(report.orphans)))
        table.add_row("spool leftovers", str(report.spool_leftovers))
        console.print(table)
        for uid in report.missing + report.corrupt:
            console.print(f"  needs re-send: {uid}")
        if report.repaired:
            console.print("repaired: orphans removed, bad instances taken out of the index")
    services.close()
    return 0 if report.ok or report.repaired else 1


# --- demo ------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate a synthetic OMI-DB-like data set and load it through the pipeline."""
    from omipacs.demo.load import load_demo

    settings = _settings(args)
    with _progress() as progress:
        task = progress.add_task("demo data", total=None)
        summary = load_demo(
            settings,
            clients=args.clients,
            seed=args.seed,
            full_size=args.full_size,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    console.print(summary.describe())
    return 0


# --- quarantine ------------------------------------------------------------------------


def cmd_quarantine(args: argparse.Namespace) -> int:
    """List, show, release or purge instances held back by de-identification."""
    settings = _settings(args)
    quarantine = Quarantine(settings.storage.root)
    if args.action == "list":
        entries = quarantine.entries()
        if args.json:
            print(json.dumps([e.__dict__ for e in entries], indent=2))
            return 0
        table = Table(title=f"quarantine ({len(entries)})")
        for col in ("id", "held", "from", "SOP class", "reason"):
            table.add_column(col)
        for e in entries:
            held = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.held_at))
            table.add_row(e.id, held, f"{e.origin}:{e.source_ae_title}", e.sop_class_uid, e.reason)
        console.print(table)
        return 0
    if not args.id:
        console.print("[red]give the entry id[/] (see `omipacs quarantine list`)")
        return 2
    try:
        entry = quarantine.get(args.id)
    except OmipacsError as exc:
        console.print(f"[red]{exc.reason}")
        return 1
    if args.action == "show":
        print(json.dumps(entry.__dict__, indent=2))
        return 0
    if args.action == "purge":
        quarantine.purge(entry.id)
        console.print(f"purged {entry.id}")
        return 0
    # release: an operator has checked the pixels; ingest normally (header de-identified).
    services = open_archive(settings)
    try:
        _, result = quarantine.release(entry.id, services.pipeline.ingest_file)
    except OmipacsError as exc:
        console.print(f"[red]release failed:[/] {exc.reason}")
        return 1
    finally:
        services.close()
    console.print(f"released {entry.id}: {result.outcome.value} {result.sop_instance_uid}")
    return 0


# --- clinical data and statistics ----------------------------------------------------


def _sync(services: Services) -> None:
    """Fold newly stored images into the clinical layer (clients, 2D/3D, study links)."""
    from omipacs.clinical.imaging import sync_imaging

    with services.write_sessions.begin() as session:
        sync_imaging(session, margin=timedelta(0))


def cmd_clinical(args: argparse.Namespace) -> int:
    """Import NBSS-style clinical records, or re-sync images into the clinical layer."""
    from omipacs.clinical.importer import import_paths

    settings = _settings(args)
    services = open_archive(settings)
    try:
        if args.action == "sync":
            _sync(services)
            console.print("clinical layer in sync with the images")
            return 0
        keys = services.extras.get("deid.keys")
        if not isinstance(keys, DeidKeys):
            console.print("[red]clinical import needs the de-identification key")
            return 2
        with services.write_sessions() as session:
            report = import_paths(session, [Path(p) for p in args.paths], keys,
                                  keep_fields=settings.deid.clinical_fields)
        _sync(services)
        doc = report.to_dict()
        if args.json:
            print(json.dumps(doc, indent=2, default=str))
        else:
            console.print(
                f"clinical import: {doc['created']} created, {doc['updated']} "
                f"updated, {doc['unchanged']} unchanged, {doc['rejected']} rejected"
            )
            for r in doc["results"]:
                if r.get("status") == "rejected":
                    console.print(
                        f"  [red]{r.get('source') or r.get('index')}[/]: {r.get('reason')}"
                    )
        return 0 if report.ok else 1
    finally:
        services.close()


def cmd_stats(args: argparse.Namespace) -> int:
    """The brochure's tables from the live index: cases by outcome, 2D, 3D, marked."""
    from omipacs.clinical.stats import stats
    from omipacs.index import db

    settings = _settings(args)
    # Read-only: counting never migrates, syncs or writes anything (stats() adds the
    # instances stored since the last sync itself).
    engine = db.make_engine(settings.database_url, read_only=True)
    try:
        with db.make_sessionmaker(engine)() as session:
            tables = stats(session)
    finally:
        engine.dispose()
    if args.format == "json":
        print(json.dumps(tables.to_dict(), indent=2, default=str))
    elif args.format == "csv":
        print(tables.to_csv(), end="")
    else:
        for t in tables.tables:
            table = Table(title=t.title)
            table.add_column("Outcome")
            table.add_column("Number of Cases Available", justify="right")
            for row in t.rows():
                table.add_row(str(row["label"]), f"{row['cases']:,}")
            Console().print(table)
    return 0


# --- marks ------------------------------------------------------------------------------


def cmd_marks(args: argparse.Namespace) -> int:
    """Import OMI-DB-style expert marks (stored as SR), or re-index marks from stored SRs."""
    from omipacs.annotations.importer import import_marks
    from omipacs.annotations.indexer import backfill_marks
    from omipacs.annotations.records import load_mark_file

    settings = _settings(args)
    services = open_archive(settings)
    try:
        if args.action == "reindex":
            console.print(f"indexed {backfill_marks(services)} marks from stored SRs")
            return 0
        rejected = 0
        for path in args.paths:
            marks = load_mark_file(Path(path))
            report = import_marks(services, marks.records, source_uids=marks.source_uids)
            doc = report.to_dict()
            rejected += len(doc.get("rejected", []))
            if args.json:
                print(json.dumps({"path": path, **doc}, indent=2, default=str))
            else:
                console.print(
                    f"{path}: {doc.get('accepted')} marks accepted, "
                    f"{len(doc.get('rejected', []))} rejected; SRs "
                    f"{doc.get('stored')} stored, {doc.get('already_stored')} "
                    "already stored"
                )
                for r in doc.get("rejected", []):
                    console.print(f"  [red]record {r.get('index')}[/]: {r.get('reason')}")
        return 1 if rejected else 0
    finally:
        services.close()


# --- init-db ---------------------------------------------------------------------------


def cmd_init_db(args: argparse.Namespace) -> int:
    """Create or migrate the index schema."""
    settings = _settings(args)
    services = open_archive(settings, require_key=False)
    console.print(f"index ready at {services.engine.url.render_as_string(hide_password=True)}")
    services.close()
    return 0


def _global_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--config", default=default, help="path to config.toml (default ./config.toml)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="debug logging"
    )


class _Subcommand(argparse.ArgumentParser):
    """A subcommand's parser: also takes the global options (``omipacs serve --config F``).

    Their default is SUPPRESS, so a value given before the subcommand is kept.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _global_options(self, argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(prog="omipacs", description=__doc__)
    _global_options(parser, None)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Subcommand)

    p = sub.add_parser("serve", help="run the DICOM SCP and the DICOMweb server")
    p.add_argument("--no-http", action="store_true", help="DIMSE only")
    p.add_argument(
        "--http-workers",
        type=int,
        metavar="N",
        help="DICOMweb worker processes (default [http] workers)",
    )
    p.add_argument(
        "--dimse-processes",
        type=int,
        metavar="N",
        help="DICOM SCP processes sharing the port (default [dimse] processes)",
    )
    p.add_argument(
        "--sweep-all",
        action="store_true",
        help="remove every spool file at start (no other process shares the spool)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("import", help="ingest DICOM files or folders")
    p.add_argument("paths", nargs="+")
    p.add_argument("--source", default="IMPORT", help="label recorded as the source")
    p.add_argument(
        "--no-deidentify",
        action="store_true",
        help="files already carry the archive's pseudonymous UIDs (e.g. exported SRs)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument("--strict", action="store_true", help="exit 1 if any file was rejected")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("verify", help="compare the index with the stored bytes")
    p.add_argument("--repair", action="store_true")
    p.add_argument("--no-checksums", action="store_true", help="check sizes only (fast)")
    p.add_argument(
        "--grace",
        type=float,
        default=600.0,
        help="seconds an unindexed blob may be in flight (default 600)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("demo", help="load a synthetic OMI-DB-like data set")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--full-size",
        action="store_true",
        help="real detector sizes (3328x4096 FFDM, 50+ frame DBT)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("quarantine", help="instances held back because they may identify")
    p.add_argument("action", choices=["list", "show", "release", "purge"])
    p.add_argument("id", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_quarantine)

    p = sub.add_parser("clinical", help="clinical (NBSS) records")
    p.add_argument("action", choices=["import", "sync"])
    p.add_argument("paths", nargs="*", help="NBSS_*.json files, folders, JSON arrays or lines")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_clinical)

    p = sub.add_parser("stats", help="cases by outcome: 2D, 3D and marked (the brochure's tables)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("marks", help="expert ROI marks (stored as DICOM SR)")
    p.add_argument("action", choices=["import", "reindex"])
    p.add_argument("paths", nargs="*", help="mark records: JSON, JSON Lines or IMAGEDB files")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_marks)

    p = sub.add_parser("init-db", help="create or migrate the index")
    p.set_defaults(func=cmd_init_db)
    from omipacs import cli_dimse
    from omipacs.conformance import cli as conformance_cli

    cli_dimse.register(sub)
    conformance_cli.register(sub)

    from omipacs import access_cli, cli_changes

    access_cli.register(sub)
    from omipacs import release_cli

    release_cli.register(sub)
    cli_changes.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``omipacs`` console script."""
    args = build_parser().parse_args(argv)
    # Everything the archive writes is owner-only (omipacs.filemodes sets modes too).
    os.umask(UMASK)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Libraries' INFO lines (highdicom: one per SR content item) drown ours.
    for name in ("pynetdicom", "highdicom", "fsspec"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        console.print(f"[red]configuration error:[/] {exc.reason}")
        return 2
    except OmipacsError as exc:
        console.print(f"[red]error:[/] {exc.reason}")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
