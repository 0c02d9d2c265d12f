"""Run a QIDO-RS search on the index and format the matches as DICOM JSON.

One ``SELECT`` per page: the row, its parents (joined), the computed attributes as
correlated subqueries (counts, distinct values below the row), ordered so that paging
is stable, with ``LIMIT limit + 1`` so that one extra row tells whether more matches
exist (the web layer then adds PS3.18 §8.3.4.4's ``Warning: 299``). The total is
counted only on request, since a ``COUNT`` over a large index costs as much as the
search itself.

Ordering: patients by Patient ID; studies newest first (StudyDate, StudyTime, then
newest stored); series by SeriesNumber; instances by InstanceNumber; each within its
parent's order when the search spans parents, and always ending with the primary key,
so that two rows never tie and every row appears on exactly one page.

Access control is the caller's ``restrict`` visibility
(:class:`omipacs.index.visibility.Visibility`): its condition is ANDed into the same
``WHERE`` as the matching keys, so no key (a UID list naming a foreign study, a wild
card) can reach past it, and every subquery below the row (counts, computed lists, keys
of lower levels) sees only the visible instances.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, String, cast, func, literal, select
from sqlalchemy.orm import Session

from omipacs.index.models import Instance, Patient, Series, Study
from omipacs.index.visibility import InstanceCondition, Visibility
from omipacs.query import matching
from omipacs.query.attributes import Attribute, Level, leaves, rank, shallower
from omipacs.query.params import QidoQuery
from omipacs.query.results import element_json, sequence_json

_TABLES = {
    "patient": (Patient.__table__,),
    "study": (Study.__table__, Patient.__table__),
    "series": (Series.__table__, Study.__table__, Patient.__table__),
    "instance": (Instance.__table__, Series.__table__, Study.__table__, Patient.__table__),
}


@dataclass(frozen=True)
class QidoResult:
    """One page of matches.

    Attributes
    ----------
    items
        DICOM JSON objects (PS3.18 Annex F), keys in tag order.
    truncated
        More matches exist beyond this page.
    total
        The number of matches on all pages, when it was asked for.
    """

    items: list[dict[str, Any]]
    truncated: bool
    total: int | None = None


@dataclass(frozen=True)
class _Output:
    """How one returned attribute is read from a result row."""

    attribute: Attribute
    start: int
    width: int
    aggregated: bool


def _base(select_: Select[Any], level: Level) -> Select[Any]:
    """Join the row with its parents (each has exactly one)."""
    if level == "patient":
        return select_.select_from(Patient)
    if level == "study":
        return select_.select_from(Study).join(Patient, Study.patient_pk == Patient.pk)
    if level == "series":
        return (
            select_.select_from(Series)
            .join(Study, Series.study_pk == Study.pk)
            .join(Patient, Study.patient_pk == Patient.pk)
        )
    return (
        select_.select_from(Instance)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
    )


def _order(query: QidoQuery, dialect: str) -> list[Any]:
    # Times are text; order them bytewise on PostgreSQL too, as SQLite does.
    time = Study.study_time.collate("C") if dialect == "postgresql" else Study.study_time
    study = [Study.study_date.desc().nulls_last(), time.desc(), Study.pk.desc()]
    series = [Series.series_number.asc().nulls_last(), Series.pk.asc()]
    instance = [Instance.instance_number.asc().nulls_last(), Instance.pk.asc()]
    if query.level == "patient":
        return [Patient.patient_id.asc(), Patient.pk.asc()]
    if query.level == "study":
        return study
    spans_studies = query.study_uid is None and query.series_uid is None
    if query.level == "series":
        return [*(study if spans_studies else []), *series]
    return [
        *(study if spans_studies else []),
        *(series if query.series_uid is None else []),
        *instance,
    ]


def _aggregate(attr: Attribute, anchor: Level, visible: InstanceCondition | None) -> Any:
    """The distinct non-empty values of ``attr`` under the anchor row, joined by
    ``\\`` (string_agg on PostgreSQL, group_concat on SQLite)."""
    tree = matching.subtree(anchor, attr.source, visible)
    value = matching.column_in(attr.column, {**matching.OUTER[anchor], **tree.tables})
    present = [value.is_not(None)]
    if matching.is_text(value):
        present.append(value != "")
    distinct = (
        select(cast(value, String).label("v"))
        .select_from(tree.from_)
        .where(tree.link, *present)
        .distinct()
        .correlate(tree.anchor)
        .subquery()
    )
    return select(func.aggregate_strings(distinct.c.v, "\\")).scalar_subquery()


def _columns(
    attr: Attribute, level: Level, visible: InstanceCondition | None
) -> tuple[list[Any], bool, Hashable]:
    """Expressions to select for ``attr`` at ``level``, whether they are aggregates, and
    what they compute (two attributes computing the same thing share one expression)."""
    if attr.constant is not None:
        return [], False, None
    if attr.count is not None:
        return [matching.count_expression(attr, visible)], False, ("count", attr.level, attr.count)
    if attr.items:
        return [path[-1].column for path in leaves(attr)], False, None
    anchor = shallower(level, attr.level)
    if rank(attr.source) <= rank(anchor):
        return [attr.column], False, ("column", attr.column)
    # ModalitiesInStudy and Modality asked for at study level (as OHIF does) are the same
    # list of the study's modalities: computed once.
    return [_aggregate(attr, anchor, visible)], True, ("aggregate", attr.column, anchor)


@dataclass(frozen=True)
class _Plan:
    """The select list of a search, joined with the row's parents; built once for each
    level, set of returned attributes and instance condition, and reused."""

    base: Select[Any]
    outputs: tuple[_Output, ...]


@functools.lru_cache(maxsize=512)
def _plan(
    level: Level, fields: tuple[Attribute, ...], visible: InstanceCondition | None
) -> _Plan:
    """The columns of a search at ``level`` returning ``fields``.

    Cached: the expressions depend only on the arguments (never on matching values),
    and building them (fresh aliases for every correlated subquery, each visible-instance
    condition) cost more than running the query's index lookups. A licence's condition
    is built once per licence grant (:func:`omipacs.access.policy.licence_visibility`),
    so its plans are reused like the whole archive's.
    """
    exprs: list[Any] = []
    outputs: list[_Output] = []
    computed: dict[Hashable, tuple[int, int]] = {}
    for attr in fields:
        cols, aggregated, what = _columns(attr, level, visible)
        if what is not None and what in computed:
            start, width = computed[what]
        else:
            start, width = len(exprs), len(cols)
            exprs.extend(cols)
            if what is not None:
                computed[what] = (start, width)
        outputs.append(_Output(attr, start, width, aggregated))
    if not exprs:  # pragma: no cover - the unique key is always returned
        exprs.append(literal(1))
    return _Plan(_base(select(*exprs), level), tuple(outputs))


def _format(row: Sequence[Any], outputs: Sequence[_Output]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for o in outputs:
        values = row[o.start : o.start + o.width]
        if o.attribute.items:
            out[o.attribute.key] = sequence_json(o.attribute, values)
        else:
            value = values[0] if values else None
            out[o.attribute.key] = element_json(o.attribute, value, aggregated=o.aggregated)
    return dict(sorted(out.items()))


@functools.lru_cache(maxsize=256)
def _check_restrict(restrict: ColumnElement[bool], level: Level) -> None:
    """Refuse a restriction on tables the query does not join: it would be a cross
    join, and a single row passing it would let every row through. (Checked once for
    each condition: a licence's is reused for every request under it.)"""
    allowed = set(_TABLES[level])
    froms = select(literal(1)).where(restrict).get_final_froms()
    foreign = [f for f in froms if f not in allowed]
    if foreign:
        raise ValueError("restrict may only use the tables of the searched level and above")


def where(
    query: QidoQuery, *, dialect: str, restrict: Visibility | None = None
) -> list[ColumnElement[bool]]:
    """Every condition of the search, access restriction included."""
    visible = restrict.instance if restrict is not None else None
    conds = matching.conditions(query, dialect=dialect, visible=visible)
    condition = restrict.at(query.level) if restrict is not None else None
    if condition is not None:
        _check_restrict(condition, query.level)
        conds.append(condition)
    return conds


def search(
    session: Session,
    query: QidoQuery,
    *,
    restrict: Visibility | None = None,
    count_total: bool = False,
) -> QidoResult:
    """One page of the matches of ``query``, as DICOM JSON.

    Parameters
    ----------
    session
        An open session on the index.
    query
        From :func:`omipacs.query.params.parse_qido`.
    restrict
        What the caller may see (access control: a cohort's studies, a licence's data
        types); None for the whole archive.
    count_total
        Also count every match (one more query).
    """
    dialect = session.get_bind().dialect.name
    conds = where(query, dialect=dialect, restrict=restrict)
    plan = _plan(query.level, query.fields, restrict.instance if restrict is not None else None)
    outputs = plan.outputs
    stmt = (
        plan.base.where(*conds)
        .order_by(*_order(query, dialect))
        .limit(query.limit + 1)
        .offset(query.offset)
    )
    rows = session.execute(stmt).all()
    truncated = len(rows) > query.limit
    items = [_format(tuple(row), outputs) for row in rows[: query.limit]]
    total = None
    if count_total:
        total = int(session.scalar(_base(select(func.count()), query.level).where(*conds)) or 0)
    return QidoResult(items, truncated, total)
