"""Cohorts: filter clients and studies, save a frozen member list, serve it alone.

A cohort is a set of imaging studies and the clients they belong to. :class:`CohortFilters`
holds the criteria; each tuple means "any of", and all given criteria must hold:

* client criteria: outcome, marked, ethnicity, deprivation (IMD decile), breast density,
  image features, lesion type and pathology (on one finding: e.g. invasive grade 3 and
  HER2 positive);
* study criteria, all met by one study: study date, age at the study, the outcome of
  the episode the study is linked to (e.g. CIP for the screens before an interval
  cancer), and, met by one instance of it, 2D/3D, processed/unprocessed, manufacturer
  (case-insensitive prefix), view position and laterality.

A client is a member when she meets the client criteria and has at least one study
meeting the study criteria. 2D/3D is also checked against the client's flags, which the
clinical sync keeps (each minute under ``omipacs serve``; ``omipacs clinical sync`` runs
it at once): a client's first DBT makes her a "3D" member once the sync has seen it.

Her member studies are those matching studies (scope ``matching``) or all her studies
(scope ``all``, e.g. a DBT case with its 2D priors).

:func:`save_cohort` freezes a definition (versioned by name) and its resolved members;
:func:`cohort_restriction` turns a saved cohort into a condition on ``Study`` that the
DICOMweb services apply, so the cohort is served as its own root and a non-member
study is never visible through it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from omipacs.clinical.classify import EpisodeOutcome
from omipacs.clinical.codes import DCIS_GRADES, DISEASE_GRADES, CaseOutcome, LesionDescription
from omipacs.clinical.imaging import THREE_D_SOP_CLASSES, TWO_D_SOP_CLASSES
from omipacs.clinical.models import (
    Client,
    Cohort,
    CohortMember,
    Density,
    Episode,
    ImageFeature,
    Lesion,
    LesionFinding,
    StudyLink,
)
from omipacs.clinical.sanitize import parse_date
from omipacs.errors import BadRequest, NotFound
from omipacs.index.models import Instance, Series, Study

DEFINITION_SCHEMA: Final = 1
"""Version of the saved definition format (``definition["schema"]``)."""
DIMENSIONS: Final = {"2D": TWO_D_SOP_CLASSES, "3D": THREE_D_SOP_CLASSES}
PRESENTATION: Final = {True: "FOR PRESENTATION", False: "FOR PROCESSING"}
_INSERT_CHUNK: Final = 5_000


class StudyScope(StrEnum):
    """Which studies of a member client belong to the cohort."""

    MATCHING = "matching"
    """Only the studies meeting the study criteria."""
    ALL = "all"
    """All her studies (priors included)."""


@dataclass(frozen=True)
class PathologyFilter:
    """Criteria that one lesion finding must meet together."""

    invasive: bool | None = None
    grades: tuple[str, ...] = ()
    """Histological grades (G1, G2, G3, NA)."""
    dcis_grades: tuple[str, ...] = ()
    her2_positive: bool | None = None
    """True: status RP or score 3+; False: status RN or score 0/1+."""
    er_positive: bool | None = None
    pr_positive: bool | None = None
    min_size_mm: float | None = None
    max_size_mm: float | None = None
    nodes_positive: bool | None = None

    @property
    def empty(self) -> bool:
        return self == PathologyFilter()


def _bad(what: str) -> BadRequest:
    return BadRequest(f"cohort filter: {what}")


@dataclass(frozen=True)
class CohortFilters:
    """The criteria of a cohort (see the module notes for their meaning)."""

    outcomes: tuple[str, ...] = ()
    episode_outcomes: tuple[str, ...] = ()
    marked: bool | None = None
    dimensions: tuple[str, ...] = ()
    processed: bool | None = None
    manufacturers: tuple[str, ...] = ()
    views: tuple[str, ...] = ()
    lateralities: tuple[str, ...] = ()
    age_min: int | None = None
    age_max: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    ethnicities: tuple[str, ...] = ()
    imd_min: int | None = None
    imd_max: int | None = None
    density_grades: tuple[str, ...] = ()
    vbd_min: float | None = None
    vbd_max: float | None = None
    features: tuple[str, ...] = ()
    lesion_types: tuple[str, ...] = ()
    mark_types: tuple[str, ...] = ()
    """Clients with current expert marks of these finding types (``any`` for any)."""
    pathology: PathologyFilter = field(default_factory=PathologyFilter)
    scope: StudyScope = StudyScope.MATCHING

    def __post_init__(self) -> None:
        checks: list[tuple[Iterable[str], Iterable[str], str]] = [
            (self.outcomes, [o.value for o in CaseOutcome], "outcome"),
            (self.episode_outcomes, [o.value for o in EpisodeOutcome], "episode outcome"),
            (self.dimensions, DIMENSIONS, "dimension (2D or 3D)"),
            (self.lateralities, ("L", "R", "B", "U"), "laterality"),
            (self.density_grades, ("1", "2", "3", "4"), "density grade"),
            (self.lesion_types, [d.value for d in LesionDescription], "lesion type"),
            (self.pathology.grades, DISEASE_GRADES, "grade"),
            (self.pathology.dcis_grades, DCIS_GRADES, "DCIS grade"),
        ]
        for values, allowed, what in checks:
            unknown = set(values) - set(allowed)
            if unknown:
                raise _bad(f"unknown {what}")
        for low, high, what in (
            (self.age_min, self.age_max, "age"),
            (self.imd_min, self.imd_max, "IMD decile"),
            (self.vbd_min, self.vbd_max, "density"),
            (self.date_from, self.date_to, "date"),
            (self.pathology.min_size_mm, self.pathology.max_size_mm, "size"),
        ):
            if low is not None and high is not None and low > high:  # type: ignore[operator]
                raise _bad(f"{what} range is empty")
        if any(not m.strip() for m in self.manufacturers):
            raise _bad("empty manufacturer")

    # -- serialisation ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with every field (stable, so it can be hashed)."""
        data = asdict(self)
        for key in ("date_from", "date_to"):
            data[key] = data[key].isoformat() if data[key] else None
        data["scope"] = self.scope.value
        for key, value in list(data.items()):
            if isinstance(value, tuple):
                data[key] = list(value)
        data["pathology"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in data["pathology"].items()
        }
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CohortFilters:
        """The inverse of :meth:`to_dict` (unknown keys are refused)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"schema"}
        if unknown:
            raise _bad("unknown field " + ", ".join(sorted(unknown)))
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data or data[f.name] is None:
                continue
            value = data[f.name]
            if f.name == "pathology":
                path_known = {p.name for p in fields(PathologyFilter)}
                if not isinstance(value, Mapping) or set(value) - path_known:
                    raise _bad("pathology is not an object of known fields")
                path_values: dict[str, Any] = {
                    k: tuple(v) if isinstance(v, list) else v for k, v in value.items()
                }
                value = PathologyFilter(**path_values)
            elif f.name in ("date_from", "date_to"):
                value = _date(value)
            elif f.name == "scope":
                value = _scope(value)
            elif isinstance(value, list):
                value = tuple(str(v) for v in value)
            values[f.name] = value
        try:
            return cls(**values)
        except TypeError:
            raise _bad("a field has the wrong type") from None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> CohortFilters:
        """Filters from URL query parameters (``GET /api/v1/cohorts/query?...``).

        ``params`` maps a name to a string or a list of strings (a ``MultiDict``'s
        ``to_dict(flat=False)``). Lists may also be comma-separated. Names:
        ``outcome``, ``episode_outcome``, ``marked``, ``dim``, ``processed``,
        ``manufacturer``, ``view``, ``laterality``, ``age_min``, ``age_max``,
        ``date_from``, ``date_to``, ``ethnicity``, ``imd_min``, ``imd_max``,
        ``density``, ``vbd_min``, ``vbd_max``, ``feature``, ``lesion``, ``invasive``,
        ``grade``, ``dcis_grade``, ``her2``, ``er``, ``pr``, ``size_min``,
        ``size_max``, ``nodes``, ``scope``. Booleans are ``true``/``false`` (her2, er,
        pr, nodes also ``positive``/``negative``).
        """
        lists: dict[str, list[str]] = {}
        for name, value in params.items():
            items = [value] if isinstance(value, str) else list(value)
            lists[name] = [p.strip() for v in items for p in str(v).split(",") if p.strip()]
        unknown = set(lists) - set(_PARAMS) - set(_PATHOLOGY_PARAMS)
        if unknown:
            raise _bad("unknown parameter " + ", ".join(sorted(unknown)))
        values: dict[str, Any] = {}
        pathology: dict[str, Any] = {}
        for name, items in lists.items():
            if not items:
                continue
            if name in _PARAMS:
                target, convert = _PARAMS[name]
                values[target] = convert(items)
            else:
                target, convert = _PATHOLOGY_PARAMS[name]
                pathology[target] = convert(items)
        if pathology:
            values["pathology"] = PathologyFilter(**pathology)
        return cls(**values)

    def sha256(self) -> str:
        """Hash of the canonical definition."""
        return hashlib.sha256(_canonical(self.definition()).encode()).hexdigest()

    def definition(self) -> dict[str, Any]:
        """What is saved: the filters and the format version."""
        return {"schema": DEFINITION_SCHEMA, **self.to_dict()}


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _date(value: Any) -> date:
    parsed = parse_date(value)
    if parsed is None:
        raise _bad("a date is not YYYY-MM-DD")
    return parsed


def _scope(value: Any) -> StudyScope:
    try:
        return StudyScope(str(value).lower())
    except ValueError:
        raise _bad("scope is matching or all") from None


def _one(items: list[str]) -> str:
    if len(items) != 1:
        raise _bad("a parameter that takes one value has several")
    return items[0]


def _bool(items: list[str]) -> bool:
    text = _one(items).lower()
    if text in ("true", "1", "yes", "y", "positive", "pos"):
        return True
    if text in ("false", "0", "no", "n", "negative", "neg"):
        return False
    raise _bad("a flag is true or false")


def _int(items: list[str]) -> int:
    try:
        return int(_one(items))
    except ValueError:
        raise _bad("a number is not a whole number") from None


def _float(items: list[str]) -> float:
    try:
        return float(_one(items))
    except ValueError:
        raise _bad("a value is not a number") from None


def _upper(items: list[str]) -> tuple[str, ...]:
    return tuple(i.upper() for i in items)


def _keep(items: list[str]) -> tuple[str, ...]:
    return tuple(items)


def _lower(items: list[str]) -> tuple[str, ...]:
    return tuple(i.lower().replace(" ", "_") for i in items)


_Convert = Any
_PARAMS: Final[dict[str, tuple[str, _Convert]]] = {
    "outcome": ("outcomes", _upper),
    "episode_outcome": ("episode_outcomes", _upper),
    "marked": ("marked", _bool),
    "dim": ("dimensions", _upper),
    "processed": ("processed", _bool),
    "manufacturer": ("manufacturers", _keep),
    "view": ("views", _upper),
    "laterality": ("lateralities", _upper),
    "age_min": ("age_min", _int),
    "age_max": ("age_max", _int),
    "date_from": ("date_from", lambda i: _date(_one(i))),
    "date_to": ("date_to", lambda i: _date(_one(i))),
    "ethnicity": ("ethnicities", _upper),
    "imd_min": ("imd_min", _int),
    "imd_max": ("imd_max", _int),
    "density": ("density_grades", _keep),
    "vbd_min": ("vbd_min", _float),
    "vbd_max": ("vbd_max", _float),
    "feature": ("features", _lower),
    "lesion": ("lesion_types", _upper),
    "mark_type": ("mark_types", _lower),
    "scope": ("scope", lambda i: _scope(_one(i))),
}
_PATHOLOGY_PARAMS: Final[dict[str, tuple[str, _Convert]]] = {
    "invasive": ("invasive", _bool),
    "grade": (
        "grades",
        lambda i: tuple(
            g if g.upper().startswith("G") or g.upper() == "NA" else f"G{g}" for g in _upper(i)
        ),
    ),
    "dcis_grade": ("dcis_grades", _upper),
    "her2": ("her2_positive", _bool),
    "er": ("er_positive", _bool),
    "pr": ("pr_positive", _bool),
    "size_min": ("min_size_mm", _float),
    "size_max": ("max_size_mm", _float),
    "nodes": ("nodes_positive", _bool),
}


# -- SQL ---------------------------------------------------------------------------------


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
    if filters.mark_types:
        from omipacs.annotations.search import client_has_marks

        kinds = [t for t in filters.mark_types if t != "any"]
        out.append(client_has_marks(kinds or None))
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


@dataclass(frozen=True)
class CohortClient:
    """A member client and her member studies."""

    client_id: str
    outcome: str
    studies: tuple[str, ...]


@dataclass(frozen=True)
class CohortQueryResult:
    """A page of a cohort query, with its totals."""

    client_count: int
    study_count: int
    clients: tuple[CohortClient, ...]
    next_after: str | None = None
    """When the page is full: the client ID to pass as ``after`` for the next page."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_count": self.client_count,
            "study_count": self.study_count,
            "clients": [asdict(c) | {"studies": list(c.studies)} for c in self.clients],
            "next_after": self.next_after,
        }


