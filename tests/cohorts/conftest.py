"""Archives for the cohort tests: the clinical tests' de-identifying archive."""

from __future__ import annotations

from tests.clinical.conftest import deid_services

__all__ = ["deid_services"]
