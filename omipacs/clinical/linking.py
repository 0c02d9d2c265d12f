"""Link a client's studies to her episodes, as omidb links IMAGEDB studies to NBSS.

A study belongs to the episode that lists it (the source's ``StudyList``, omidb's
IMAGEDB ``EpisodeID``); failing that, to the episode with an event on the study date;
failing that, to the episode whose window (opened to closed, or to 90 days after its
last known date while it has no closed date) holds the study date. The events of the
episode on the study date are recorded as the study's event kinds, so a screening
study shows as the screen and a study two weeks later as the assessment (the DBT); if
two studies of one episode share a date the event links are dropped, as omidb does,
since they cannot be told apart (docs/data-model.md, "Linking studies to episodes").

Dates on both sides are the de-identified ones, shifted by the same per-client offset,
so the comparison is exact.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from omipacs.clinical.models import Client, Episode, Event, StudyLink
from omipacs.index.models import Study

OPEN_EPISODE_DAYS: Final = 90
"""How long after its last known date an episode without a closed date still claims
studies (a recall assessment follows the screen by 2-4 weeks)."""


class LinkMethod:
    """How a study was linked (the ``study_link.method`` values)."""

    EPISODE_ID = "episode_id"
    EVENT_DATE = "event_date"
    WINDOW = "window"
    NONE = ""


@dataclass(frozen=True)
class EpisodeWindow:
    """What linking needs to know about one episode."""

    pk: int
    study_uids: frozenset[str]
    event_dates: dict[date, frozenset[str]]
    """Event kinds by the dates they happened on."""
    start: date | None
    end: date | None


@dataclass(frozen=True)
class Link:
    """The decision for one study."""

    episode_pk: int | None
    method: str
    event_kinds: tuple[str, ...]


def episode_windows(session: Session, client_pk: int) -> list[EpisodeWindow]:
    """The client's episodes, in date order, as linking sees them."""
    episodes = session.scalars(
        select(Episode).where(Episode.client_pk == client_pk)
        .order_by(Episode.earliest_date.nulls_last(), Episode.pk)
    ).all()
    events = session.execute(
        select(Event.episode_pk, Event.kind, Event.dates)
        .join(Episode, Event.episode_pk == Episode.pk)
        .where(Episode.client_pk == client_pk)
    ).all()
    by_episode: dict[int, dict[date, set[str]]] = defaultdict(lambda: defaultdict(set))
    for episode_pk, kind, dates in events:
        for text in dates or []:
            by_episode[episode_pk][date.fromisoformat(text)].add(kind)
    windows = []
    for ep in episodes:
        dated = by_episode.get(ep.pk, {})
        known = [d for d in (ep.opened_date, ep.closed_date, ep.ic_diagnosis_date) if d]
        known += list(dated)
        start = min([d for d in (ep.opened_date, *dated) if d], default=None)
        if ep.closed_date is not None:
            end: date | None = max(known)
        else:
            end = max(known) + timedelta(days=OPEN_EPISODE_DAYS) if known else None
        windows.append(
            EpisodeWindow(
                pk=ep.pk,
                study_uids=frozenset(ep.study_uids or ()),
                event_dates={d: frozenset(k) for d, k in dated.items()},
                start=start,
                end=end,
            )
        )
    return windows


def choose_episode(study_uid: str, study_date: date | None,
                   windows: list[EpisodeWindow]) -> Link:
    """Link one study (pure: the rules of the module docstring, in order)."""
    def kinds(window: EpisodeWindow) -> tuple[str, ...]:
        if study_date is None:
            return ()
        return tuple(sorted(window.event_dates.get(study_date, ())))

    for window in windows:
        if study_uid in window.study_uids:
            return Link(window.pk, LinkMethod.EPISODE_ID, kinds(window))
    if study_date is None:
        return Link(None, LinkMethod.NONE, ())
    for window in windows:
        if study_date in window.event_dates:
            return Link(window.pk, LinkMethod.EVENT_DATE, kinds(window))
    holding = [w for w in windows if w.start and w.end and w.start <= study_date <= w.end]
    if holding:
        window = max(holding, key=lambda w: (w.start or date.min, w.pk))
        return Link(window.pk, LinkMethod.WINDOW, kinds(window))
    return Link(None, LinkMethod.NONE, ())


def link_client(session: Session, client: Client) -> int:
    """(Re)link every study of ``client``; returns how many studies were linked.

    Replaces the client's ``study_link`` rows, so it is safe to call after every
    import and every new image.
    """
    if client.patient_pk is None:
        return 0
    studies = session.execute(
        select(Study.pk, Study.study_instance_uid, Study.study_date)
        .where(Study.patient_pk == client.patient_pk)
        .order_by(Study.study_date, Study.pk)
    ).all()
    if not studies:
        return 0
    windows = episode_windows(session, client.pk)
    links = {pk: choose_episode(uid, day, windows) for pk, uid, day in studies}
    # Two studies of one episode on one date: their events cannot be told apart.
    shared = Counter((links[pk].episode_pk, day) for pk, _, day in studies
                     if links[pk].episode_pk is not None)
    session.execute(delete(StudyLink).where(StudyLink.study_pk.in_([s[0] for s in studies])))
    session.add_all(
        StudyLink(
            study_pk=pk,
            client_pk=client.pk,
            episode_pk=links[pk].episode_pk,
            method=links[pk].method,
            event_kinds=[] if shared[(links[pk].episode_pk, day)] > 1
            else list(links[pk].event_kinds),
        )
        for pk, _, day in studies
    )
    session.flush()
    return sum(1 for link in links.values() if link.episode_pk is not None)