_FIRST_STRIDE: Final = 256
_MAX_GROWTH: Final = 8
_WALK_BUDGET: Final = 20


def _page(
    session: Session, filters: CohortFilters, limit: int | None, offset: int, after: str | None
) -> list[tuple[int, str, str]]:
    """``(client pk, client ID, outcome)`` of a page of members, in client ID order.

    Rather than find every member and sort them (work that grows with the archive), the
    clients that pass the row criteria are walked in client ID order, a stretch at a
    time, and each stretch is checked against all the criteria; the walk stops when the
    page is full. Each stretch is sized from the share of members among the clients
    checked so far (at most eight times the last), so a cohort that fills its page early
    costs about a page's worth of checks.

    A cohort whose members are rare among the clients its row criteria leave (say
    "grade 3" alone, where no row criterion narrows the walk) would make the walk check
    a large part of the archive one client at a time. So after a budget of checks
    (:data:`_WALK_BUDGET` per wanted member, at least :data:`_FIRST_STRIDE` times eight),
    or as soon as the share of members seen says the page would need more than that,
    the rest of the page is asked of the database in one query, which the planner can
    start from the most selective criterion; the walk then costs at most its budget more
    than that query alone, and usually one stretch more.
    """
    columns = client_select(filters).add_columns(Client.outcome)
    if limit is None:
        stmt = columns.order_by(Client.client_id).offset(offset)
        if after is not None:
            stmt = stmt.where(Client.client_id > after)
        return [(r[0], r[1], r[2]) for r in session.execute(stmt)]
    wanted = offset + limit
    row = client_row_conditions(filters)
    found: list[tuple[int, str, str]] = []
    checked = 0
    low = after
    stride = max(_FIRST_STRIDE, wanted)
    budget = max(_FIRST_STRIDE * _MAX_GROWTH, _WALK_BUDGET * wanted)
    needed = 0
    while len(found) < wanted:
        if checked >= budget or checked + needed > budget:
            rest = columns.order_by(Client.client_id).limit(wanted - len(found))
            if low is not None:
                rest = rest.where(Client.client_id > low)
            found += [(r[0], r[1], r[2]) for r in session.execute(rest)]
            break
        beyond = [Client.client_id > low] if low is not None else []
        high = session.scalar(
            select(Client.client_id)
            .where(*row, *beyond)
            .order_by(Client.client_id)
            .offset(stride - 1)
            .limit(1)
        )
        upto = [Client.client_id <= high] if high is not None else []
        stmt = columns.where(*beyond, *upto).order_by(Client.client_id)
        found += [(r[0], r[1], r[2]) for r in session.execute(stmt)]
        if high is None:
            break
        low = high
        checked += stride
        # Enough clients for the rest of the page at the share of members seen so far,
        # with a quarter more to spare.
        share = max(len(found), 1) / checked
        needed = int((wanted - len(found)) / share * 1.25) + 1
        stride = max(_FIRST_STRIDE, min(needed, stride * _MAX_GROWTH, budget - checked))
    return found[offset:wanted]


