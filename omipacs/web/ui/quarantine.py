"""The quarantine on the curator's desk: why each instance is held, what it is, its
pixels, and releasing or purging it (curators and admins: the ``ingest`` action).

A held file is the one received, identifiable (see :mod:`omipacs.ingest.quarantine`):
the page shows only the allow-listed header summary of :mod:`omipacs.retrieve.review` and
the rendered pixels, which the curator must see to judge them. The preview is served
with ``Cache-Control: no-store`` (no browser or proxy keeps a copy) and, like every
request, leaves an audit record naming who looked at which entry; so do a release and
a purge. Entries are named by their random quarantine ID, never by a UID.
"""

from __future__ import annotations

import re
import time

from flask import Response, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from omipacs.access.policy import Action, Role
from omipacs.errors import BadRequest, NotFound, OmipacsError
from omipacs.ingest.quarantine import Quarantine, QuarantineEntry
from omipacs.retrieve.review import PREVIEW_SIDE, frames_of, header_summary, preview
from omipacs.web.context import services
from omipacs.web.ui import forms
from omipacs.web.ui.blueprint import page, render

CURATORS = {Role.ADMIN, Role.CURATOR}
_ENTRY_ID = re.compile(r"^[0-9a-f]{32}$")


def _quarantine() -> Quarantine:
    return Quarantine(services().settings.storage.root)


def _entry(entry_id: str) -> tuple[Quarantine, QuarantineEntry]:
    if not _ENTRY_ID.match(entry_id):
        raise NotFound("no such quarantine entry")
    held = _quarantine()
    return held, held.get(entry_id)


def held_at(entry: QuarantineEntry) -> str:
    """When the entry was held, in UTC."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(entry.held_at))


@page("/desk/quarantine", Action.INGEST, nav="Quarantine", roles=CURATORS, order=72)
def quarantine() -> tuple[str, int]:
    """Every held instance, oldest first (the order they expire in)."""
    held = _quarantine()
    entries = held.entries()
    retention = services().settings.deid.quarantine_retention_days
    return render("ui/desk/quarantine.html", entries=entries, held_at=held_at,
                  retention=retention, notice=forms.notice())


@page("/desk/quarantine/<entry_id>", Action.INGEST)
def quarantine_entry(entry_id: str) -> tuple[str, int]:
    """One entry: reason, origin, header summary, the pixels, release and purge."""
    held, entry = _entry(entry_id)
    path = held.path(entry.id)
    try:
        summary, frames = header_summary(path), frames_of(path)
    except OmipacsError as exc:  # still offered for purging: say why it cannot be shown
        summary, frames, unreadable = [], 0, exc.reason
    else:
        unreadable = ""
    return render("ui/desk/quarantine_entry.html", entry=entry, held_at=held_at(entry),
                  summary=summary, frames=frames, frame=_frame(frames), unreadable=unreadable)


def _frame(frames: int) -> int:
    value = request.args.get("frame", "1")
    if not value.isdigit() or len(value) > 6:
        raise BadRequest("frame must be a frame number")
    return max(1, min(int(value), max(frames, 1)))


@page("/desk/quarantine/<entry_id>/preview.png", Action.INGEST)
def quarantine_preview(entry_id: str) -> Response:
    """The held pixels as PNG (``?frame=N&size=S``), never cached."""
    held, entry = _entry(entry_id)
    path = held.path(entry.id)
    size = request.args.get("size", str(PREVIEW_SIDE))
    if not size.isdigit() or len(size) > 5:
        raise BadRequest("size must be a number of pixels")
    png = preview(path, _frame(frames_of(path)), int(size))
    response = Response(png, mimetype="image/png")
    response.headers["Cache-Control"] = "no-store, private"
    return response


@page("/desk/quarantine/<entry_id>/release", Action.INGEST, methods=("POST",))
def release_entry(entry_id: str) -> BaseResponse:
    """File the entry (its pixels were reviewed); its header is de-identified as usual."""
    held, entry = _entry(entry_id)
    held.release(entry.id, services().pipeline.ingest_file)
    return forms.done("ui.quarantine", "released")


@page("/desk/quarantine/<entry_id>/purge", Action.INGEST, methods=("POST",))
def purge_entry(entry_id: str) -> BaseResponse | tuple[str, int]:
    """Delete the held file for good (after confirmation)."""
    held, entry = _entry(entry_id)
    if not forms.confirmed():
        return forms.confirmation(
            "Purge a held instance",
            f"Delete the held file {entry.id[:8]}… ({entry.reason}) for good? It cannot be "
            "released afterwards; the sender would have to send it again.",
            url_for("ui.purge_entry", entry_id=entry.id), "Purge it",
            url_for("ui.quarantine_entry", entry_id=entry.id))
    held.purge(entry.id)
    return forms.done("ui.quarantine", "purged")
