"""``omipacs user|licence|token|audit|access-request``: administration from the shell.

The same operations as ``/api/v1/admin`` (both call :mod:`omipacs.access.admin`). Each
change is audited as the ``cli`` door, by the operating-system user who ran it.
"""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from omipacs import config
from omipacs.access import admin
from omipacs.access import requests as access_requests
from omipacs.access.audit import AuditRecord, query_events
from omipacs.access.authenticate import utcnow
from omipacs.bootstrap import open_archive
from omipacs.services import Services

out = Console()


def _open(args: argparse.Namespace) -> Services:
    from pathlib import Path

    settings = config.load(Path(args.config) if args.config else None)
    return open_archive(settings, require_key=False)


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"not a date (YYYY-MM-DD): {value}") from None


def _audit(services: Services, action: str, resource: str) -> None:
    if services.audit is not None:
        services.audit.record(
            AuditRecord(
                at=utcnow(), user_email=f"os:{getpass.getuser()}", token_prefix="",
                licence_pk=None, remote="", door="cli", action=action, resource=resource,
                outcome="allowed",
            )
        )


def _print(args: argparse.Namespace, doc: Any, rows: list[dict[str, Any]] | None = None) -> None:
    if args.json or rows is None:
        out.print_json(json.dumps(doc, default=str))
        return
    if not rows:
        out.print("(none)")
        return
    table = Table(*rows[0].keys())
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    out.print(table)


def _run(args: argparse.Namespace, work: Callable[[Services], Any]) -> int:
    services = _open(args)
    try:
        work(services)
    finally:
        services.close()
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    """``omipacs user add|list|disable``."""

    def work(svc: Services) -> None:
        with svc.write_sessions.begin() as session:
            if args.action == "add":
                if not args.email or not args.role:
                    raise SystemExit("user add EMAIL --role admin|curator|researcher")
                user = admin.add_user(
                    session, args.email, args.role, name=args.name or "",
                    organisation=args.organisation or "",
                )
                _audit(svc, "user-add", f"user:{user.id}")
                _print(args, user.to_dict())
            elif args.action == "disable":
                user = admin.disable_user(session, args.email)
                _audit(svc, "user-disable", f"user:{user.id}")
                _print(args, user.to_dict())
            else:
                users = [u.to_dict() for u in admin.list_users(session)]
                _print(args, users, users)

    return _run(args, work)


def cmd_licence(args: argparse.Namespace) -> int:
    """``omipacs licence create|list|show|suspend|reinstate|revoke|add-member|rebind``."""

    def work(svc: Services) -> None:
        with svc.write_sessions.begin() as session:
            if args.action == "create":
                if not (args.title and args.cohort and args.scopes and args.ends):
                    raise SystemExit(
                        "licence create --title T --cohort ID --scopes 2d,3d --ends YYYY-MM-DD"
                    )
                ends = _date(args.ends)
                assert ends is not None
                lic = admin.create_licence(
                    session, title=args.title, purpose=args.purpose or "",
                    organisation=args.organisation or "", cohort_id=args.cohort,
                    scopes=args.scopes, starts=_date(args.starts), ends=ends,
                    members=args.member or [],
                )
                _audit(svc, "licence-create", f"licence:{lic.id}")
                _print(args, lic.to_dict())
                return
            if args.action == "list":
                found = [lic.to_dict() for lic in admin.list_licences(session)]
                rows = [
                    {k: d[k] for k in ("id", "title", "cohort_id", "scopes", "ends", "state")}
                    for d in found
                ]
                _print(args, found, rows)
                return
            if args.id is None:
                raise SystemExit(f"licence {args.action} needs the licence ID")
            if args.action == "show":
                _print(args, admin.show_licence(session, args.id).to_dict())
            elif args.action == "rebind":
                if args.cohort is None:
                    raise SystemExit("licence rebind ID --cohort NEWER_VERSION_ID")
                before = admin.show_licence(session, args.id).cohort_id
                lic = admin.rebind_licence(session, args.id, args.cohort)
                _audit(svc, "licence-rebind",
                       f"licence:{args.id} cohort:{before}->{args.cohort}")
                _print(args, lic.to_dict())
            elif args.action == "add-member":
                if not args.member:
                    raise SystemExit("licence add-member ID --member EMAIL")
                for m in args.member:
                    lic = admin.add_member(session, args.id, m)
                _audit(svc, "licence-member", f"licence:{args.id}")
                _print(args, lic.to_dict())
            else:
                state = {"suspend": "suspended", "reinstate": "active", "revoke": "revoked"}
                lic = admin.set_licence_state(session, args.id, state[args.action])
                _audit(svc, f"licence-{args.action}", f"licence:{args.id}")
                _print(args, lic.to_dict())

    return _run(args, work)


