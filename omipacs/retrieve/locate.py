"""Find the stored instances behind a WADO-RS URL, from the index alone.

Everything a retrieval needs (blob key, stored transfer syntax, frame byte ranges) is
resolved here, before a response starts streaming: once headers are sent a failure
can no longer become a clean HTTP error (docs/architecture.md, "Errors").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from omipacs.dicom.uids import is_valid_uid
from omipacs.errors import NotFound
from omipacs.index.models import Instance, InstanceMetadata, Patient, Series, Study
from omipacs.index.visibility import Visibility
from omipacs.query.params import QidoQuery
from omipacs.query.search import where


@dataclass(frozen=True)
class InstanceLocation:
    """One stored instance as retrieval needs it."""

    pk: int
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    blob_key: str
    size: int
    sha256: str
    """Of the stored bytes: a strong validator (ETag) for the instance as stored."""
    number_of_frames: int
    frames: list[list[list[int]]] | None
    """Per frame, the [offset, length] value ranges of its bytes in the blob."""
    pixel: dict[str, Any] | None
    header_length: int
    """Bytes of the blob before Pixel Data: enough to parse the header."""


def _check(uid: str | None) -> None:
    # A malformed UID cannot match anything; answer 404 without touching the index.
    if uid is not None and not is_valid_uid(uid):
        raise NotFound("no such resource")


_COLUMNS: tuple[Any, ...] = (
    Instance.pk,
    Study.study_instance_uid,
    Series.series_instance_uid,
    Instance.sop_instance_uid,
    Instance.sop_class_uid,
    Instance.transfer_syntax_uid,
    Instance.blob_key,
    Instance.size_bytes,
    Instance.sha256,
    Instance.number_of_frames,
    InstanceMetadata.header_length,
    InstanceMetadata.pixel,
)


def _locations(
    session: Session, conds: Sequence[ColumnElement[bool]], *, with_frames: bool
) -> list[InstanceLocation]:
    """Instances meeting ``conds`` (on the instance and its parents), in series and
    instance order."""
    columns: list[Any] = list(_COLUMNS)
    if with_frames:
        columns.append(InstanceMetadata.frames)
    stmt = (
        select(*columns)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
        .join(InstanceMetadata, InstanceMetadata.instance_pk == Instance.pk)
        .where(*conds)
        .order_by(
            Study.pk, Series.series_number, Series.pk, Instance.instance_number, Instance.pk
        )
    )
    return [
        InstanceLocation(
            pk=row[0],
            study_uid=row[1],
            series_uid=row[2],
            sop_uid=row[3],
            sop_class_uid=row[4],
            transfer_syntax=row[5],
            blob_key=row[6],
            size=row[7],
            sha256=row[8],
            number_of_frames=row[9] or 1,
            header_length=row[10],
            pixel=row[11],
            frames=row[12] if with_frames else None,
        )
        for row in session.execute(stmt)
    ]


def locate(
    session: Session,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    *,
    restrict: Visibility | None = None,
    with_frames: bool = True,
) -> list[InstanceLocation]:
    """Instances of a study, series or single instance, in series/instance order.

    Raises NotFound when nothing matches (or nothing the caller may see: the two are
    indistinguishable by design).
    """
    for uid in (study_uid, series_uid, sop_uid):
        _check(uid)
    conds: list[ColumnElement[bool]] = [Study.study_instance_uid == study_uid]
    if series_uid is not None:
        conds.append(Series.series_instance_uid == series_uid)
    if sop_uid is not None:
        conds.append(Instance.sop_instance_uid == sop_uid)
    condition = restrict.at("instance") if restrict is not None else None
    if condition is not None:
        conds.append(condition)
    found = _locations(session, conds, with_frames=with_frames)
    if not found:
        raise NotFound("no such resource")
    return found


def locate_matching(
    session: Session, query: QidoQuery, *, restrict: Visibility | None = None
) -> list[InstanceLocation]:
    """The stored instances an instance-level query matches (C-MOVE and C-GET
    identifiers, study lists to send), through the query service's own conditions, so
    what is retrieved is exactly what a C-FIND or QIDO-RS search with the same keys
    finds. An empty list when nothing matches."""
    if query.level != "instance":
        raise ValueError("locate_matching takes an instance-level query")
    dialect = session.get_bind().dialect.name
    return _locations(session, where(query, dialect=dialect, restrict=restrict), with_frames=False)
