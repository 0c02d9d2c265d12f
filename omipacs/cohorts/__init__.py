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

Modules: :mod:`~omipacs.cohorts.filters` (the criteria), :mod:`~omipacs.cohorts.sql`
(criteria as SQL), :mod:`~omipacs.cohorts.query` (counts and pages),
:mod:`~omipacs.cohorts.saved` (frozen versions and the DICOMweb restriction) and
:mod:`~omipacs.cohorts.models` (their tables). Cohorts sit above the clinical data and
the marks they filter on; neither of those imports them.

:func:`save_cohort` freezes a definition (versioned by name) and its resolved members;
:func:`cohort_restriction` turns a saved cohort into a condition on ``Study`` that the
DICOMweb services apply, so the cohort is served as its own root and a non-member
study is never visible through it.
"""

from omipacs.cohorts.filters import CohortFilters, PathologyFilter, StudyScope
from omipacs.cohorts.query import CohortQueryResult, cohort_query, members_hash, resolve_members
from omipacs.cohorts.saved import (
    CohortSummary,
    SavedCohort,
    cohort_restriction,
    get_cohort,
    list_cohorts,
    save_cohort,
)

__all__ = [
    "CohortFilters",
    "CohortQueryResult",
    "CohortSummary",
    "PathologyFilter",
    "SavedCohort",
    "StudyScope",
    "cohort_query",
    "cohort_restriction",
    "get_cohort",
    "list_cohorts",
    "members_hash",
    "resolve_members",
    "save_cohort",
]
