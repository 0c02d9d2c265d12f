"""The cohort builder: filters, live counts, sample thumbnails with marks, saving.

The form's fields are the cohort query parameters of the JSON API
(``GET /api/v1/cohorts/query``, :meth:`CohortFilters.from_params`); as they change, htmx
asks ``/ui/cohorts/results`` for the counts and a page of sample images, which
:func:`cohort_query` and :func:`study_images` answer exactly as the API would. "Save"
posts the same filters to :func:`save_cohort`, which freezes the members as the next
version of the named cohort.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from flask import redirect, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as BaseResponse

from omipacs.access.policy import Action, Role, readable_cohorts
from omipacs.access.scopes import Scope
from omipacs.annotations.codes import Conspicuity, FindingKind
from omipacs.annotations.study_images import StudyImage, study_images
from omipacs.clinical.codes import CASE_OUTCOME_ORDER, DCIS_GRADES, LesionDescription
from omipacs.clinical.stats import OUTCOME_LABELS
from omipacs.cohorts import (
    CohortFilters,
    cohort_query,
    get_cohort,
    list_cohorts,
    save_cohort,
)
from omipacs.errors import BadRequest, NotFound
from omipacs.web.context import decision, restriction, services
from omipacs.web.ui.blueprint import page, render
from omipacs.web.ui.images import thumbnail_url

SAMPLE_CLIENTS: Final = 12
"""Clients shown as sample thumbnails (one image each)."""
CURATION: Final = frozenset({Role.ADMIN, Role.CURATOR})


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class FilterField:
    """One control of the builder's form (``name`` is the API's query parameter)."""

    name: str
    label: str
    kind: str
    """``check`` (any of), ``radio`` (one; empty: either), ``range`` (``name`` is the
    stem of ``<name>_min``/``<name>_max``), ``text``."""
    choices: tuple[Choice, ...] = ()
    help: str = ""
    group: str = "Case"
    extra: dict[str, str] = field(default_factory=dict)


def _either(yes: str, no: str) -> tuple[Choice, ...]:
    return (Choice("", "either"), Choice("true", yes), Choice("false", no))


_LESIONS: Final = {
    "MA": "mass", "MC": "mass with calcification", "CA": "calcification only",
    "DS": "distortion", "AS": "asymmetry", "CY": "cyst", "LN": "lymph node",
    "NA": "no significant abnormality", "ZZ": "clinical (no imaging)",
}

_DCIS: Final = {"NDH": "high", "NDI": "intermediate", "NDL": "low", "NDN": "not assessable"}

FIELDS: Final[tuple[FilterField, ...]] = (
    FilterField("outcome", "Outcome", "check",
                tuple(Choice(o.value, OUTCOME_LABELS[o]) for o in CASE_OUTCOME_ORDER)),
    FilterField("dim", "Images", "check",
                (Choice("2D", "2D (FFDM)"), Choice("3D", "3D (tomosynthesis)")), group="Images"),
    FilterField("processed", "Processing", "radio",
                _either("processed (for presentation)", "unprocessed (for processing)"),
                group="Images"),
    FilterField("manufacturer", "Manufacturer", "text", help="Starts with, e.g. HOLOGIC",
                group="Images"),
    FilterField("view", "View", "check",
                (Choice("CC", "CC"), Choice("MLO", "MLO"), Choice("ML", "ML"),
                 Choice("LM", "LM"), Choice("XCCL", "XCCL")), group="Images"),
    FilterField("laterality", "Side", "check", (Choice("L", "left"), Choice("R", "right")),
                group="Images"),
    FilterField("age", "Age at the study", "range", group="Images",
                extra={"min": "0", "max": "120"}),
    FilterField("marked", "Expert marks", "radio", _either("marked", "not marked"),
                group="Marks"),
    FilterField("mark_type", "Mark types", "check",
                tuple(Choice(k.value, k.value.replace("_", " ")) for k in FindingKind),
                group="Marks"),
    FilterField("conspicuity", "Conspicuity", "check",
                tuple(Choice(c.value, c.value.replace("_", " ").lower()) for c in Conspicuity),
                group="Marks"),
    FilterField("lesion", "Lesion (NBSS description)", "check",
                tuple(Choice(d.value, _LESIONS.get(d.value, d.value)) for d in LesionDescription),
                group="Pathology"),
    FilterField("invasive", "Invasive", "radio", _either("invasive", "non-invasive"),
                group="Pathology"),
    FilterField("grade", "Grade", "check",
                (Choice("G1", "grade 1"), Choice("G2", "grade 2"), Choice("G3", "grade 3")),
                group="Pathology"),
    FilterField("dcis_grade", "DCIS grade", "check",
                tuple(Choice(g, _DCIS.get(g, g)) for g in sorted(DCIS_GRADES)), group="Pathology"),
    FilterField("her2", "HER2", "radio", _either("positive", "negative"), group="Pathology"),
    FilterField("er", "ER", "radio", _either("positive", "negative"), group="Pathology"),
    FilterField("pr", "PR", "radio", _either("positive", "negative"), group="Pathology"),
    FilterField("density", "Density grade", "check",
                tuple(Choice(g, g) for g in ("1", "2", "3", "4")), group="Pathology"),
    FilterField("scope", "Studies of a member", "radio",
                (Choice("matching", "the matching studies"),
                 Choice("all", "all her studies (priors too)")), group="Case"),
)
PARAMS: Final = frozenset(
    n for f in FIELDS for n in ((f"{f.name}_min", f"{f.name}_max") if f.kind == "range"
                                else (f.name,))
)


def filters_from(values: MultiDict[str, str]) -> tuple[CohortFilters, dict[str, list[str]]]:
    """The filters a form (or query string) names, and the non-empty values it had."""
    params = {
        name: [v for v in values.getlist(name) if v.strip()]
        for name in PARAMS
        if any(v.strip() for v in values.getlist(name))
    }
    return CohortFilters.from_params(params), params


def _sample(images: dict[str, list[StudyImage]], studies: list[str]) -> StudyImage | None:
    """The image to show for a client: her most marked, else her first."""
    candidates = [img for uid in studies for img in images.get(uid, [])]
    if not candidates:
        return None
    return max(candidates, key=lambda img: (img.marks, -candidates.index(img)))


@page("/cohorts", Action.QUERY_COHORTS, nav="Cohort builder", roles=CURATION, order=20)
def cohort_builder() -> tuple[str, int]:
    filters, params = filters_from(request.args)
    return render("ui/cohorts.html", fields=FIELDS, params=params,
                  results=_results(filters, params))


@page("/cohorts/results", Action.QUERY_COHORTS)
def cohort_results() -> tuple[str, int]:
    try:
        filters, params = filters_from(request.args)
    except BadRequest as exc:
        return render("ui/_cohort_results.html", 200, error=exc.reason)
    return render("ui/_cohort_results.html", **_results(filters, params))


def _results(filters: CohortFilters, params: dict[str, list[str]]) -> dict[str, Any]:
    marks = decision().has(Scope.MARKS)
    with services().sessions() as session:
        result = cohort_query(session, filters, limit=SAMPLE_CLIENTS)
        wanted = [uid for c in result.clients for uid in c.studies]
        images = study_images(session, wanted, restriction(), marks=marks)
    samples = []
    for client in result.clients:
        image = _sample(images, list(client.studies))
        samples.append({"client": client, "image": image,
                        "url": thumbnail_url(image) if image else None})
    return {"result": result, "samples": samples, "params": params, "error": None}


@page("/cohorts", Action.WRITE_COHORTS, methods=("POST",), endpoint="save_cohort")
def save_cohort_view() -> BaseResponse:
    name = request.form.get("name", "").strip()
    if not name:
        raise BadRequest("a saved cohort needs a name")
    if len(name) > 128:
        raise BadRequest("a cohort name has at most 128 characters")
    filters, _ = filters_from(request.form)
    with services().write_sessions.begin() as session:
        summary = save_cohort(session, name, filters,
                              description=request.form.get("description", "")[:2000])
    return redirect(url_for("ui.saved_cohort", cohort_id=summary.id, saved=1), code=303)


@page("/cohorts/saved", Action.READ_COHORTS, nav="Saved cohorts", order=25)
def saved_cohorts() -> tuple[str, int]:
    allowed = readable_cohorts(decision())
    with services().sessions() as session:
        found = [c for c in list_cohorts(session) if allowed is None or c.id in allowed]
    return render("ui/saved_cohorts.html", cohorts=found)


@page("/cohorts/<int:cohort_id>", Action.READ_COHORTS)
def saved_cohort(cohort_id: int) -> tuple[str, int]:
    allowed = readable_cohorts(decision())
    if allowed is not None and cohort_id not in allowed:
        raise NotFound("no such cohort")
    with services().sessions() as session:
        saved = get_cohort(session, cohort_id, with_members=False)
        versions = list_cohorts(session, saved.summary.name)
    visible = [v for v in versions if allowed is None or v.id in allowed]
    return render("ui/saved_cohort.html", saved=saved.summary, versions=visible,
                  just_saved=request.args.get("saved") == "1")