def cohort_query(
    session: Session,
    filters: CohortFilters,
    *,
    limit: int | None = 100,
    offset: int = 0,
    count: bool = True,
    after: str | None = None,
) -> CohortQueryResult:
    """A page of member clients (in client ID order) with their member studies.

    The page costs what finding its members costs (see :func:`_page`), not what
    finding every member would. ``after`` starts the page after that client ID (keyset
    paging: the result's ``next_after`` gives the next page at the same cost however
    deep it is, where a large ``offset`` walks from the start). The totals need every
    member to be counted; pass ``count=False`` to skip them (they are then -1).
    """
    page = _page(session, filters, limit, offset, after)
    by_client: dict[str, list[str]] = {row[1]: [] for row in page}
    if page:
        # The page's clients meet the client criteria; only their studies are filtered.
        studies_stmt = (
            select(Client.client_id, Study.study_instance_uid)
            .join(Client, Client.patient_pk == Study.patient_pk)
            .where(Client.pk.in_([row[0] for row in page]))
        )
        if filters.scope is StudyScope.MATCHING:
            studies_stmt = studies_stmt.where(*study_conditions(filters))
        for cid, uid in session.execute(studies_stmt):
            by_client[cid].append(uid)
    client_count = study_count = -1
    if count:
        # One pass: every member client has at least one member study.
        studies = study_select(filters).subquery()
        counted = session.execute(
            select(func.count(func.distinct(studies.c.client_id)), func.count())
        ).one()
        client_count, study_count = int(counted[0]), int(counted[1])
    full = limit is not None and len(page) == limit and limit > 0
    return CohortQueryResult(
        client_count,
        study_count,
        tuple(CohortClient(row[1], row[2], tuple(sorted(by_client[row[1]]))) for row in page),
        page[-1][1] if full else None,
    )


