"""What one caller may see of the index, as SQL conditions every read applies.

Access control (:mod:`omipacs.access`) decides; this type carries the decision to the
query and retrieve services, which know nothing of users or licences. Two parts:

* ``study``: a condition on ``Study`` (a saved cohort's frozen members);
* ``instance``: a function giving a condition on an ``Instance`` table or alias (the
  data types a licence grants).

A series or study is visible only when at least one of its instances is, and every
count or list computed below a row (NumberOfStudyRelatedInstances, ModalitiesInStudy)
ranges over visible instances only, so nothing outside the caller's view is revealed
even as a number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, literal, select, true
from sqlalchemy.orm import aliased

from omipacs.index.models import Instance, Patient, Series, Study

Level = Literal["patient", "study", "series", "instance"]
InstanceCondition = Callable[[Any], ColumnElement[bool]]


@dataclass(frozen=True)
class Visibility:
    """The part of the archive one request may see (``None`` parts: no restriction)."""

    study: ColumnElement[bool] | None = None
    instance: InstanceCondition | None = None
    _at: dict[Level, ColumnElement[bool] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Conditions already built by :meth:`at` (SQL expressions are immutable, and a
    licence's visibility is reused for every request made under it)."""

    def series_condition(self, series: Any) -> ColumnElement[bool]:
        """``series`` (the table or an alias) has at least one visible instance."""
        if self.instance is None:
            return true()
        i = aliased(Instance)
        return (
            select(literal(1))
            .select_from(i)
            .where(i.series_pk == series.pk, self.instance(i))
            .correlate(series)
            .exists()
        )

    def at(self, level: Level) -> ColumnElement[bool] | None:
        """The condition on a row of ``level`` joined with its parents (``Study``,
        ``Series``, ``Instance`` unaliased), or None when everything is visible."""
        if level not in self._at:
            self._at[level] = self._build(level)
        return self._at[level]

    def _build(self, level: Level) -> ColumnElement[bool] | None:
        if level == "patient":
            # A patient is visible through a visible study.
            inner = self.at("study")
            if inner is None:
                return None
            return (
                select(literal(1))
                .select_from(Study)
                .where(Study.patient_pk == Patient.pk, inner)
                .correlate(Patient)
                .exists()
            )
        conds: list[ColumnElement[bool]] = []
        if self.study is not None:
            conds.append(self.study)
        if self.instance is not None:
            if level == "instance":
                conds.append(self.instance(Instance))
            elif level == "series":
                conds.append(self.series_condition(Series))
            else:
                s = aliased(Series)
                i = aliased(Instance)
                conds.append(
                    select(literal(1))
                    .select_from(i)
                    .join(s, i.series_pk == s.pk)
                    .where(s.study_pk == Study.pk, self.instance(i))
                    .correlate(Study)
                    .exists()
                )
        if not conds:
            return None
        return conds[0] if len(conds) == 1 else and_(*conds)


EVERYTHING = Visibility()
"""No restriction (admins and curators on the archive root)."""
