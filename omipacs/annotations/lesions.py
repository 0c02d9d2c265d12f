"""Which NBSS lesions a mark points at, and what pathology found for them.

OMI-DB links a mark to lesions by number (``LinkedNBSSLesionNumber``); numbers are
unique only within an episode and a breast (omidb ``Mark.lesion_ids``). The episode is
the one the marked image's study is linked to (:mod:`omipacs.clinical.linking`); for a
screen before an interval cancer or a cancer (episode outcome CIP or MP) the lesion
lives in the later episode the outcome refers to, so that episode is tried next. The
breast is the image's laterality.

Pathology follows omidb's opinion rules (docs/data-model.md, "Outcomes") at lesion level first:
a finding of a surgery, core biopsy or cytology event that is malignant (malignancy
type, invasive component, or a category 5 opinion B5/C5/H5) makes the lesion
malignant; failing that, the event's opinion on that breast (OM malignant, OB benign);
failing that, a category 2 opinion (B2/C2) is benign.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from omipacs.annotations.codes import Pathology
from omipacs.clinical.codes import PATHOLOGY_KINDS
from omipacs.clinical.models import Episode, Event, Lesion, LesionFinding, StudyLink
from omipacs.index.models import Instance, Series

MALIGNANT_OPINIONS: Final = frozenset({"B5", "C5", "H5"})
BENIGN_OPINIONS: Final = frozenset({"B2", "C2"})


def candidate_episodes(session: Session, instance_pk: int) -> list[int]:
    """The episode of the image's study, then the episode its outcome refers to."""
    row = session.execute(
        select(StudyLink.episode_pk, Episode.outcome_ref_episode_pk)
        .select_from(Instance)
        .join(Series, Instance.series_pk == Series.pk)
        .join(StudyLink, StudyLink.study_pk == Series.study_pk)
        .join(Episode, Episode.pk == StudyLink.episode_pk)
        .where(Instance.pk == instance_pk)
    ).first()
    if row is None:
        return []
    return [pk for pk in row if pk is not None]


def linked_lesions(
    session: Session, instance_pk: int, laterality: str, numbers: Sequence[str]
) -> list[int]:
    """Lesion pks for the mark's numbers, on the image's breast, in the first episode
    (of :func:`candidate_episodes`) that has any of them."""
    if not numbers or laterality not in ("L", "R"):
        return []
    for episode_pk in candidate_episodes(session, instance_pk):
        found = list(session.scalars(
            select(Lesion.pk).where(
                Lesion.episode_pk == episode_pk,
                Lesion.side == laterality,
                Lesion.nbss_lesion_no.in_(list(numbers)),
            ).order_by(Lesion.pk)
        ))
        if found:
            return found
    return []


def pathology_of(session: Session, lesion_pks: Sequence[int]) -> Pathology | None:
    """Malignant, benign or unknown, over the lesions' pathology events (module notes)."""
    if not lesion_pks:
        return None
    rows = session.execute(
        select(
            Lesion.side,
            LesionFinding.opinion,
            LesionFinding.malignancy_type,
            LesionFinding.invasive_present,
            Event.left_opinion,
            Event.right_opinion,
        )
        .join(LesionFinding, LesionFinding.lesion_pk == Lesion.pk)
        .join(Event, Event.pk == LesionFinding.event_pk)
        .where(Lesion.pk.in_(list(lesion_pks)), Event.kind.in_([k.value for k in PATHOLOGY_KINDS]))
    ).all()
    side_opinions = set()
    benign = False
    for side, opinion, malignancy, invasive, left, right in rows:
        if malignancy in ("a", "b") or invasive is True or opinion in MALIGNANT_OPINIONS:
            return Pathology.MALIGNANT
        side_opinions.add(left if side == "L" else right)
        benign = benign or opinion in BENIGN_OPINIONS
    if "OM" in side_opinions:
        return Pathology.MALIGNANT
    if "OB" in side_opinions or benign:
        return Pathology.BENIGN
    return None


def pathology_for_mark(
    session: Session, instance_pk: int, laterality: str, numbers: Sequence[str]
) -> Pathology | None:
    """The pathology outcome of the lesions a mark on this image is linked to."""
    return pathology_of(session, linked_lesions(session, instance_pk, laterality, numbers))
