"""``GET /api/v1/changes``: the change feed, for admins and curators.

A thin view over :mod:`omipacs.index.changes`. A client keeps the ``next`` of each
answer and asks again from it; ``more`` says whether it should ask at once.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from omipacs.index.changes import MAX_LIMIT, changes_since, current_sequence, parse_cursor
from omipacs.web.api import _json
from omipacs.web.context import services

bp = Blueprint("changes", __name__)


@bp.get("/changes")
def list_changes() -> Response:
    since, limit = parse_cursor(request.args.get("since"), request.args.get("limit"))
    with services().sessions() as session:
        found = changes_since(session, since, limit)
        current = current_sequence(session)
    return _json(
        {
            "since": since,
            "next": found[-1].seq if found else max(since, 0),
            "current": current,
            "more": bool(found) and found[-1].seq < current,
            "limit": min(limit, MAX_LIMIT),
            "changes": [c.to_dict() for c in found],
        }
    )