def cmd_token(args: argparse.Namespace) -> int:
    """``omipacs token create|list|revoke`` (a new token is printed once)."""

    def work(svc: Services) -> None:
        with svc.write_sessions.begin() as session:
            if args.action == "create":
                if not args.user:
                    raise SystemExit("token create --user EMAIL [--licence ID]")
                secret, info = admin.create_token(
                    session, args.user, licence_id=args.licence, expires=_date(args.expires),
                    label=args.label or "",
                )
                _audit(svc, "token-create", f"token:{info.prefix}")
                if args.json:
                    _print(args, {"token": secret, **info.to_dict()})
                else:
                    out.print(f"token for {info.user} (shown once, keep it secret):")
                    print(secret)
            elif args.action == "revoke":
                if not args.ref:
                    raise SystemExit("token revoke ID|PREFIX")
                info = admin.revoke_token(session, args.ref)
                _audit(svc, "token-revoke", f"token:{info.prefix}")
                _print(args, info.to_dict())
            else:
                found = [t.to_dict() for t in admin.list_tokens(session, args.user)]
                _print(args, found, found)

    return _run(args, work)


def cmd_audit(args: argparse.Namespace) -> int:
    """``omipacs audit [--user] [--licence] [--since] [--json]``."""

    def work(svc: Services) -> None:
        since = None
        if args.since:
            try:
                since = datetime.fromisoformat(args.since).replace(tzinfo=None)
            except ValueError:
                raise SystemExit(f"not an ISO 8601 time: {args.since}") from None
        with svc.sessions() as session:
            events = query_events(
                session, user=args.user, licence=args.licence, since=since,
                outcome=args.outcome, limit=args.limit,
            )
        docs = [e.to_json() for e in events]
        if args.json:
            for doc in docs:
                print(json.dumps(doc))
            return
        rows = [
            {k: d[k] for k in ("at", "user_email", "door", "action", "resource", "outcome",
                               "status", "bytes_sent")}
            for d in docs
        ]
        _print(args, docs, rows)

    return _run(args, work)


def cmd_access_request(args: argparse.Namespace) -> int:
    """``omipacs access-request list|show|submit|decide``."""

    def work(svc: Services) -> None:
        with svc.write_sessions.begin() as session:
            if args.action == "list":
                found = [r.to_dict() for r in access_requests.list_requests(session)]
                rows = [{k: d[k] for k in ("id", "applicant", "title", "state")} for d in found]
                _print(args, found, rows)
            elif args.action == "show":
                _print(args, access_requests.get_request(session, args.id or 0).to_dict())
            elif args.action == "submit":
                if not (args.user and args.file):
                    raise SystemExit("access-request submit --user EMAIL --file REQUEST.json")
                with open(args.file, encoding="utf-8") as f:
                    doc = json.load(f)
                user = admin.find_user(session, args.user)
                info = access_requests.submit(session, user.pk, doc)
                _audit(svc, "request-submit", f"request:{info.id}")
                _print(args, info.to_dict())
            else:
                if not (args.id and args.decision and args.reason and args.user):
                    raise SystemExit(
                        "access-request decide ID --user ADMIN_EMAIL --decision D --reason R"
                    )
                reviewer = admin.find_user(session, args.user)
                info = access_requests.decide(
                    session, args.id, reviewer.pk, args.decision, args.reason,
                    cohort_id=args.cohort, scopes=args.scopes, ends=_date(args.ends),
                )
                _audit(svc, "request-decide", f"request:{info.id}")
                _print(args, info.to_dict())

    return _run(args, work)


def register(sub: Any) -> None:
    """Add the access commands to the ``omipacs`` parser's subcommands."""
    p = sub.add_parser("user", help="users: add, list, disable")
    p.add_argument("action", choices=["add", "list", "disable"])
    p.add_argument("email", nargs="?")
    p.add_argument("--role", choices=["admin", "curator", "researcher"])
    p.add_argument("--name")
    p.add_argument("--organisation")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_user)

    p = sub.add_parser("licence", help="licences: create, list, show, suspend, revoke")
    p.add_argument(
        "action",
        choices=["create", "list", "show", "suspend", "reinstate", "revoke", "add-member",
                 "rebind"],
    )
    p.add_argument("id", nargs="?", type=int)
    p.add_argument("--title")
    p.add_argument("--purpose")
    p.add_argument("--organisation")
    p.add_argument("--cohort", type=int, help="saved cohort ID (that version is bound)")
    p.add_argument("--scopes", help="2d,for-processing,3d,marks,clinical,density")
    p.add_argument("--starts")
    p.add_argument("--ends")
    p.add_argument("--member", action="append", help="a researcher's email (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_licence)

    p = sub.add_parser("token", help="bearer tokens: create (printed once), list, revoke")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("ref", nargs="?", help="token ID or prefix (revoke)")
    p.add_argument("--user")
    p.add_argument("--licence", type=int)
    p.add_argument("--expires")
    p.add_argument("--label")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("audit", help="the audit trail of access decisions and data access")
    p.add_argument("--user")
    p.add_argument("--licence", type=int)
    p.add_argument("--since", help="ISO 8601 time (UTC)")
    p.add_argument("--outcome", choices=["allowed", "denied"])
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("access-request", help="data access requests and committee decisions")
    p.add_argument("action", choices=["list", "show", "submit", "decide"])
    p.add_argument("id", nargs="?", type=int)
    p.add_argument("--user", help="the applicant (submit) or the deciding admin (decide)")
    p.add_argument("--file", help="the request as JSON (submit)")
    p.add_argument("--decision", choices=list(access_requests.DECISIONS))
    p.add_argument("--reason")
    p.add_argument("--cohort", type=int)
    p.add_argument("--scopes")
    p.add_argument("--ends")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_access_request)
