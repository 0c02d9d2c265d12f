"""Archives for the demo data tests: the same archives the clinical and marks tests use."""

from __future__ import annotations

from tests.annotations.conftest import archive
from tests.clinical.conftest import deid_services

__all__ = ["archive", "deid_services"]
