"""SQL conditions for QIDO-RS matching keys (PS3.4 C.2.2.2), on SQLite and PostgreSQL.

Every value reaches the database as a bound parameter. Wild card patterns are
translated character by character, so only ``*`` and ``?`` are wild: on PostgreSQL
into ``LIKE`` with ``%``, ``_`` and the escape character escaped; on SQLite into
``GLOB`` (with ``[`` escaped), because SQLite's ``LIKE`` ignores case and DICOM matching
is case-sensitive for every VR but PN. Person names are matched on the upper-cased
``*_search`` columns with an upper-cased value, so both databases fold case alike.

A query at one level joins its row with the rows above it (an instance with its series,
study and patient), so higher-level keys are plain column conditions. Keys of lower
levels become one ``EXISTS`` over the rows below: ``/studies?ImageLaterality=L&
ViewPosition=MLO`` finds studies with one left MLO image, not a left image and an MLO
one. Computed study attributes (ModalitiesInStudy, SOPClassesInStudy) each get their
own ``EXISTS``, the counts a correlated ``COUNT``. Subqueries read aliased tables, so
the rows they range over are always the children of the row being matched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.orm import aliased, join

from omipacs.index.models import Instance, Patient, Series, Study
from omipacs.index.visibility import InstanceCondition
from omipacs.query.attributes import Attribute, Level, rank, shallower
from omipacs.query.params import Between, Equals, Filter, QidoQuery, Term, Wildcard

LIKE_ESCAPE = "!"
_FUZZY_SPLIT = re.compile(r"[\s^=]+")

#: The models joined into a query at each level: the row and everything above it.
OUTER: Mapping[Level, Mapping[str, Any]] = {
    "patient": {"patient": Patient},
    "study": {"patient": Patient, "study": Study},
    "series": {"patient": Patient, "study": Study, "series": Series},
    "instance": {"patient": Patient, "study": Study, "series": Series, "instance": Instance},
}


@dataclass(frozen=True)
class Subtree:
    """Aliased tables below an anchor row, joined, and how they hang from it."""

    tables: Mapping[str, Any]
    from_: Any
    link: ColumnElement[bool]
    anchor: Any


_MODELS: Mapping[Level, Any] = {
    "patient": Patient,
    "study": Study,
    "series": Series,
    "instance": Instance,
}
_BELOW: tuple[Level, ...] = ("study", "series", "instance")


def _parent_key(alias: Any, level: Level) -> Any:
    """The column of a row at ``level`` naming its parent."""
    return getattr(
        alias, {"study": "patient_pk", "series": "study_pk", "instance": "series_pk"}[level]
    )


def _visible_below(alias: Any, level: Level, visible: InstanceCondition) -> ColumnElement[bool]:
    """The row ``alias`` (a series or study) has at least one visible instance."""
    i = aliased(Instance)
    if level == "series":
        from_: Any = i
        link = i.series_pk == alias.pk
    else:
        s = aliased(Series)
        from_ = join(i, s, i.series_pk == s.pk)
        link = s.study_pk == alias.pk
    return select(literal(1)).select_from(from_).where(link, visible(i)).correlate(alias).exists()


def subtree(anchor: Level, source: Level, visible: InstanceCondition | None = None) -> Subtree:
    """The rows from one level below ``anchor`` down to ``source``, as fresh aliases.

    With ``visible`` (the caller's instance condition, see
    :class:`omipacs.index.visibility.Visibility`) only visible instances, and series,
    studies holding at least one, are in the subtree.
    """
    if rank(source) <= rank(anchor):
        raise ValueError("the source of a subquery must be below its anchor")
    levels = [lvl for lvl in _BELOW if rank(anchor) < rank(lvl) <= rank(source)]
    tables: dict[str, Any] = {lvl: aliased(_MODELS[lvl]) for lvl in levels}
    from_: Any = tables[levels[0]]
    for parent, child in zip(levels, levels[1:], strict=False):
        from_ = join(tables[child], from_, _parent_key(tables[child], child) == tables[parent].pk)
    top = _MODELS[anchor]
    link = _parent_key(tables[levels[0]], levels[0]) == top.pk
    if visible is not None:
        deepest = levels[-1]
        seen = (
            visible(tables["instance"])
            if deepest == "instance"
            else _visible_below(tables[deepest], deepest, visible)
        )
        link = and_(link, seen)
    return Subtree(tables, from_, link, top)


def column_in(column: Any, tables: Mapping[str, Any]) -> Any:
    """``column`` (a model attribute) read from ``tables`` (models or their aliases)."""
    return getattr(tables[column.class_.__tablename__], column.key)


def count_expression(attr: Attribute, visible: InstanceCondition | None = None) -> Any:
    """Correlated COUNT of the rows a Number of ... Related ... attribute counts."""
    assert attr.count is not None
    tree = subtree(attr.level, attr.count, visible)
    return (
        select(func.count())
        .select_from(tree.from_)
        .where(tree.link)
        .correlate(tree.anchor)
        .scalar_subquery()
    )


def like_pattern(pattern: str) -> str:
    """A DICOM wild card pattern as a LIKE pattern with :data:`LIKE_ESCAPE`."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in ("%", "_", LIKE_ESCAPE):
            out.append(LIKE_ESCAPE + ch)
        else:
            out.append(ch)
    return "".join(out)


def glob_pattern(pattern: str) -> str:
    """A DICOM wild card pattern as an SQLite GLOB pattern (``[`` is GLOB's only other
    special character; ``*`` and ``?`` mean the same)."""
    return pattern.replace("[", "[[]")