def resolve_members(session: Session, filters: CohortFilters) -> list[tuple[str, str]]:
    """Every ``(client ID, Study Instance UID)`` of the cohort, sorted."""
    stmt = study_select(filters).order_by(None)
    return sorted({(row[0], row[2]) for row in session.execute(stmt)})


def members_hash(members: Iterable[tuple[str, str]]) -> str:
    """SHA-256 of the sorted member list, one ``client_id<TAB>study_uid<LF>`` per member."""
    digest = hashlib.sha256()
    for client_id, study_uid in sorted(members):
        digest.update(f"{client_id}\t{study_uid}\n".encode())
    return digest.hexdigest()


# -- saved cohorts ------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortSummary:
    """A saved cohort without its members."""

    id: int
    name: str
    version: int
    description: str
    definition: dict[str, Any]
    definition_sha256: str
    members_sha256: str
    client_count: int
    study_count: int
    created_at: datetime | None

    @property
    def filters(self) -> CohortFilters:
        return CohortFilters.from_dict(self.definition)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat() if self.created_at else None
        return data


@dataclass(frozen=True)
class SavedCohort:
    """A saved cohort and its frozen members."""

    summary: CohortSummary
    members: tuple[tuple[str, str], ...]

    @property
    def client_ids(self) -> tuple[str, ...]:
        return tuple(sorted({c for c, _ in self.members}))

    @property
    def study_uids(self) -> tuple[str, ...]:
        return tuple(sorted(s for _, s in self.members))

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary.to_dict(),
            "members": [{"client_id": c, "study_uid": s} for c, s in self.members],
        }


