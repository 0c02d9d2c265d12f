"""Search the marks, and the "has marks" facts cohorts and statistics count.

Searches read the ``current`` marks (those of the latest SR per image and observer;
:mod:`omipacs.annotations.models`) of images the archive holds, joined to the image's
study and client. Filters are all optional and combine with AND; a list means "any
of":

* ``client``: the client ID (the de-identified Patient ID);
* ``study_uid``, ``sop_uid``: the image's study or the image;
* ``lesion_type``: a :class:`~omipacs.annotations.codes.FindingKind` (``mass``,
  ``calcification_cluster``...) or an NBSS lesion description code (``MA``, ``MC``,
  ``CA``, ``DS``, ``AS``), matched on the mark's finding type;
* ``conspicuity``: ``Obvious``, ``Subtle``, ``Very_subtle``, ``Occult``,
  ``not_recalled`` (any case);
* ``outcome``: the client's case outcome (``N``, ``B``, ``M``, ``CI``, ``U``; a client
  without a clinical record counts as ``U``).

Results come in mark order (``pk``), so ``limit``/``offset`` pages are stable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, exists, or_, select
from sqlalchemy.orm import Session, selectinload

from omipacs.annotations.codes import (
    LESION_DESCRIPTION_KINDS,
    Conspicuity,
    FindingKind,
)
from omipacs.annotations.models import FEATURE_COLUMNS, Mark
from omipacs.clinical.codes import CaseOutcome
from omipacs.clinical.models import Client
from omipacs.clinical.tally import change_client, ensure_client
from omipacs.errors import BadRequest
from omipacs.index.models import Instance, Patient, Series, Study
from omipacs.index.visibility import Visibility

MAX_LIMIT: Final = 10_000
DEFAULT_LIMIT: Final = 100


@dataclass(frozen=True)
class MarkRecord:
    """One mark as the API returns it."""

    id: int
    client_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    frame: int | None
    laterality: str
    view_position: str
    box: tuple[float, float, float, float]
    """(col_min, row_min, col_max, row_max) in image pixels."""
    graphic_type: str
    omidb_mark_id: str | None
    finding_kind: str
    finding_code: str
    finding_meaning: str
    conspicuity: str | None
    mass_class: str | None
    benign_class: str | None
    features: tuple[str, ...]
    lesion_numbers: tuple[str, ...]
    pathology: str | None
    reader: str
    sr_uid: str
    source: str
    current: bool
    client_outcome: str
    extra: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = asdict(self)
        for name in ("box", "features", "lesion_numbers"):
            data[name] = list(data[name])
        return data


# -- parameters ----------------------------------------------------------------------------


def _items(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    return [p.strip() for v in values for p in str(v).split(",") if p.strip()]


def finding_kinds(value: str | Iterable[str] | None) -> list[str]:
    """Finding kinds named by ``lesion_type`` values (kinds or NBSS description codes).

    Raises
    ------
    BadRequest
        For a name that is neither.
    """
    kinds: list[str] = []
    for item in _items(value):
        lowered = item.lower().replace(" ", "_").replace("-", "_")
        if lowered in {k.value for k in FindingKind}:
            kinds.append(lowered)
        elif item.upper() in LESION_DESCRIPTION_KINDS:
            kinds += [k.value for k in LESION_DESCRIPTION_KINDS[item.upper()]]
        else:
            raise BadRequest(f"unknown lesion type {item[:32]!r}")
    return sorted(set(kinds))


def conspicuities(value: str | Iterable[str] | None) -> list[str]:
    """Canonical conspicuity values (any case accepted)."""
    out: list[str] = []
    for item in _items(value):
        match = [c.value for c in Conspicuity if c.value.lower() == item.lower()]
        if not match:
            raise BadRequest(f"unknown conspicuity {item[:32]!r}")
        out += match
    return out


def outcomes(value: str | Iterable[str] | None) -> list[str]:
    """Case outcome codes (N, B, M, CI, U)."""
    out: list[str] = []
    for item in _items(value):
        try:
            out.append(CaseOutcome(item.upper()).value)
        except ValueError:
            raise BadRequest(f"unknown outcome {item[:8]!r}") from None
    return out


# -- queries -------------------------------------------------------------------------------


def _base() -> Select[Mark, str, str, str, str, str, str]:
    return (
        select(Mark, Patient.patient_id, Study.study_instance_uid, Series.series_instance_uid,
               Instance.laterality, Instance.view_position, Client.outcome)
        .join(Instance, Mark.instance_pk == Instance.pk)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
        .outerjoin(Client, Client.client_id == Patient.patient_id)
        .options(selectinload(Mark.lesions))
    )


def _record(row: Any) -> MarkRecord:
    mark, client_id, study_uid, series_uid, laterality, view, outcome = row
    return MarkRecord(
        id=mark.pk,
        client_id=client_id,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=mark.sop_instance_uid,
        frame=mark.frame_no,
        laterality=laterality or "",
        view_position=view or "",
        box=(mark.col_min, mark.row_min, mark.col_max, mark.row_max),
        graphic_type=mark.graphic_type,
        omidb_mark_id=mark.omidb_mark_id,
        finding_kind=mark.finding_kind,
        finding_code=mark.finding_code,
        finding_meaning=mark.finding_meaning,
        conspicuity=mark.conspicuity,
        mass_class=mark.mass_class,
        benign_class=mark.benign_class,
        features=tuple(f for f in FEATURE_COLUMNS if getattr(mark, f)),
        lesion_numbers=tuple(sorted((ml.nbss_lesion_no for ml in mark.lesions),
                                    key=lambda n: (len(n), n))),
        pathology=mark.pathology,
        reader=mark.reader,
        sr_uid=mark.sr_instance_uid,
        source=mark.source,
        current=bool(mark.current),
        client_outcome=outcome or CaseOutcome.UNKNOWN.value,
        extra=mark.extra,
    )


def search_marks(
    session: Session,
    *,
    client: str | None = None,
    study_uid: str | None = None,
    sop_uid: str | None = None,
    lesion_type: str | Iterable[str] | None = None,
    conspicuity: str | Iterable[str] | None = None,
    outcome: str | Iterable[str] | None = None,
    current: bool | None = True,
    limit: int | None = DEFAULT_LIMIT,
    offset: int = 0,
    restrict: Visibility | None = None,
) -> list[MarkRecord]:
    """Marks matching the filters (module notes); ``current=None`` includes superseded.

    Raises
    ------
    BadRequest
        For an unknown lesion type, conspicuity or outcome, or a bad page.
    """
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise BadRequest("offset must not be negative")
    stmt = _base()
    condition_ = restrict.at("instance") if restrict is not None else None
    if condition_ is not None:  # only marks on images the caller may see
        stmt = stmt.where(condition_)
    if client is not None:
        stmt = stmt.where(Patient.patient_id == client)
    if study_uid is not None:
        stmt = stmt.where(Study.study_instance_uid == study_uid)
    if sop_uid is not None:
        stmt = stmt.where(Mark.sop_instance_uid == sop_uid)
    kinds = finding_kinds(lesion_type)
    if kinds:
        stmt = stmt.where(Mark.finding_kind.in_(kinds))
    wanted = conspicuities(conspicuity)
    if wanted:
        stmt = stmt.where(Mark.conspicuity.in_(wanted))
    codes = outcomes(outcome)
    if codes:
        condition: ColumnElement[bool] = Client.outcome.in_(codes)
        if CaseOutcome.UNKNOWN.value in codes:
            condition = or_(condition, Client.pk.is_(None))
        stmt = stmt.where(condition)
    if current is not None:
        stmt = stmt.where(Mark.current.is_(current))
    stmt = stmt.order_by(Mark.pk).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_record(row) for row in session.execute(stmt)]


def marks_for_study(
    session: Session, study_uid: str, *, restrict: Visibility | None = None
) -> list[MarkRecord]:
    """The current marks on the images of one study (that the caller may see)."""
    return search_marks(session, study_uid=study_uid, limit=None, restrict=restrict)


def marks_for_image(
    session: Session, sop_uid: str, frame: int | None = None, *, all_frames: bool = False
) -> list[tuple[float, float, float, float]]:
    """Boxes of the current marks of an image: on ``frame`` (``None``/1 also takes the
    marks without a frame), or on every frame with ``all_frames``."""
    stmt = select(Mark.col_min, Mark.row_min, Mark.col_max, Mark.row_max).where(
        Mark.sop_instance_uid == sop_uid, Mark.current.is_(True)
    )
    if not all_frames:
        if frame is None or frame == 1:
            stmt = stmt.where(or_(Mark.frame_no.is_(None), Mark.frame_no == 1))
        else:
            stmt = stmt.where(Mark.frame_no == frame)
    return [tuple(row) for row in session.execute(stmt.order_by(Mark.pk))]  # type: ignore[misc]


# -- cohorts and statistics --------------------------------------------------------------


def _marked_images(
    kinds: Sequence[str], conspicuity: Sequence[str] = ()
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Mark.current.is_(True)]
    if kinds:
        conditions.append(Mark.finding_kind.in_(kinds))
    if conspicuity:
        conditions.append(Mark.conspicuity.in_(conspicuity))
    return conditions


def clients_with_marks(finding_type: str | Iterable[str] | None = None) -> Select[int]:
    """Patient pks of clients with current marks (of the given finding types).

    For cohort queries: ``Client.patient_pk.in_(clients_with_marks("mass"))``.
    """
    return (
        select(Study.patient_pk)
        .join(Series, Series.study_pk == Study.pk)
        .join(Instance, Instance.series_pk == Series.pk)
        .join(Mark, Mark.instance_pk == Instance.pk)
        .where(*_marked_images(finding_kinds(finding_type)))
        .distinct()
    )


def client_has_marks(
    finding_type: str | Iterable[str] | None = None,
    conspicuity: str | Iterable[str] | None = None,
) -> ColumnElement[bool]:
    """A condition on ``Client``: she has a current mark (of the given finding types and
    conspicuity, both on the same mark).

    Correlated on ``Client.patient_pk``, for ``cohorts.client_conditions``.
    """
    return exists(
        select(Mark.pk)
        .join(Instance, Mark.instance_pk == Instance.pk)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .where(Study.patient_pk == Client.patient_pk,
               *_marked_images(finding_kinds(finding_type), conspicuities(conspicuity)))
    )


def is_marked(session: Session, client_id: str) -> bool:
    """Whether the client has current marks (from the marks, not the client flag)."""
    return bool(session.scalar(select(exists(
        select(Mark.pk)
        .join(Instance, Mark.instance_pk == Instance.pk)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
        .where(Patient.patient_id == client_id, Mark.current.is_(True))
    ))))


def refresh_marked(session: Session) -> int:
    """Make every client's ``is_marked`` agree with the marks (repair, after deletes).

    Goes through the tally hook, so the statistics stay exact. Returns the number of
    clients changed (created ones included).
    """
    marked = set(session.scalars(
        select(Patient.patient_id).where(Patient.pk.in_(clients_with_marks()))
    ))
    flagged = set(session.scalars(select(Client.client_id).where(Client.is_marked.is_(True))))
    changed = 0
    for client_id in sorted(marked ^ flagged):
        patient_pk = session.scalar(select(Patient.pk).where(Patient.patient_id == client_id))
        client = ensure_client(session, client_id, patient_pk=patient_pk)
        changed += change_client(session, client, is_marked=client_id in marked)
    return changed
