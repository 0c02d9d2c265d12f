"""The audit trail on the curator's desk: who did what, when, through which door.

Filters (user, licence, door, action, outcome, time window, a resource substring) and
newest-first pages of :func:`omipacs.access.audit.browse_events`; the filters live in
the URL, so a view can be bookmarked or sent to a colleague. Curators and admins
(``read-audit``). Resources are pseudonymous UIDs, IDs and paths: nothing here names a
patient.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from flask import Response, request, url_for

from omipacs.access.audit import DOORS, FIELDS, OUTCOMES, AuditFilter, browse_events
from omipacs.access.policy import Action, Role
from omipacs.errors import BadRequest
from omipacs.web.context import services
from omipacs.web.ui.blueprint import page, render
from omipacs.web.ui.forms import optional_date, optional_id

PAGE = 100
CSV_LIMIT = 100_000
"""Most events one CSV download holds (narrow the filters for more)."""
FILTERS = ("user", "licence", "door", "action", "outcome", "since", "until", "resource")


def _filter() -> AuditFilter:
    args = request.args
    door, outcome = args.get("door", ""), args.get("outcome", "")
    if door and door not in DOORS:
        raise BadRequest(f"door must be one of {', '.join(DOORS)}")
    if outcome and outcome not in OUTCOMES:
        raise BadRequest(f"outcome must be one of {', '.join(OUTCOMES)}")
    since, until = optional_date("since", args), optional_date("until", args)
    return AuditFilter(
        user=args.get("user", "").strip()[:254] or None,
        licence=optional_id("licence", args),
        door=door or None,
        action=args.get("action", "").strip()[:32] or None,
        outcome=outcome or None,
        since=datetime.combine(since, datetime.min.time()) if since else None,
        until=datetime.combine(until + timedelta(days=1), datetime.min.time())
        if until else None,
        resource=args.get("resource", "").strip()[:200] or None,
    )


@page("/desk/audit", Action.READ_AUDIT, nav="Audit", roles={Role.ADMIN, Role.CURATOR},
      order=74)
def audit() -> tuple[str, int]:
    """A page of the audit trail, newest first; ``before`` pages back."""
    where = _filter()
    before = optional_id("before", request.args)
    svc = services()
    if svc.audit is not None:
        svc.audit.flush(timeout=1.0)  # this process's own recent events, if still queued
    with svc.sessions() as session:
        found = browse_events(session, where, before=before, limit=PAGE)
    kept: dict[str, Any] = {k: request.args[k] for k in FILTERS if request.args.get(k)}
    older = url_for("ui.audit", before=found.older, **kept) if found.older else None
    newest = url_for("ui.audit", **kept) if request.args.get("before") else None
    return render("ui/desk/audit.html", events=found.events, args=kept, older=older,
                  newest=newest, csv_url=url_for("ui.audit_csv", **kept), doors=DOORS,
                  outcomes=OUTCOMES,
                  actions=[a.value for a in Action] + ["c-find", "c-move", "c-get"])


@page("/desk/audit.csv", Action.READ_AUDIT)
def audit_csv() -> Response:
    """The matching events as CSV, newest first (at most :data:`CSV_LIMIT`), streamed."""
    where = _filter()
    sessions = services().sessions

    def rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(("id", *FIELDS))
        before, sent = None, 0
        while sent < CSV_LIMIT:
            with sessions() as session:
                found = browse_events(session, where, before=before, limit=1000)
            for pk, event in found.events:
                doc = event.to_json()
                writer.writerow((pk, *(doc[name] for name in FIELDS)))
            sent += len(found.events)
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if found.older is None:
                return
            before = found.older

    response = Response(rows(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="audit.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response
