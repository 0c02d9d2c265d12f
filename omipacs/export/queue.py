"""Release batches through procrastinate, a PostgreSQL-backed task queue.

With a PostgreSQL index, ``omipacs release create`` plans the release and defers one
job per batch; ``omipacs release worker`` processes, on this machine or any other that
reaches PostgreSQL, the blob store and the destination, take the jobs. The job is the
same :func:`omipacs.export.release.copy_batch` that runs in-process on SQLite; the worker
that marks the last batch done writes the manifest. Jobs carry only the release and
batch numbers and the destination URL: each worker takes credentials and endpoint
options from its own configuration and environment, so no secret is written to the
queue.

procrastinate keeps its jobs in its own tables (``procrastinate_*``), created on first
use with its own schema migration.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import Engine, text

from omipacs.errors import ConfigurationError
from omipacs.export.destination import Destination, RateLimit
from omipacs.export.release import copy_batch, finish
from omipacs.services import Services

log = logging.getLogger(__name__)

QUEUE: Final = "omipacs-releases"
TASK: Final = "omipacs.release.copy_batch"


class _Worker:
    """What a worker process was started with (set by :func:`run_worker`)."""

    services: Services | None = None
    options: dict[str, Any] = {}
    threads: int = 4
    limit: RateLimit = RateLimit()


def conninfo(engine: Engine) -> str:
    """The libpq connection string of the index (procrastinate speaks psycopg)."""
    if engine.dialect.name != "postgresql":
        raise ConfigurationError("the release queue needs a PostgreSQL index")
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(engine: Engine) -> Any:
    """A procrastinate App on the index's database, with the batch task registered."""
    try:
        import procrastinate
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConfigurationError(
            "the release queue needs procrastinate: pip install 'omipacs[queue]'"
        ) from None
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(engine)))
    app.task(name=TASK, queue=QUEUE, retry=3)(_copy_batch_job)
    return app


def _copy_batch_job(release_pk: int, batch: int, url: str) -> None:
    services = _Worker.services
    if services is None:
        raise RuntimeError("release jobs run in an `omipacs release worker` process")
    dest = Destination(url, _Worker.options)
    last = copy_batch(services, release_pk, batch, dest, threads=_Worker.threads,
                      limit=_Worker.limit)
    log.info("copied batch %s of release %s", batch, release_pk)
    if last:
        info = finish(services, release_pk, dest)
        log.info("release %s of licence %s complete", info.number, info.licence_id)


def ensure_schema(engine: Engine, app: Any) -> None:
    """Create procrastinate's tables once (under an advisory lock: many workers start)."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(7365727)"))
        found = conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar()
        if found is None:
            # procrastinate's schema is one SQL script; run it in this locked transaction.
            # Through the driver's own cursor, with no parameters: the script holds "%".
            raw: Any = conn.connection.driver_connection
            with raw.cursor() as cur:
                cur.execute(app.schema_manager.get_schema())


def defer_batches(services: Services, release_pk: int, batches: list[int], url: str) -> None:
    """Queue one job per pending batch of a release."""
    app = make_app(services.engine)
    ensure_schema(services.engine, app)
    with app.open():
        task = app.tasks[TASK]
        for number in batches:
            task.defer(release_pk=release_pk, batch=number, url=url)


def run_worker(
    services: Services,
    options: Mapping[str, Any],
    *,
    threads: int = 4,
    limit: RateLimit | None = None,
    wait: bool = True,
    name: str | None = None,
) -> None:
    """Take release jobs until stopped (``wait=False``: until the queue is empty)."""
    _Worker.services = services
    _Worker.options = dict(options)
    _Worker.threads = max(1, threads)
    _Worker.limit = limit or RateLimit()
    app = make_app(services.engine)
    ensure_schema(services.engine, app)
    app.run_worker(queues=[QUEUE], wait=wait, concurrency=1, name=name,
                   install_signal_handlers=True)