def wildcard(expr: Any, pattern: str, dialect: str) -> ColumnElement[bool]:
    """Case-sensitive wild card match of ``expr`` on either database."""
    if dialect == "sqlite":
        result: ColumnElement[bool] = expr.op("GLOB", is_comparison=True)(glob_pattern(pattern))
        return result
    return expr.like(like_pattern(pattern), escape=LIKE_ESCAPE)  # type: ignore[no-any-return]


def _fuzzy_name(expr: Any, value: str, dialect: str) -> ColumnElement[bool]:
    """Each word of ``value`` begins a component (or word) of the name."""
    words = [w for w in _FUZZY_SPLIT.split(value.upper()) if w]
    if not words:
        return true()
    return and_(
        *(
            or_(*(wildcard(expr, f"{lead}{w}*", dialect) for lead in ("", "*^", "* ", "*=")))
            for w in words
        )
    )


def _any_value(expr: Any, pattern: str, dialect: str) -> ColumnElement[bool]:
    """Match one value of a multi-valued column stored joined by ``\\``."""
    return or_(
        *(
            wildcard(expr, p, dialect)
            for p in (pattern, pattern + "\\*", "*\\" + pattern, "*\\" + pattern + "\\*")
        )
    )


def term_condition(
    attr: Attribute, expr: Any, term: Term, *, dialect: str, fuzzy: bool
) -> ColumnElement[bool]:
    """The condition one matching term puts on ``expr`` (already the right column)."""
    if isinstance(term, Between):
        if attr.vr == "TM":  # compare time strings bytewise, whatever the collation
            expr = expr.collate("C") if dialect == "postgresql" else expr
            conds = [expr != ""]
        else:
            conds = []
        if term.low is not None:
            conds.append(expr >= term.low)
        if term.high is not None:
            conds.append(expr <= term.high)
        return and_(*conds)
    if attr.vr == "PN":
        text = str(term.value if isinstance(term, Equals) else term.pattern).upper()
        if fuzzy and isinstance(term, Equals):
            return _fuzzy_name(expr, text, dialect)
        return wildcard(expr, text, dialect) if isinstance(term, Wildcard) else expr == text
    if attr.multi:
        pattern = term.pattern if isinstance(term, Wildcard) else str(term.value)
        return _any_value(expr, pattern, dialect)
    if isinstance(term, Wildcard):
        return wildcard(expr, term.pattern, dialect)
    result: ColumnElement[bool] = expr == term.value
    return result


def match_expression(
    attr: Attribute, tables: Mapping[str, Any], visible: InstanceCondition | None = None
) -> Any:
    """The column a key is compared with: the upper-cased copy for person names."""
    if attr.count is not None:
        return count_expression(attr, visible)
    if attr.vr == "PN":
        if attr.search_column is not None:
            return column_in(attr.search_column, tables)
        return func.upper(column_in(attr.column, tables))
    return column_in(attr.column, tables)


def filter_condition(
    f: Filter,
    tables: Mapping[str, Any],
    *,
    dialect: str,
    fuzzy: bool,
    visible: InstanceCondition | None = None,
) -> ColumnElement[bool]:
    """The condition of one matching key, reading columns from ``tables``."""
    expr = match_expression(f.attribute, tables, visible)
    if f.uids:
        return expr.in_(f.uids) if len(f.uids) > 1 else expr == f.uids[0]  # type: ignore[no-any-return]
    if not f.terms:
        return true()
    conds = [term_condition(f.attribute, expr, t, dialect=dialect, fuzzy=fuzzy) for t in f.terms]
    return conds[0] if len(conds) == 1 else or_(*conds)


def _exists(
    filters: Sequence[Filter],
    anchor: Level,
    source: Level,
    *,
    dialect: str,
    fuzzy: bool,
    visible: InstanceCondition | None,
) -> ColumnElement[bool]:
    tree = subtree(anchor, source, visible)
    tables = {**OUTER[anchor], **tree.tables}
    conds = [filter_condition(f, tables, dialect=dialect, fuzzy=fuzzy) for f in filters]
    return (
        select(literal(1))
        .select_from(tree.from_)
        .where(tree.link, *conds)
        .correlate(tree.anchor)
        .exists()
    )


def conditions(
    query: QidoQuery, *, dialect: str, visible: InstanceCondition | None = None
) -> list[ColumnElement[bool]]:
    """Every condition of ``query``: URL UIDs and matching keys.

    Access control is not among them; ``visible`` only keeps keys matched below the row
    (and counts) to the instances the caller may see."""
    level = query.level
    fuzzy = query.fuzzymatching
    conds: list[ColumnElement[bool]] = []
    if query.study_uid is not None:
        conds.append(Study.study_instance_uid == query.study_uid)
    if query.series_uid is not None:
        conds.append(Series.series_instance_uid == query.series_uid)
    lower: list[Filter] = []
    for f in query.filters:
        if f.is_universal:
            continue
        top, attr = f.top, f.attribute
        if attr.count is not None:
            conds.append(
                filter_condition(f, OUTER[level], dialect=dialect, fuzzy=fuzzy, visible=visible)
            )
            continue
        anchor = shallower(level, top.level)
        if rank(attr.source) <= rank(anchor):
            conds.append(filter_condition(f, OUTER[level], dialect=dialect, fuzzy=fuzzy))
        elif rank(top.level) > rank(level):
            lower.append(f)
        else:  # a computed attribute of this level or above (ModalitiesInStudy)
            conds.append(
                _exists([f], anchor, attr.source, dialect=dialect, fuzzy=fuzzy, visible=visible)
            )
    if lower:
        deepest = max((f.attribute.source for f in lower), key=rank)
        conds.append(
            _exists(lower, level, deepest, dialect=dialect, fuzzy=fuzzy, visible=visible)
        )
    return conds


def is_text(column: Any) -> bool:
    """True for string columns (whose "no value" is the empty string, not NULL)."""
    return isinstance(column.type, String)
