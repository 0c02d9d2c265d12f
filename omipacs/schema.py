"""Every table of the index, registered in one place.

Each package keeps its own tables beside its code (``index``, ``clinical``,
``annotations``, ``cohorts``, ``access``, ``export``); SQLAlchemy knows a table only once
its module is imported. Migrations and the tests that compare them with the models take
:data:`metadata` from here, so a package's new tables cannot be left out of either.
"""

from __future__ import annotations

import omipacs.access.models
import omipacs.annotations.models
import omipacs.clinical.models
import omipacs.cohorts.models
import omipacs.export.models
from omipacs.index.models import Base

metadata = Base.metadata
"""The index's tables, all of them."""

__all__ = ["metadata"]
_MODEL_MODULES = (
    omipacs.access.models,
    omipacs.annotations.models,
    omipacs.clinical.models,
    omipacs.cohorts.models,
    omipacs.export.models,
)
