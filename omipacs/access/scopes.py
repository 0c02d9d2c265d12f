"""The data scopes a licence grants, and which stored objects each one covers.

The brochure lists the data types a researcher applies for; a licence names the
scopes it grants and whatever it lacks does not exist for its holder:

=================  ==================================================================
scope              covers
=================  ==================================================================
``2d``             FFDM for presentation (Digital Mammography, DX and CR for
                   presentation): the processed images a reader looks at
``for-processing`` unprocessed ("raw") FFDM: DM and DX for processing
``3d``             digital breast tomosynthesis: reconstructed volumes and their
                   projection images
``marks``          expert marks and other annotation objects: SR documents (the
                   archive's ROI marks among them), GSPS, SEG, Key Object Selection;
                   and the marks API
``clinical``       clinical, pathology and outcome fields (timelines, statistics,
                   cohort answers)
``density``        breast density, which needs a further approval
=================  ==================================================================

Objects in none of these classes (MR, ultrasound, secondary captures) are served to
admins and curators only: no licence scope covers them, so no researcher sees them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, false, literal_column

from omipacs.dicom import uids
from omipacs.errors import BadRequest
from omipacs.index.visibility import InstanceCondition


class Scope(StrEnum):
    """A data scope of a licence."""

    TWO_D = "2d"
    """FFDM for presentation."""
    FOR_PROCESSING = "for-processing"
    """Unprocessed FFDM."""
    THREE_D = "3d"
    """Tomosynthesis."""
    MARKS = "marks"
    """Expert marks (SR) and annotation objects."""
    CLINICAL = "clinical"
    """Clinical, pathology and outcome data."""
    DENSITY = "density"
    """Breast density."""


#: SOP classes each image scope covers.
SOP_CLASSES: dict[Scope, frozenset[str]] = {
    Scope.TWO_D: frozenset(
        {
            uids.MG_FOR_PRESENTATION,
            "1.2.840.10008.5.1.4.1.1.1.1",  # DX for presentation
            "1.2.840.10008.5.1.4.1.1.1",  # CR
        }
    ),
    Scope.FOR_PROCESSING: frozenset(
        {uids.MG_FOR_PROCESSING, "1.2.840.10008.5.1.4.1.1.1.1.1"}  # DX for processing
    ),
    Scope.THREE_D: frozenset(
        {
            uids.BREAST_TOMOSYNTHESIS,
            uids.BREAST_PROJECTION_PRESENTATION,
            uids.BREAST_PROJECTION_PROCESSING,
        }
    ),
    Scope.MARKS: frozenset(
        {
            "1.2.840.10008.5.1.4.1.1.88.11",
            "1.2.840.10008.5.1.4.1.1.88.22",
            "1.2.840.10008.5.1.4.1.1.88.33",
            "1.2.840.10008.5.1.4.1.1.88.34",
            "1.2.840.10008.5.1.4.1.1.88.50",
            "1.2.840.10008.5.1.4.1.1.88.59",
            "1.2.840.10008.5.1.4.1.1.11.1",
            "1.2.840.10008.5.1.4.1.1.66.4",
        }
    ),
}


def parse_scopes(value: str | Iterable[str]) -> frozenset[Scope]:
    """Scopes from ``"2d,3d"`` or a list; unknown names are an error, not ignored."""
    names = value.split(",") if isinstance(value, str) else list(value)
    out: set[Scope] = set()
    for name in names:
        name = name.strip().lower()
        if not name:
            continue
        try:
            out.add(Scope(name))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise BadRequest(f"unknown data scope {name!r} (known: {known})") from None
    return frozenset(out)


def format_scopes(scopes: Iterable[Scope]) -> str:
    """The stored form: names in a fixed order, comma-separated."""
    return ",".join(s.value for s in Scope if s in set(scopes))


def sop_classes(scopes: Iterable[Scope]) -> frozenset[str]:
    """Every SOP class the image scopes among ``scopes`` cover."""
    out: set[str] = set()
    for scope in scopes:
        out |= SOP_CLASSES.get(scope, frozenset())
    return frozenset(out)


def instance_condition(scopes: Iterable[Scope]) -> InstanceCondition:
    """The condition an instance (table or alias) must meet to be visible."""
    classes = sorted(sop_classes(scopes))
    for uid in classes:  # our own constants, written into SQL: digits and dots only
        if not _UID.fullmatch(uid):
            raise ValueError(f"not a UID: {uid!r}")
    # The classes are written into the SQL as one literal list, built once here: the
    # statement (and its compiled form, cached by SQLAlchemy) is then the same for every
    # request under a licence, and the list is one element of its cache key. A bound list
    # (an expanding parameter) is re-rendered into the SQL at every execution, and a
    # literal per class is walked at every cache-key computation: either cost a licence
    # root more than its index lookups.
    quoted = ", ".join(f"'{uid}'" for uid in classes)
    listed: ColumnElement[Any] = literal_column(f"({quoted})")

    def condition(instance: Any) -> ColumnElement[bool]:
        if not classes:
            return false()
        found: ColumnElement[bool] = instance.sop_class_uid.op("IN", is_comparison=True)(
            listed
        )
        return found

    return condition


_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def covers(scopes: Iterable[Scope], sop_class_uid: str) -> bool:
    """Whether an object of ``sop_class_uid`` is within ``scopes`` (Python twin of
    :func:`instance_condition`, for objects not read from the index)."""
    return sop_class_uid in sop_classes(scopes)
