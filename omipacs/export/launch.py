"""Starting a release from a request: plan and copy in the background, or queue it.

``POST /api/v1/licences/{id}/releases`` must answer at once (202), so the work goes on
after the response: through procrastinate when ``[release] queue = "procrastinate"``
(workers anywhere take the batches), otherwise in a background thread of the process
that took the request. Either way the ``release`` row shows the state and progress, and
a release stopped by a restart is resumed by asking again (or by ``omipacs release
create`` with the same licence and URL).
"""

from __future__ import annotations

import logging
import threading

from omipacs.errors import BadRequest
from omipacs.export import release as releases
from omipacs.export.destination import Destination, RateLimit, check_place
from omipacs.services import Services

log = logging.getLogger(__name__)


def start(
    services: Services, licence_id: int, url: str, *, full: bool = False,
    check: str = "sha256",
) -> releases.ReleaseInfo:
    """Create (or resume) the release of ``licence_id`` at ``url`` and start its work
    (``full``: compare every file instead of reading the change feed)."""
    settings = services.settings.release
    queued = settings.queue == "procrastinate"
    if queued and services.engine.dialect.name != "postgresql":
        raise BadRequest("[release] queue = procrastinate needs a PostgreSQL index")
    if "://" in url and not url.startswith(("s3://", "gs://", "gcs://", "file://")):
        raise BadRequest("a release goes to a folder, s3://bucket/prefix or gs://bucket/prefix")
    check_place(url, settings.allowed_roots, services.settings.storage.root, over_http=True)
    dest = Destination(url, settings.options)
    with services.write_sessions.begin() as session:
        row, _new = releases.begin(session, licence_id, url, full=full, check=check)
        release_pk, number = row.pk, row.number

    def work() -> None:
        try:
            if queued:
                from omipacs.export import queue

                releases.plan(services, release_pk, dest)
                pending = releases.pending_batches(services, release_pk)
                if pending:
                    queue.defer_batches(services, release_pk, pending, dest.url)
                else:
                    releases.finish(services, release_pk, dest)
            else:
                releases.run_here(services, release_pk, dest, workers=settings.workers,
                                  limit=RateLimit(settings.max_bytes_per_second))
        except Exception as exc:  # recorded on the row; the request has been answered
            releases.fail(services, release_pk, f"{type(exc).__name__}: {exc}")
            log.exception("release %s of licence %s stopped", number, licence_id)

    threading.Thread(target=work, name=f"release-{licence_id}-{number}", daemon=True).start()
    with services.sessions() as session:
        return releases.get_release(session, licence_id, number)
