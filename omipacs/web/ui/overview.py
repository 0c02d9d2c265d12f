"""The overview: the brochure's tables and the first distributions, as charts.

The brochure's three tables come from :func:`omipacs.clinical.stats.stats` (the tally:
cheap at any size) and are drawn with the page; each distribution
(:mod:`omipacs.annotations.distributions`) is a grouped query over the index, so it is
fetched by the page afterwards (htmx) from its own endpoint and kept for
:data:`CACHE_SECONDS` per licence. Every chart has its numbers as a table (for screen
readers and for copying) and as CSV (``/ui/charts/<name>.csv``); the browser exports
the picture as PNG or SVG.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Final

from flask import Response

from omipacs.access.policy import Action
from omipacs.access.scopes import Scope
from omipacs.annotations import distributions
from omipacs.annotations.distributions import Distribution
from omipacs.clinical.models import Client
from omipacs.clinical.stats import StatsTable, stats
from omipacs.errors import NotFound
from omipacs.web.api import stats_tables
from omipacs.web.context import decision, restriction, services
from omipacs.web.ui import licence
from omipacs.web.ui.blueprint import page, render

CACHE_SECONDS: Final = 60.0
"""How long a distribution is reused (per chart and licence)."""
BROCHURE: Final = ("2d", "3d", "marked")
_cache: dict[tuple[str, int | None, bool], tuple[float, Distribution]] = {}
_lock = threading.Lock()


def _brochure(table: StatsTable) -> Distribution:
    rows = tuple((str(r["label"]), int(r["cases"])) for r in table.rows())
    title = "Marked cases" if table.name == "marked" else f"Cases with {table.title}"
    return Distribution(table.name, title, "outcome", "cases", rows)


def available() -> list[str]:
    """The charts this caller may see, in page order."""
    d = decision()
    names: list[str] = [n for n in BROCHURE if n in stats_tables()]
    names += ["age", "year", "manufacturer"]
    if d.has(Scope.DENSITY):
        names.append("density")
    if d.has(Scope.MARKS):
        names.append("lesion-types")
    names.append("grades")
    return names


def compute(name: str) -> Distribution:
    """One chart's numbers for this caller (404 for a chart they may not see)."""
    if name not in available():
        raise NotFound("no such chart")
    d = decision()
    clients = d.client_condition(Client.client_id)
    if name in BROCHURE:
        with services().sessions() as session:
            tables = stats(session, clients=clients, tables=stats_tables())
        return _brochure(next(t for t in tables.tables if t.name == name))
    key = (name, d.licence.id if d.licence else None, d.licence is None)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    with services().sessions() as session:
        if name in distributions.STUDY_LEVEL:
            found = distributions.STUDY_LEVEL[name](session, restriction())
        else:
            found = distributions.CLIENT_LEVEL[name](session, clients)
    with _lock:
        if len(_cache) > 4096:
            _cache.clear()
        _cache[key] = (now + CACHE_SECONDS, found)
    return found


def card(chart: Distribution) -> dict[str, Any]:
    """What the chart template needs."""
    return {"chart": chart, "data": json.dumps(chart.to_dict())}


@page("/", Action.READ_STATS, nav="Overview", order=10)
def overview() -> tuple[str, int]:
    d = decision()
    clients = d.client_condition(Client.client_id)
    with services().sessions() as session:
        tables = stats(session, clients=clients, tables=stats_tables())
    shown = stats_tables()
    cards = [card(_brochure(t)) for t in tables.tables if t.name in shown]
    lazy = [n for n in available() if n not in BROCHURE]
    return render("ui/overview.html", cards=cards, lazy=lazy, clients=tables.clients,
                  licence=licence.current())


@page("/charts/<name>", Action.READ_STATS)
def chart(name: str) -> tuple[str, int]:
    return render("ui/_chart.html", **card(compute(name)))


@page("/charts/<name>.csv", Action.READ_STATS)
def chart_csv(name: str) -> Response:
    found = compute(name)
    return Response(found.to_csv(), content_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{found.name}.csv"'})