def _summary(row: Cohort) -> CohortSummary:
    return CohortSummary(
        id=row.pk,
        name=row.name,
        version=row.version,
        description=row.description,
        definition=dict(row.definition),
        definition_sha256=row.definition_sha256,
        members_sha256=row.members_sha256,
        client_count=row.client_count,
        study_count=row.study_count,
        created_at=row.created_at,
    )


def save_cohort(
    session: Session, name: str, filters: CohortFilters, *, description: str = ""
) -> CohortSummary:
    """Resolve ``filters`` now and save the result as the next version of ``name``.

    The caller commits. A cohort never changes once saved: re-running the same
    definition later (after more data arrived) makes a new version.
    """
    name = name.strip()
    if not name or len(name) > 128:
        raise BadRequest("a cohort needs a name of 1 to 128 characters")
    members = resolve_members(session, filters)
    latest = session.scalar(select(func.max(Cohort.version)).where(Cohort.name == name))
    definition = filters.definition()
    row = Cohort(
        name=name,
        version=(latest or 0) + 1,
        description=description,
        definition=definition,
        definition_sha256=filters.sha256(),
        members_sha256=members_hash(members),
        client_count=len({c for c, _ in members}),
        study_count=len(members),
    )
    session.add(row)
    session.flush()
    for start in range(0, len(members), _INSERT_CHUNK):
        session.execute(
            insert(CohortMember),
            [
                {"cohort_pk": row.pk, "client_id": c, "study_instance_uid": s}
                for c, s in members[start : start + _INSERT_CHUNK]
            ],
        )
    session.flush()
    session.refresh(row)
    return _summary(row)


