"""A client's longitudinal record: episodes in date order with their events and images.

:func:`client_timeline` shows each screening episode with the studies linked to it
(the screen, the assessment and its DBT two to four weeks later), its events and its
outcome; studies that match no episode are listed apart. :func:`find_priors` answers
"which screens came before this cancer?": the episodes classified CIP (before an
interval cancer) or MP (before a screen-detected cancer), with their studies.

Both take the caller's :class:`~omipacs.index.visibility.Visibility`: a researcher sees
only the studies of her licence's cohort version, and each study's instance count and
2D/3D flags range over the data types the licence grants, so a timeline reveals nothing
the licence's DICOMweb root would not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from omipacs.clinical.imaging import THREE_D_SOP_CLASSES, TWO_D_SOP_CLASSES
from omipacs.clinical.models import Client, Episode, Event, StudyLink
from omipacs.errors import NotFound
from omipacs.index.models import Instance, Series, Study
from omipacs.index.visibility import EVERYTHING, Visibility


@dataclass(frozen=True)
class TimelineStudy:
    """A study of the client."""

    study_uid: str
    date: date | None
    link_method: str
    event_kinds: tuple[str, ...]
    instances: int
    has_2d: bool
    has_3d: bool


@dataclass(frozen=True)
class TimelineEvent:
    """An event of an episode."""

    kind: str
    date: date | None
    left_opinion: str | None
    right_opinion: str | None


@dataclass(frozen=True)
class TimelineEpisode:
    """An episode with its events, studies and classification."""

    nbss_episode_id: str
    type: str | None
    action: str | None
    opened_date: date | None
    closed_date: date | None
    status: str | None
    outcome: str | None
    outcome_undefined: str
    outcome_ref_episode_id: str | None
    events: tuple[TimelineEvent, ...]
    studies: tuple[TimelineStudy, ...]


@dataclass(frozen=True)
class Timeline:
    """Everything known about one client, oldest first."""

    client_id: str
    outcome: str
    status: str | None
    is_marked: bool
    episodes: tuple[TimelineEpisode, ...]
    unlinked_studies: tuple[TimelineStudy, ...]

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, date):
                return value.isoformat()
            if isinstance(value, tuple | list):
                return [plain(v) for v in value]
            if hasattr(value, "__dataclass_fields__"):
                return {k: plain(getattr(value, k)) for k in value.__dataclass_fields__}
            return value

        result: dict[str, Any] = plain(self)
        return result


@dataclass(frozen=True)
class Prior:
    """An episode before a cancer, and its studies."""

    client_id: str
    prior_episode_id: str
    prior_outcome: str
    """CIP or MP."""
    cancer_episode_id: str | None
    prior_date: date | None
    cancer_date: date | None
    study_uids: tuple[str, ...]


def _visible_studies(visibility: Visibility) -> list[ColumnElement[bool]]:
    """The condition on ``Study`` (none when everything is visible)."""
    condition = visibility.at("study")
    return [] if condition is None else [condition]


def _studies(
    session: Session, client: Client, visibility: Visibility
) -> dict[int | None, list[TimelineStudy]]:
    """The client's visible studies grouped by linked episode pk (``None``: unlinked),
    each counting only its visible instances."""
    if client.patient_pk is None:
        return {}
    instances = Instance.series_pk == Series.pk
    if visibility.instance is not None:
        instances = and_(instances, visibility.instance(Instance))
    two = func.max(case((Instance.sop_class_uid.in_(TWO_D_SOP_CLASSES), 1), else_=0))
    three = func.max(case((Instance.sop_class_uid.in_(THREE_D_SOP_CLASSES), 1), else_=0))
    rows = session.execute(
        select(
            Study.study_instance_uid, Study.study_date, StudyLink.episode_pk, StudyLink.method,
            StudyLink.event_kinds, func.count(Instance.pk), two, three,
        )
        .select_from(Study)
        .outerjoin(StudyLink, StudyLink.study_pk == Study.pk)
        .outerjoin(Series, Series.study_pk == Study.pk)
        .outerjoin(Instance, instances)
        .where(Study.patient_pk == client.patient_pk, *_visible_studies(visibility))
        # Grouped by the primary keys: the other columns depend on them (and a JSON
        # column cannot be grouped on PostgreSQL).
        .group_by(Study.pk, StudyLink.study_pk)
        .order_by(Study.study_date, Study.pk)
    ).all()
    grouped: dict[int | None, list[TimelineStudy]] = defaultdict(list)
    for uid, day, episode_pk, method, kinds, count, has2, has3 in rows:
        grouped[episode_pk].append(
            TimelineStudy(uid, day, method or "", tuple(kinds or ()), int(count), bool(has2),
                          bool(has3))
        )
    return grouped


def client_timeline(
    session: Session, client_id: str, visibility: Visibility = EVERYTHING
) -> Timeline:
    """The client's episodes, events and the studies ``visibility`` shows, oldest first.

    Raises
    ------
    NotFound
        No client has this ID.
    """
    client = session.scalar(select(Client).where(Client.client_id == client_id))
    if client is None:
        raise NotFound("no such client")
    studies = _studies(session, client, visibility)
    episodes = session.scalars(
        select(Episode).where(Episode.client_pk == client.pk)
        .order_by(Episode.earliest_date.nulls_last(), Episode.pk)
    ).all()
    ids = {ep.pk: ep.nbss_episode_id for ep in episodes}
    events: dict[int, list[TimelineEvent]] = defaultdict(list)
    for ev in session.scalars(
        select(Event).where(Event.episode_pk.in_(list(ids))).order_by(Event.date_performed)
    ):
        events[ev.episode_pk].append(
            TimelineEvent(ev.kind, ev.date_performed, ev.left_opinion, ev.right_opinion)
        )
    return Timeline(
        client_id=client.client_id,
        outcome=client.outcome,
        status=client.status,
        is_marked=client.is_marked,
        episodes=tuple(
            TimelineEpisode(
                nbss_episode_id=ep.nbss_episode_id,
                type=ep.type,
                action=ep.action,
                opened_date=ep.opened_date,
                closed_date=ep.closed_date,
                status=ep.status,
                outcome=ep.outcome,
                outcome_undefined=ep.outcome_undefined,
                outcome_ref_episode_id=ids.get(ep.outcome_ref_episode_pk or -1),
                events=tuple(events.get(ep.pk, ())),
                studies=tuple(studies.get(ep.pk, ())),
            )
            for ep in episodes
        ),
        unlinked_studies=tuple(studies.get(None, ())),
    )


def find_priors(
    session: Session, client_id: str | None = None, visibility: Visibility = EVERYTHING
) -> list[Prior]:
    """Episodes before an interval cancer (CIP) or a malignancy (MP), with the studies of
    them that ``visibility`` shows.

    For one client, or for the whole archive when ``client_id`` is ``None``.
    """
    stmt = (
        select(Client.client_id, Episode)
        .join(Episode, Episode.client_pk == Client.pk)
        .where(Episode.outcome.in_(("CIP", "MP")))
        .order_by(Client.client_id, Episode.earliest_date)
    )
    if client_id is not None:
        stmt = stmt.where(Client.client_id == client_id)
    rows = session.execute(stmt).all()
    if not rows:
        return []
    prior_pks = [ep.pk for _, ep in rows]
    ref_pks = [ep.outcome_ref_episode_pk for _, ep in rows if ep.outcome_ref_episode_pk]
    refs = {
        pk: (nbss_id, day)
        for pk, nbss_id, day in session.execute(
            select(Episode.pk, Episode.nbss_episode_id, Episode.earliest_date)
            .where(Episode.pk.in_(ref_pks))
        )
    }
    study_uids: dict[int, list[str]] = defaultdict(list)
    for episode_pk, uid in session.execute(
        select(StudyLink.episode_pk, Study.study_instance_uid)
        .join(Study, Study.pk == StudyLink.study_pk)
        .where(StudyLink.episode_pk.in_(prior_pks), *_visible_studies(visibility))
        .order_by(Study.study_date, Study.study_instance_uid)
    ):
        if episode_pk is not None:
            study_uids[episode_pk].append(uid)
    priors = []
    for cid, ep in rows:
        ref_id, ref_date = refs.get(ep.outcome_ref_episode_pk or -1, (None, None))
        priors.append(
            Prior(
                client_id=cid,
                prior_episode_id=ep.nbss_episode_id,
                prior_outcome=ep.outcome or "",
                cancer_episode_id=ref_id,
                prior_date=ep.earliest_date,
                cancer_date=ref_date,
                study_uids=tuple(study_uids.get(ep.pk, ())),
            )
        )
    return priors
