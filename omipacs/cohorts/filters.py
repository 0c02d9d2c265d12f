"""What a cohort is made of: the criteria, parsed from a request or a saved definition.

:class:`CohortFilters` holds the criteria; each tuple means "any of", and all given
criteria must hold (see :mod:`omipacs.cohorts` for what a member is). A definition is
canonical JSON, so equal criteria give equal SHA-256 whatever their order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from enum import StrEnum
from typing import Any, Final

from omipacs.annotations.codes import Conspicuity
from omipacs.clinical.classify import EpisodeOutcome
from omipacs.clinical.codes import DCIS_GRADES, DISEASE_GRADES, CaseOutcome, LesionDescription
from omipacs.clinical.imaging import THREE_D_SOP_CLASSES, TWO_D_SOP_CLASSES
from omipacs.clinical.sanitize import parse_date
from omipacs.errors import BadRequest

DEFINITION_SCHEMA: Final = 1
DENSITY_CRITERIA: Final = frozenset({"density_grades", "vbd_min", "vbd_max"})
"""The fields of a definition that select by breast density (the ``density`` scope)."""
"""Version of the saved definition format (``definition["schema"]``)."""
DIMENSIONS: Final = {"2D": TWO_D_SOP_CLASSES, "3D": THREE_D_SOP_CLASSES}
PRESENTATION: Final = {True: "FOR PRESENTATION", False: "FOR PROCESSING"}


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
    conspicuities: tuple[str, ...] = ()
    """Clients with a current expert mark of this conspicuity (``Obvious``, ``Subtle``,
    ``Very_subtle``, ``Occult``, ``Not_recalled``); with ``mark_types``, one mark must
    be of both (a subtle mass)."""
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
        if set(self.conspicuities) - {c.value for c in Conspicuity}:
            raise _bad("unknown conspicuity")

    # -- serialisation ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with every field (stable, so it can be hashed).

        Fields added after definition schema 1 (:data:`_LATER_FIELDS`) are written only
        when set, so the definitions and hashes of cohorts saved before them stay as
        they were.
        """
        data = asdict(self)
        for key in _LATER_FIELDS:
            if not data[key]:
                del data[key]
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


def _conspicuity(items: list[str]) -> tuple[str, ...]:
    """Conspicuity names in any case (``very_subtle``) to their canonical spelling."""
    known = {c.value.lower(): c.value for c in Conspicuity}
    try:
        return tuple(known[i.strip().lower()] for i in items)
    except KeyError:
        raise _bad("unknown conspicuity") from None


_LATER_FIELDS: Final = ("conspicuities",)
"""Fields written to a definition only when set (see :meth:`CohortFilters.to_dict`)."""

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
    "conspicuity": ("conspicuities", _conspicuity),
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