MAX_ID: Final = 2**63 - 1
"""The largest ID a database row can have (a signed 64-bit integer)."""


def get_cohort(session: Session, cohort_id: int, *, with_members: bool = True) -> SavedCohort:
    """A saved cohort and (by default) its members, sorted.

    Raises
    ------
    NotFound
        No cohort has this ID.
    """
    if not 0 < cohort_id <= MAX_ID:
        raise NotFound("no such cohort")  # no database integer holds it
    row = session.get(Cohort, cohort_id)
    if row is None:
        raise NotFound("no such cohort")
    members: Sequence[tuple[str, str]] = ()
    if with_members:
        members = [
            (c, s)
            for c, s in session.execute(
                select(CohortMember.client_id, CohortMember.study_instance_uid)
                .where(CohortMember.cohort_pk == cohort_id)
                .order_by(CohortMember.client_id, CohortMember.study_instance_uid)
            )
        ]
    return SavedCohort(_summary(row), tuple(members))


def list_cohorts(session: Session, name: str | None = None) -> list[CohortSummary]:
    """Saved cohorts (all versions), newest first."""
    stmt = select(Cohort).order_by(Cohort.pk.desc())
    if name is not None:
        stmt = stmt.where(Cohort.name == name)
    return [_summary(row) for row in session.scalars(stmt)]


def cohort_restriction(cohort_id: int) -> ColumnElement[bool]:
    """A condition on ``Study`` that holds only for the cohort's studies.

    Pass it as ``restrict`` to QIDO-RS and WADO-RS to serve the cohort as its own
    DICOMweb root. The member list is the frozen one, matched by Study Instance UID
    (the ``cohort_member`` unique index), so data added later never joins a saved
    cohort.

    A correlated ``EXISTS`` probes that index once per study considered, rather than an
    ``IN (subquery)`` that SQLite materialises as a list of every member for each query:
    a WADO-RS retrieval then costs one index lookup whatever the cohort's size, and a
    study list ordered by date stops at its page instead of computing every member's
    attributes before sorting (tests/benchmarks/bench_access.py measures it).
    """
    return (
        select(literal(1))
        .where(
            CohortMember.cohort_pk == cohort_id,
            CohortMember.study_instance_uid == Study.study_instance_uid,
        )
        .correlate(Study)
        .exists()
    )
