"""Distributions a researcher asks about first: age, density, manufacturer, year, and
the lesion types and grades of marked cancers.

Each is a short list of (label, count) rows, computed from the live index with one
grouped query, and limited to what the caller may see: ``visibility`` (a licence's
cohort and data scopes) for counts of studies and images, ``clients`` (a condition on
``Client.client_id``, the licence's members) for counts of clients and lesions, exactly
as :func:`omipacs.clinical.stats.stats` limits the brochure's tables.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, extract, func, select
from sqlalchemy.orm import Session

from omipacs.annotations.models import Mark
from omipacs.clinical.codes import CaseOutcome
from omipacs.clinical.models import Client, Density, Episode, Lesion, LesionFinding
from omipacs.index.models import Instance, Series, Study
from omipacs.index.visibility import EVERYTHING, Visibility

CANCER_OUTCOMES: Final = (CaseOutcome.MALIGNANT.value, CaseOutcome.INTERVAL_CANCER.value)
AGE_BANDS: Final = ((0, 49, "under 50"), (50, 52, "50–52"), (53, 55, "53–55"),
                    (56, 60, "56–60"), (61, 65, "61–65"), (66, 70, "66–70"),
                    (71, 75, "71–75"), (76, 999, "over 75"))
DENSITY_LABELS: Final = {"1": "1 (almost entirely fatty)", "2": "2 (scattered)",
                         "3": "3 (heterogeneously dense)", "4": "4 (extremely dense)"}
GRADE_LABELS: Final = {"G1": "Grade 1", "G2": "Grade 2", "G3": "Grade 3", "NA": "Not assessable"}


@dataclass(frozen=True)
class Distribution:
    """One chart's numbers."""

    name: str
    title: str
    category: str
    """What the rows are (the axis title): "age", "manufacturer"."""
    unit: str
    """What is counted: "studies", "clients", "images", "lesions"."""
    rows: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(n for _, n in self.rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the chart's data)."""
        return {
            "name": self.name, "title": self.title, "category": self.category,
            "unit": self.unit, "rows": [{"label": k, "count": n} for k, n in self.rows],
        }

    def to_csv(self) -> str:
        """The rows as CSV with a header line."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([self.category, self.unit])
        writer.writerows(self.rows)
        return out.getvalue()


def _study_conditions(visibility: Visibility) -> list[ColumnElement[bool]]:
    cond = visibility.at("study")
    return [] if cond is None else [cond]


def age_at_screening(session: Session, visibility: Visibility = EVERYTHING) -> Distribution:
    """Studies by the client's age at the study (Patient's Age, in screening bands)."""
    rows = session.execute(
        select(Study.patient_age, func.count())
        .where(Study.patient_age.like("___Y"), *_study_conditions(visibility))
        .group_by(Study.patient_age)
    ).all()
    counts: Counter[str] = Counter()
    for age, n in rows:
        years = int(age[:3]) if age[:3].isdigit() else -1
        label = next((lbl for lo, hi, lbl in AGE_BANDS if lo <= years <= hi), None)
        if label is not None:
            counts[label] += int(n)
    ordered = tuple((lbl, counts[lbl]) for _, _, lbl in AGE_BANDS if counts[lbl])
    return Distribution("age", "Age at screening", "age", "studies", ordered)


def study_years(session: Session, visibility: Visibility = EVERYTHING) -> Distribution:
    """Studies by year of the study date."""
    year = extract("year", Study.study_date)
    rows = session.execute(
        select(year, func.count())
        .where(Study.study_date.is_not(None), *_study_conditions(visibility))
        .group_by(year)
        .order_by(year)
    ).all()
    return Distribution("year", "Studies by year", "year", "studies",
                        tuple((str(int(y)), int(n)) for y, n in rows if y is not None))


def manufacturers(session: Session, visibility: Visibility = EVERYTHING) -> Distribution:
    """Images by manufacturer (the images' own Manufacturer attribute; images only, not
    the structured reports and other objects stored with them)."""
    stmt = (select(Instance.manufacturer, func.count())
            .where(Instance.rows.is_not(None))
            .group_by(Instance.manufacturer))
    cond = visibility.at("instance")
    if cond is not None:
        stmt = (stmt.join(Series, Instance.series_pk == Series.pk)
                .join(Study, Series.study_pk == Study.pk).where(cond))
    rows = session.execute(stmt).all()
    counted = sorted(((m or "(not recorded)", int(n)) for m, n in rows), key=lambda r: -r[1])
    return Distribution("manufacturer", "Images by manufacturer", "manufacturer", "images",
                        tuple(counted))


def _client_filter(clients: ColumnElement[bool] | None) -> list[ColumnElement[bool]]:
    return [] if clients is None else [clients]


def density_grades(
    session: Session, clients: ColumnElement[bool] | None = None
) -> Distribution:
    """Clients by breast density grade (a client measured at several grades counts once
    at each)."""
    rows = session.execute(
        select(Density.density_grade, func.count(func.distinct(Density.client_pk)))
        .join(Client, Density.client_pk == Client.pk)
        .where(Density.density_grade.is_not(None), *_client_filter(clients))
        .group_by(Density.density_grade)
        .order_by(Density.density_grade)
    ).all()
    return Distribution("density", "Breast density", "density grade", "clients",
                        tuple((DENSITY_LABELS.get(g, g), int(n)) for g, n in rows if g))


def _marked_cancer(clients: ColumnElement[bool] | None) -> list[ColumnElement[bool]]:
    return [Client.outcome.in_(CANCER_OUTCOMES), Client.is_marked.is_(True),
            *_client_filter(clients)]


def marked_cancer_lesions(
    session: Session, clients: ColumnElement[bool] | None = None
) -> Distribution:
    """Current expert marks on the images of cancer cases, by finding type."""
    rows = session.execute(
        select(Mark.finding_kind, func.count())
        .join(Instance, Mark.instance_pk == Instance.pk)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Client, Client.patient_pk == Study.patient_pk)
        .where(Mark.current.is_(True), *_marked_cancer(clients))
        .group_by(Mark.finding_kind)
    ).all()
    counted = sorted(((k.replace("_", " "), int(n)) for k, n in rows), key=lambda r: -r[1])
    return Distribution("lesion-types", "Lesion types of marked cancers", "finding type",
                        "marks", tuple(counted))


def marked_cancer_grades(
    session: Session, clients: ColumnElement[bool] | None = None
) -> Distribution:
    """Pathology findings of marked cancer cases, by histological grade."""
    rows = session.execute(
        select(LesionFinding.disease_grade, func.count())
        .join(Lesion, LesionFinding.lesion_pk == Lesion.pk)
        .join(Episode, Lesion.episode_pk == Episode.pk)
        .join(Client, Episode.client_pk == Client.pk)
        .where(LesionFinding.disease_grade.is_not(None), *_marked_cancer(clients))
        .group_by(LesionFinding.disease_grade)
        .order_by(LesionFinding.disease_grade)
    ).all()
    return Distribution("grades", "Grades of marked cancers", "grade", "findings",
                        tuple((GRADE_LABELS.get(g, g), int(n)) for g, n in rows if g))


StudyLevel = Callable[[Session, Visibility], Distribution]
ClientLevel = Callable[[Session, "ColumnElement[bool] | None"], Distribution]

STUDY_LEVEL: Final[dict[str, StudyLevel]] = {
    "age": age_at_screening,
    "manufacturer": manufacturers,
    "year": study_years,
}
CLIENT_LEVEL: Final[dict[str, ClientLevel]] = {
    "density": density_grades,
    "lesion-types": marked_cancer_lesions,
    "grades": marked_cancer_grades,
}
