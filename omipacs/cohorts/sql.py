"""Cohort criteria as SQL: conditions on ``Client`` and ``Study`` and the member selects.

Client criteria become correlated ``EXISTS`` on the clinical tables and the marks index;
study criteria must all be met by one study, and its image criteria by one instance of it.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, func, or_, select

from omipacs.annotations.search import client_has_marks
from omipacs.clinical.models import (
    Client,
    Density,
    Episode,
    ImageFeature,
    Lesion,
    LesionFinding,
    StudyLink,
)
from omipacs.cohorts.filters import (
    DIMENSIONS,
    PRESENTATION,
    CohortFilters,
    PathologyFilter,
    StudyScope,
)
from omipacs.index.models import Instance, Series, Study


def _finding_conditions(p: PathologyFilter) -> list[ColumnElement[bool]]:
    f = LesionFinding
    out: list[ColumnElement[bool]] = []
    if p.invasive is True:
        out.append(or_(f.invasive_present.is_(True), f.malignancy_type == "b"))
    elif p.invasive is False:
        out.append(or_(f.invasive_present.is_(False), f.malignancy_type == "a"))
    if p.grades:
        out.append(f.disease_grade.in_(p.grades))
    if p.dcis_grades:
        out.append(f.dcis_grade.in_(p.dcis_grades))
    if p.her2_positive is True:
        out.append(or_(f.her2_status == "RP", f.her2_score == "3+"))
    elif p.her2_positive is False:
        out.append(or_(f.her2_status == "RN", f.her2_score.in_(("0", "1+"))))
    for column, wanted in ((f.er_status, p.er_positive), (f.pr_status, p.pr_positive)):
        if wanted is not None:
            out.append(column == ("RP" if wanted else "RN"))
    if p.min_size_mm is not None:
        out.append(f.tumour_size_mm >= p.min_size_mm)
    if p.max_size_mm is not None:
        out.append(f.tumour_size_mm <= p.max_size_mm)
    if p.nodes_positive is True:
        out.append(f.nodes_positive > 0)
    elif p.nodes_positive is False:
        out.append(f.nodes_positive == 0)
    return out


def client_row_conditions(filters: CohortFilters) -> list[ColumnElement[bool]]:
    """The criteria answered by the ``client`` row alone (indexed, no joins).

    2D/3D is also a flag on the row (kept by the clinical sync), so "with DBT" narrows
    the clients before any image is looked at.
    """
    out: list[ColumnElement[bool]] = []
    if filters.outcomes:
        out.append(Client.outcome.in_(filters.outcomes))
    if filters.marked is not None:
        out.append(Client.is_marked.is_(filters.marked))
    if set(filters.dimensions) == {"3D"}:
        out.append(Client.has_3d.is_(True))
    elif set(filters.dimensions) == {"2D"}:
        out.append(Client.has_2d.is_(True))
    elif filters.dimensions:
        out.append(or_(Client.has_2d.is_(True), Client.has_3d.is_(True)))
    if filters.ethnicities:
        out.append(Client.ethnicity.in_(filters.ethnicities))
    if filters.imd_min is not None:
        out.append(Client.imd_decile >= filters.imd_min)
    if filters.imd_max is not None:
        out.append(Client.imd_decile <= filters.imd_max)
    return out


def client_conditions(filters: CohortFilters) -> list[ColumnElement[bool]]:
    """Conditions on ``Client`` (correlated subqueries for the clinical details)."""
    out = client_row_conditions(filters)
    if filters.mark_types or filters.conspicuities:
        kinds = [t for t in filters.mark_types if t != "any"]
        out.append(client_has_marks(kinds or None, filters.conspicuities or None))
    density: list[ColumnElement[bool]] = []
    if filters.density_grades:
        density.append(Density.density_grade.in_(filters.density_grades))
    if filters.vbd_min is not None:
        density.append(Density.vbd_pct >= filters.vbd_min)
    if filters.vbd_max is not None:
        density.append(Density.vbd_pct <= filters.vbd_max)
    if density:
        out.append(select(Density.pk).where(Density.client_pk == Client.pk, *density).exists())
    if filters.features:
        out.append(
            select(ImageFeature.pk)
            .where(ImageFeature.client_pk == Client.pk, ImageFeature.feature.in_(filters.features))
            .exists()
        )
    findings = _finding_conditions(filters.pathology)
    lesion = [Lesion.description.in_(filters.lesion_types)] if filters.lesion_types else []
    if findings:
        out.append(
            select(LesionFinding.pk)
            .join(Lesion, LesionFinding.lesion_pk == Lesion.pk)
            .join(Episode, Lesion.episode_pk == Episode.pk)
            .where(Episode.client_pk == Client.pk, *lesion, *findings)
            .exists()
        )
    elif lesion:
        out.append(
            select(Lesion.pk)
            .join(Episode, Lesion.episode_pk == Episode.pk)
            .where(Episode.client_pk == Client.pk, *lesion)
            .exists()
        )
    return out


def study_conditions(filters: CohortFilters) -> list[ColumnElement[bool]]:
    """Conditions on ``Study`` (one instance of it meets all the image criteria)."""
    out: list[ColumnElement[bool]] = []
    if filters.date_from is not None:
        out.append(Study.study_date >= filters.date_from)
    if filters.date_to is not None:
        out.append(Study.study_date <= filters.date_to)
    if filters.age_min is not None or filters.age_max is not None:
        # Age String "nnnY" sorts as its number: compare as text, usable by any index.
        out.append(Study.patient_age.like("___Y"))
        if filters.age_min is not None:
            out.append(Study.patient_age >= f"{filters.age_min:03d}Y")
        if filters.age_max is not None:
            out.append(Study.patient_age <= f"{filters.age_max:03d}Y")
    if filters.episode_outcomes:
        out.append(
            select(StudyLink.study_pk)
            .join(Episode, StudyLink.episode_pk == Episode.pk)
            .where(StudyLink.study_pk == Study.pk, Episode.outcome.in_(filters.episode_outcomes))
            .exists()
        )
    image: list[ColumnElement[bool]] = []
    if filters.dimensions:
        classes = [c for d in filters.dimensions for c in DIMENSIONS[d]]
        image.append(Instance.sop_class_uid.in_(classes))
    if filters.processed is not None:
        image.append(Instance.presentation_intent_type == PRESENTATION[filters.processed])
    if filters.manufacturers:
        image.append(
            or_(
                *(
                    func.upper(Instance.manufacturer).startswith(m.strip().upper(), autoescape=True)
                    for m in filters.manufacturers
                )
            )
        )
    if filters.views:
        image.append(Instance.view_position.in_(filters.views))
    if filters.lateralities:
        image.append(Instance.laterality.in_(filters.lateralities))
    if image:
        out.append(
            select(Instance.pk)
            .join(Series, Instance.series_pk == Series.pk)
            .where(Series.study_pk == Study.pk, *image)
            .exists()
        )
    return out


def client_select(filters: CohortFilters) -> Select[int, str]:
    """Member clients: ``(client pk, client ID)``."""
    return select(Client.pk, Client.client_id).where(
        *client_conditions(filters),
        select(Study.pk)
        .where(Study.patient_pk == Client.patient_pk, *study_conditions(filters))
        .exists(),
    )


def study_select(filters: CohortFilters) -> Select[str, int, str]:
    """Member studies: ``(client ID, study pk, Study Instance UID)``."""
    stmt = select(Client.client_id, Study.pk, Study.study_instance_uid).join(
        Client, Client.patient_pk == Study.patient_pk
    )
    if filters.scope is StudyScope.ALL:
        members = client_select(filters).subquery()
        return stmt.where(Client.pk.in_(select(members.c.pk)))
    return stmt.where(*client_conditions(filters), *study_conditions(filters))

