"""A client's lesions and their pathology, by episode, as a timeline shows them.

One row per lesion finding (a biopsy or a surgical specimen of a lesion): side, NBSS
description, invasive or not, grade, HER2/ER/PR and size, oldest first, grouped by the
NBSS episode the lesion belongs to.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from omipacs.clinical.models import Client, Episode, Lesion, LesionFinding


@dataclass(frozen=True)
class LesionPathology:
    """One finding of one lesion."""

    side: str
    lesion_no: str
    description: str | None
    date: date | None
    opinion: str | None
    invasive: bool | None
    grade: str | None
    dcis_grade: str | None
    her2: str | None
    er: str | None
    pr: str | None
    size_mm: float | None


def client_pathology(session: Session, client_id: str) -> dict[str, list[LesionPathology]]:
    """The client's lesion findings keyed by NBSS episode ID (empty if none)."""
    rows = session.execute(
        select(Episode.nbss_episode_id, Lesion, LesionFinding)
        .join(Lesion, Lesion.episode_pk == Episode.pk)
        .outerjoin(LesionFinding, LesionFinding.lesion_pk == Lesion.pk)
        .join(Client, Episode.client_pk == Client.pk)
        .where(Client.client_id == client_id)
        .order_by(Episode.earliest_date, Lesion.nbss_lesion_no, LesionFinding.date_performed)
    ).all()
    found: dict[str, list[LesionPathology]] = defaultdict(list)
    for episode_id, lesion, finding in rows:
        found[episode_id].append(LesionPathology(
            side=lesion.side,
            lesion_no=lesion.nbss_lesion_no,
            description=lesion.description,
            date=finding.date_performed if finding else None,
            opinion=finding.opinion if finding else None,
            invasive=finding.invasive_present if finding else None,
            grade=finding.disease_grade if finding else None,
            dcis_grade=finding.dcis_grade if finding else None,
            her2=(finding.her2_status or finding.her2_score) if finding else None,
            er=finding.er_status if finding else None,
            pr=finding.pr_status if finding else None,
            size_mm=(finding.tumour_size_mm or finding.mammo_size_mm) if finding else None,
        ))
    return dict(found)
