"""Form helpers shared by the dashboard's working pages (requests, the curator's desk).

Every change is a POST that redirects to a GET page (POST-redirect-GET), which says what
happened through a fixed message key (``?done=released``), never through text taken from
the request. Destructive actions (revoking a licence or a token, purging a quarantined
file) go through a confirmation page first: a form that says what will happen and posts
``confirm=yes``; a POST without it is refused. That works without JavaScript and reads
well with a screen reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Final

from flask import redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from omipacs.errors import BadRequest
from omipacs.web.ui.blueprint import render

NOTICES: Final[dict[str, str]] = {
    "submitted": "Your request has been submitted to the steering committee.",
    "resubmitted": "Your answer has been sent; the request waits for the committee again.",
    "decided": "The decision has been recorded.",
    "user-added": "The user has been added; issue them a token to sign in with.",
    "user-disabled": "The user has been disabled and their tokens revoked.",
    "licence-created": "The licence has been created.",
    "licence-state": "The licence's state has been changed.",
    "member-added": "The user may now work under this licence.",
    "token-revoked": "The token has been revoked.",
    "released": "The instance has been released into the archive.",
    "purged": "The held file has been deleted.",
}


def notice() -> str:
    """The message of the ``done`` key the last redirect carried (empty if none)."""
    return NOTICES.get(request.args.get("done", ""), "")


def done(endpoint: str, key: str, **values: Any) -> BaseResponse:
    """Redirect (303) to ``endpoint`` saying ``key`` happened."""
    assert key in NOTICES
    return redirect(url_for(endpoint, done=key, **values), code=303)


def text(name: str, *, required: bool = False, limit: int = 20_000) -> str:
    """A text field, stripped; BadRequest naming it when required and empty."""
    value = request.form.get(name, "").strip()
    if required and not value:
        raise BadRequest(f"{name.replace('_', ' ')} is required")
    if len(value) > limit:
        raise BadRequest(f"{name.replace('_', ' ')} is longer than {limit} characters")
    return value


def optional_date(name: str, source: Mapping[str, str] | None = None) -> date | None:
    """A date field (YYYY-MM-DD, as ``<input type=date>`` sends it), or None when empty.

    From the posted form, or from ``source`` (``request.args`` for a filter form).
    """
    value = (request.form if source is None else source).get(name, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD)") from None


def optional_id(name: str, source: Mapping[str, str] | None = None) -> int | None:
    """A numeric ID field (a select's value), or None when empty (see :func:`optional_date`).
    """
    value = (request.form if source is None else source).get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise BadRequest(f"{name.replace('_', ' ')} must be an ID")
    return int(value)


def confirmed() -> bool:
    """Whether the POST came from a confirmation page."""
    return request.form.get("confirm") == "yes"


def confirmation(
    title: str, question: str, action: str, button: str, back: str,
    fields: dict[str, str] | None = None,
) -> tuple[str, int]:
    """A page asking to confirm a destructive action: it posts ``confirm=yes`` and
    ``fields`` to ``action``, or goes ``back``."""
    return render("ui/desk/confirm.html", title=title, question=question, action=action,
                  button=button, back=back, fields=fields or {})
