"""The images of a study as a page shows them: laterality, view, and whether marked.

A study view shows each image's thumbnail labelled with its view (RCC, LMLO, ...), the
standard four first. Only images the caller may see are listed (``visibility``: a
licence's members within its data scopes), and the marks only when the caller may see
marks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from omipacs.annotations.models import Mark
from omipacs.dicom import uids
from omipacs.index.models import Instance, Series, Study
from omipacs.index.visibility import EVERYTHING, Visibility

VIEW_ORDER: Final = ("RCC", "LCC", "RMLO", "LMLO")
FOR_PROCESSING: Final = frozenset({
    uids.MG_FOR_PROCESSING, uids.BREAST_PROJECTION_PROCESSING,
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # DX for processing
})
"""The four standard screening views, in the order a reader hangs them."""


@dataclass(frozen=True)
class StudyImage:
    """One image of a study."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    laterality: str
    view_position: str
    frames: int
    marks: int
    """Current expert marks on it (0 when the caller may not see marks)."""
    pixels: bool
    marked_frame: int | None = None
    """For a multi-frame image (a tomosynthesis stack), the first frame with a mark: the
    frame to show, since the middle slice may carry none."""

    @property
    def for_processing(self) -> bool:
        """An unprocessed (raw detector) image rather than the one for display."""
        return self.sop_class_uid in FOR_PROCESSING

    @property
    def view(self) -> str:
        """``RCC``, ``LMLO``... (laterality and view position)."""
        return f"{self.laterality}{self.view_position}".strip() or "image"


def _order(image: StudyImage) -> tuple[int, str, bool, str]:
    view = image.view
    rank = VIEW_ORDER.index(view) if view in VIEW_ORDER else len(VIEW_ORDER)
    return rank, view, image.for_processing, image.sop_uid


def study_images(
    session: Session,
    study_uids: list[str],
    visibility: Visibility = EVERYTHING,
    *,
    marks: bool = True,
) -> dict[str, list[StudyImage]]:
    """The visible images of each study with pixel data, standard views first."""
    if not study_uids:
        return {}
    cond = visibility.at("instance")
    rows = session.execute(
        select(Study.study_instance_uid, Series.series_instance_uid, Instance.pk,
               Instance.sop_instance_uid, Instance.sop_class_uid, Instance.laterality,
               Instance.view_position, Instance.number_of_frames, Instance.rows)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .where(Study.study_instance_uid.in_(study_uids), *([cond] if cond is not None else []))
    ).all()
    counts: dict[int, int] = {}
    frames: dict[int, int] = {}
    if marks and rows:
        pks = [r[2] for r in rows]
        for pk, frame in session.execute(
            select(Mark.instance_pk, Mark.frame_no)
            .where(Mark.instance_pk.in_(pks), Mark.current.is_(True))
        ):
            if pk is not None:
                counts[pk] = counts.get(pk, 0) + 1
                if frame is not None:
                    frames[pk] = min(frame, frames.get(pk, frame))
    found: dict[str, list[StudyImage]] = {uid: [] for uid in study_uids}
    for study, series, pk, sop, sop_class, lat, view, frames_of, n_rows in rows:
        if n_rows is None:
            continue  # no pixels (an SR, a presentation state)
        n_frames = int(frames_of or 1)
        marked = frames.get(pk) if n_frames > 1 else None
        found[study].append(StudyImage(study, series, sop, sop_class, lat or "", view or "",
                                       n_frames, counts.get(pk, 0), True, marked))
    for images in found.values():
        images.sort(key=_order)
    return found
