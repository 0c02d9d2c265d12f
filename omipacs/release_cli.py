"""``omipacs release create|verify|list|show|worker``: a licence's data to a folder or bucket.

The command parses arguments and shows progress; :mod:`omipacs.export.release` does the
work (docs/releases.md). Creating a release is audited as the ``cli`` door, by the
operating-system user who ran it, and its completion as the ``export`` door with the
bytes written.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from omipacs import config
from omipacs.access_cli import _audit
from omipacs.bootstrap import open_archive
from omipacs.errors import BadRequest
from omipacs.export import release as releases
from omipacs.export.destination import Destination, RateLimit, check_place
from omipacs.services import Services

console = Console(stderr=True, soft_wrap=True)


def parse_options(pairs: list[str] | None, base: dict[str, Any]) -> dict[str, Any]:
    """``[release.options]`` plus ``--storage-option key=value`` (a dotted key nests:
    ``client_kwargs.region_name=eu-west-2``; a value that is JSON is taken as JSON)."""
    options: dict[str, Any] = json.loads(json.dumps(base))
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise BadRequest(f"--storage-option takes key=value, not {pair!r}")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        target = options
        *parents, last = key.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[last] = value
    return options


def _bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=False,
    )


def _show(args: argparse.Namespace, info: releases.ReleaseInfo) -> None:
    doc = info.to_dict()
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
        return
    table = Table(title=f"release {info.number} of licence {info.licence_id}")
    table.add_column("field")
    table.add_column("value")
    for key in ("state", "url", "base_number", "change_seq", "files_total", "files_done",
                "bytes_total", "bytes_done", "verification", "error", "completed_at"):
        table.add_row(key, "" if doc[key] is None else str(doc[key]))
    for key, value in info.counts.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)


def _watch(services: Services, release_pk: int, work: threading.Thread,
           tally: releases.Tally | None) -> None:
    """A progress bar over the release's bytes until ``work`` ends: from this process's
    tally, or from the index when other processes do the copying."""
    files_total, bytes_total, _, bytes_done = releases.totals(services, release_pk)
    with _bar() as bar:
        start = bytes_done if tally is None else 0
        task = bar.add_task(f"{files_total} files", total=max(bytes_total - start, 1))
        while work.is_alive():
            work.join(0.25)
            if tally is not None:
                done = tally.bytes
            else:
                done = releases.totals(services, release_pk)[3] - start
            bar.update(task, completed=done)
        bar.update(task, completed=max(bytes_total - start, 1))


def cmd_create(args: argparse.Namespace, settings: config.Settings, svc: Services) -> int:
    options = parse_options(args.storage_option, settings.release.options)
    check_place(args.to, settings.release.allowed_roots, settings.storage.root,
                over_http=False)
    dest = Destination(args.to, options)
    with svc.write_sessions.begin() as session:
        row, new = releases.begin(session, args.licence, args.to, full=args.full,
                                  check=args.check)
        release_pk, number = row.pk, row.number
    _audit(svc, "release-create" if new else "release-resume",
           f"licence:{args.licence} release:{number}")
    if not args.json:
        console.print(f"{'writing' if new else 'resuming'} release {number} of licence "
                      f"{args.licence} to {dest.url}")
    workers = args.workers or settings.release.workers
    limit = RateLimit(args.max_bytes_per_second or settings.release.max_bytes_per_second)
    failure: list[BaseException] = []
    tally: releases.Tally | None = releases.Tally()
    queued = settings.release.queue == "procrastinate"
    if queued and svc.engine.dialect.name != "postgresql":
        raise BadRequest("[release] queue = procrastinate needs a PostgreSQL index")

    def work() -> None:
        try:
            if queued:
                _queued(svc, release_pk, dest)
            else:
                releases.run_here(svc, release_pk, dest, workers=workers, tally=tally,
                                  limit=limit)
        except BaseException as exc:
            failure.append(exc)

    releases.plan(svc, release_pk, dest)
    thread = threading.Thread(target=work, name="release", daemon=True)
    thread.start()
    if args.json:
        thread.join()
    else:
        _watch(svc, release_pk, thread, None if queued else tally)
    if failure:
        raise failure[0]
    with svc.sessions() as session:
        info = releases.get_release(session, args.licence, number)
    _record_export(svc, info)
    _show(args, info)
    return 0 if info.state == "complete" else 1


def _queued(svc: Services, release_pk: int, dest: Destination) -> None:
    """Defer the pending batches and wait until the workers have finished the release."""
    from omipacs.export import queue

    pending = releases.pending_batches(svc, release_pk)
    if pending:
        queue.defer_batches(svc, release_pk, pending, dest.url)
    else:
        releases.finish(svc, release_pk, dest)
    while True:
        with svc.sessions() as session:
            from omipacs.export.models import Release

            row = session.get(Release, release_pk)
            assert row is not None
            if row.state in ("complete", "failed"):
                return
            if row.batches_done >= row.batches_total:
                releases.finish(svc, release_pk, dest)
                return
        time.sleep(0.5)


def _record_export(svc: Services, info: releases.ReleaseInfo) -> None:
    if svc.audit is None or info.state != "complete":
        return
    import getpass

    from omipacs.access.audit import AuditRecord
    from omipacs.access.authenticate import utcnow

    svc.audit.record(AuditRecord(
        at=utcnow(), user_email=f"os:{getpass.getuser()}", token_prefix="",
        licence_pk=info.licence_id, remote="", door="export", action="release",
        resource=f"licence:{info.licence_id} release:{info.number} {info.url}",
        outcome="allowed", bytes_sent=info.bytes_done,
    ))


def cmd_verify(args: argparse.Namespace, settings: config.Settings, svc: Services) -> int:
    if args.release is None:
        raise BadRequest("release verify --licence ID --release N --to URL")
    dest = Destination(args.to, parse_options(args.storage_option, settings.release.options))
    manifest = releases.read_manifest(dest, args.licence, args.release)
    total = sum(int(e["bytes"]) for e in manifest["files"]) if manifest else 0
    result: list[releases.VerifyReport] = []
    failure: list[BaseException] = []
    tally = releases.Tally()

    def work() -> None:
        try:
            result.append(releases.verify(dest, args.licence, args.release,
                                          workers=args.workers or settings.release.workers,
                                          progress=tally.add_bytes))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    if args.json:
        thread.join()
    else:
        with _bar() as bar:
            task = bar.add_task("verifying", total=max(total, 1))
            while thread.is_alive():
                thread.join(0.25)
                bar.update(task, completed=tally.bytes)
            bar.update(task, completed=tally.bytes)
    if failure:
        raise failure[0]
    report = result[0]
    releases.record_verification(svc, args.licence, args.release, report.ok)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        console.print(f"{report.files} files, {report.bytes} bytes checked: "
                      + ("[green]all match the manifest[/]" if report.ok else
                         f"[red]{len(report.missing)} missing, {len(report.mismatched)} "
                         "differ[/]"))
        for path in report.missing:
            console.print(f"  missing: {path}")
        for path in report.mismatched:
            console.print(f"  differs: {path}")
    return 0 if report.ok else 1


def cmd_worker(args: argparse.Namespace, settings: config.Settings, svc: Services) -> int:
    from omipacs.export import queue

    if svc.engine.dialect.name != "postgresql":
        raise BadRequest("release workers share a PostgreSQL index; with SQLite, "
                         "`release create` copies in-process")
    console.print("release worker ready")
    queue.run_worker(
        svc, parse_options(args.storage_option, settings.release.options),
        threads=args.workers or settings.release.workers,
        limit=RateLimit(args.max_bytes_per_second or settings.release.max_bytes_per_second),
        wait=not args.burst,
    )
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    """``omipacs release create|verify|list|show|worker``."""
    settings = config.load(Path(args.config) if args.config else None)
    svc = open_archive(settings, require_key=False)
    try:
        if args.action == "worker":
            return cmd_worker(args, settings, svc)
        if args.licence is None:
            raise BadRequest(f"release {args.action} needs --licence ID")
        if args.action in ("create", "verify") and not args.to:
            raise BadRequest(f"release {args.action} needs --to URL")
        if args.action == "create":
            return cmd_create(args, settings, svc)
        if args.action == "verify":
            return cmd_verify(args, settings, svc)
        with svc.sessions() as session:
            if args.action == "show":
                if args.release is None:
                    raise BadRequest("release show --licence ID --release N")
                _show(args, releases.get_release(session, args.licence, args.release))
                return 0
            found = releases.list_releases(session, args.licence)
        if args.json:
            print(json.dumps([r.to_dict() for r in found], indent=2, default=str))
        else:
            table = Table("release", "state", "files", "bytes", "url", "completed")
            for r in found:
                table.add_row(str(r.number), r.state, f"{r.files_done}/{r.files_total}",
                              f"{r.bytes_done}/{r.bytes_total}", r.url, str(r.completed_at or ""))
            console.print(table)
        return 0
    finally:
        svc.close()


def register(sub: Any) -> None:
    """Add ``release`` to the ``omipacs`` parser's subcommands."""
    p = sub.add_parser("release", help="releases of a licence's data to a folder or bucket")
    p.add_argument("action", choices=["create", "verify", "list", "show", "worker"])
    p.add_argument("--licence", type=int, help="licence ID")
    p.add_argument("--release", type=int, help="release number (verify, show)")
    p.add_argument("--to", help="destination: a folder, s3://bucket/prefix, gs://bucket/prefix")
    p.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                   help="fsspec option for the destination (repeatable), e.g. endpoint_url=…")
    p.add_argument("--workers", type=int, help="parallel transfers (default [release] workers)")
    p.add_argument("--max-bytes-per-second", type=int, help="cap this process's transfer rate")
    p.add_argument("--full", action="store_true",
                   help="create: compare every file with the previous release instead of "
                        "reading the change feed")
    p.add_argument("--check", choices=list(releases.CHECKS), default="sha256",
                   help="create: re-hash every copied byte (sha256, the default) or, for "
                        "folder copies, check sizes only and rely on the SHA-256 recorded "
                        "at ingest (size; run `release verify` after)")
    p.add_argument("--burst", action="store_true", help="worker: exit once the queue is empty")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_release)
