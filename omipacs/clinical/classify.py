"""Episode and client outcomes from NBSS events: pure functions, no database.

This ports the classification of the ``omidb`` package (0.13.1, ``episode.py`` and
``classificationtools.py``) that OMI-DB's own statistics are built with (docs/data-model.md,
"Outcomes"), so a cohort drawn from omipacs means what the same words mean in OMI-DB:

* :func:`episode_status` judges one episode on its own events (CI, M, B, NAB, NA, N, or
  ``None`` when the events cannot decide);
* :func:`episode_outcome` also looks at the later episodes of the client, which is how a
  normal screen becomes the prior of an interval cancer (CIP) or of a screen-detected
  cancer (MP);
* :func:`client_status` is omidb's client precedence (CI, M, B, N) and
  :func:`client_outcome` the brochure's case label, which adds *Unknown*.

Deviations from omidb, each where omidb raises or returns a less precise label:

* an episode of type CI whose events contradict it is undefined with reason
  ``InvalidCI`` (omidb says ``InvalidEvents`` and notes that ``InvalidCI`` was meant);
* an episode whose only decisive event is surgery without a malignant or benign opinion
  has no status, and its outcome is ``InvalidEvents`` (omidb raises ``ValueError``);
* a benign episode that needs a follow-up and has no later episode is
  ``NoSubsequentEpisode`` (omidb raises ``ValueError`` when only the benign follow-up
  is required);
* a CI episode without event dates or a diagnosis date sorts by its opened date (omidb
  cannot sort it and reports ``DateError``);
* ``INTERVALCANCER`` blocks are kept as events but, as in omidb where they are not
  events at all, they neither need opinions nor give dates for sorting.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Final

from omipacs.clinical.codes import (
    PATHOLOGY_KINDS,
    SCREENING_KINDS,
    CaseOutcome,
    EpisodeType,
    EventKind,
    SideOpinion,
)


class EpisodeStatus(StrEnum):
    """An episode judged on its own events (omidb ``episode.Status``)."""

    CI = "CI"
    """Interval cancer."""
    M = "M"
    """Malignant."""
    B = "B"
    """Benign."""
    NAB = "NAB"
    """Normal, with assessment and biopsy."""
    NA = "NA"
    """Normal, with assessment."""
    N = "N"
    """Normal."""


class EpisodeOutcome(StrEnum):
    """An episode judged with the client's later episodes (omidb ``EpisodeOutcome``)."""

    CI = "CI"
    """Interval cancer."""
    CIP = "CIP"
    """The episode before an interval cancer (its prior)."""
    M = "M"
    """Malignant."""
    MP = "MP"
    """The episode before a screen-detected cancer."""
    B = "B"
    """Benign."""
    NAB = "NAB"
    """Normal with assessment and biopsy."""
    NA = "NA"
    """Normal with assessment."""
    N = "N"
    """Normal."""


class UndefinedReason(StrEnum):
    """Why an episode has no outcome (omidb ``UndefinedEpisodeOutcome``)."""

    INVALID_EVENTS = "InvalidEvents"
    """No events, or a non-screening event with no opinion on either breast."""
    INVALID_FOLLOW_UP = "InvalidFollowUp"
    """A follow-up episode was required and none is late enough."""
    INVALID_PRIOR = "InvalidPrior"
    """A cancer follows, but not within the prior window."""
    INVALID_CI = "InvalidCI"
    """The episode type is CI but its opinions contradict an interval cancer."""
    DATE_ERROR = "DateError"
    """The client's episodes cannot be put in date order."""
    NO_SUBSEQUENT_EPISODE = "NoSubsequentEpisode"
    """A follow-up episode was required and there is none."""


class ClientStatus(StrEnum):
    """omidb ``client.Status``: the precedence CI, M, B, N over all episodes."""

    CI = "CI"
    M = "M"
    B = "B"
    N = "N"


@dataclass(frozen=True)
class EventFacts:
    """What classification needs from one event."""

    kind: EventKind
    left_opinion: SideOpinion | None = None
    right_opinion: SideOpinion | None = None
    dates: tuple[date, ...] = ()


@dataclass(frozen=True)
class EpisodeFacts:
    """What classification needs from one episode.

    ``events`` empty means the episode has no event block at all (omidb ``events is
    None``). ``key`` identifies the episode among the client's (the NBSS episode ID).
    """

    key: str
    type: EpisodeType | None = None
    events: tuple[EventFacts, ...] = ()
    opened_date: date | None = None
    diagnosis_date: date | None = None

    def of(self, kinds: Iterable[EventKind]) -> tuple[EventFacts, ...]:
        """The events of these kinds."""
        wanted = frozenset(kinds)
        return tuple(e for e in self.events if e.kind in wanted)


@dataclass(frozen=True)
class Windows:
    """Month windows of :func:`episode_outcome`; ``None`` means "no limit".

    The defaults are omidb's helper defaults (36 months for the prior of an interval
    cancer, 39 for the prior of a screen-detected cancer) and no follow-up requirement.
    """

    ci_prior_months: int | None = 36
    cancer_prior_months: int | None = 39
    normal_follow_up_months: int | None = None
    benign_follow_up_months: int | None = None


DEFAULT_WINDOWS: Final = Windows()


@dataclass(frozen=True)
class OutcomeResult:
    """:func:`episode_outcome`: an outcome, or why there is none, and the episode it
    depends on (the cancer a prior precedes, the follow-up that confirmed a normal)."""

    outcome: EpisodeOutcome | None
    undefined: UndefinedReason | None = None
    ref_key: str | None = None


@dataclass(frozen=True)
class EpisodeClassification:
    """Everything stored on an episode row."""

    status: EpisodeStatus | None
    outcome: OutcomeResult
    earliest_date: date | None
    post_op: bool | None


@dataclass(frozen=True)
class ClientClassification:
    """Everything stored on a client row, and per episode."""

    status: ClientStatus | None
    outcome: CaseOutcome
    reason: str
    episodes: dict[str, EpisodeClassification] = field(default_factory=dict)


class DateOrderError(ValueError):
    """An episode has no date to sort it by."""


# -- one episode ---------------------------------------------------------------------


def _has_opinion(ep: EpisodeFacts, opinion: SideOpinion) -> bool:
    return any(
        opinion in (e.left_opinion, e.right_opinion) for e in ep.of(PATHOLOGY_KINDS)
    )


def has_malignant_opinions(ep: EpisodeFacts) -> bool:
    """True if surgery or a biopsy gave OM on either breast."""
    return _has_opinion(ep, SideOpinion.OM)


def has_benign_opinions(ep: EpisodeFacts) -> bool:
    """True if surgery or a biopsy gave OB on either breast."""
    return _has_opinion(ep, SideOpinion.OB)


def is_interval_cancer(ep: EpisodeFacts) -> bool:
    """Type CI, and either malignant opinions or no surgery or biopsy at all."""
    if ep.type is not EpisodeType.CI:
        return False
    return has_malignant_opinions(ep) or not ep.of(PATHOLOGY_KINDS)


def valid_events(ep: EpisodeFacts) -> bool:
    """False if a non-screening event has no opinion on either breast.

    Such an event says the woman had more than a screen and the result is unknown
    (omidb ``_validate_events``).
    """
    for event in ep.events:
        if event.kind in SCREENING_KINDS or event.kind is EventKind.INTERVAL_CANCER:
            continue
        if event.left_opinion is None and event.right_opinion is None:
            return False
    return True


def episode_status(ep: EpisodeFacts) -> EpisodeStatus | None:
    """The first matching rule of docs/data-model.md, "Outcomes" (omidb ``Episode.status``)."""
    if is_interval_cancer(ep):
        return EpisodeStatus.CI
    if ep.type is EpisodeType.CI:
        return None
    if has_malignant_opinions(ep):
        return EpisodeStatus.M
    if has_benign_opinions(ep):
        return EpisodeStatus.B
    if not ep.events or not valid_events(ep) or ep.of([EventKind.SURGERY]):
        return None
    if ep.of([EventKind.ASSESSMENT]):
        if ep.of([EventKind.BIOPSY_FINE, EventKind.BIOPSY_WIDE]):
            return EpisodeStatus.NAB
        return EpisodeStatus.NA
    return EpisodeStatus.N


def earliest_date(ep: EpisodeFacts) -> date:
    """The date an episode sorts by: its earliest event date, else the interval-cancer
    diagnosis date (CI) or the opened date.

    Raises
    ------
    DateOrderError
        The episode has none of these dates.
    """
    dates = [d for e in ep.events if e.kind is not EventKind.INTERVAL_CANCER for d in e.dates]
    if dates:
        return min(dates)
    if ep.type is EpisodeType.CI and ep.diagnosis_date is not None:
        return ep.diagnosis_date
    if ep.opened_date is not None:
        return ep.opened_date
    raise DateOrderError(f"episode {ep.key} has no date")


# -- an episode among the client's ---------------------------------------------------


def _sorted(episodes: Sequence[EpisodeFacts]) -> list[EpisodeFacts]:
    # sorted() is stable, so episodes on the same date keep the source order, as in omidb.
    return sorted(episodes, key=earliest_date)


def _following(ep: EpisodeFacts, episodes: Sequence[EpisodeFacts]) -> list[EpisodeFacts]:
    ordered = _sorted(episodes)
    index = next(i for i, other in enumerate(ordered) if other is ep)
    return ordered[index + 1 :]


def _within(first: EpisodeFacts, later: EpisodeFacts, months: int) -> bool:
    gap = earliest_date(later) - earliest_date(first)
    return gap <= timedelta(days=months * 365 / 12)


def _not_cancer(ep: EpisodeFacts) -> bool:
    status = episode_status(ep)
    return not (
        status in (EpisodeStatus.CI, EpisodeStatus.M) or ep.type is EpisodeType.CI
    )


def _normal(ep: EpisodeFacts, ref: str | None = None) -> OutcomeResult:
    status = episode_status(ep)
    labels = {
        EpisodeStatus.NAB: EpisodeOutcome.NAB,
        EpisodeStatus.NA: EpisodeOutcome.NA,
        EpisodeStatus.N: EpisodeOutcome.N,
    }
    if status in labels:
        return OutcomeResult(labels[status], None, ref)
    return OutcomeResult(None, UndefinedReason.INVALID_EVENTS, ref)


def _ci_prior(ep: EpisodeFacts, ci: EpisodeFacts, months: int) -> bool | None:
    """True, False, or ``None`` when the later CI episode is itself contradictory."""
    if not _within(ep, ci, months):
        return False
    return True if is_interval_cancer(ci) else None


def _cancer_prior(ep: EpisodeFacts, cancer: EpisodeFacts, months: int) -> bool:
    return (
        cancer.type is not EpisodeType.CI
        and has_malignant_opinions(cancer)
        and _within(ep, cancer, months)
    )


def _months_between(first: EpisodeFacts, later: EpisodeFacts) -> int:
    days = (earliest_date(later) - earliest_date(first)).days
    return math.ceil(12 * days / 365.0)


def episode_outcome(
    ep: EpisodeFacts, episodes: Sequence[EpisodeFacts], windows: Windows = DEFAULT_WINDOWS
) -> OutcomeResult:
    """Classify ``ep`` among all of the client's ``episodes`` (which include it).

    Precedence (omidb ``classificationtools.episode_outcome``): CI; M; then the first
    later episode inside the longest prior window decides CIP or MP (or that the prior
    is invalid); then B; then NAB, NA or N, each optionally requiring a non-cancer
    follow-up episode after the follow-up window. A prior window of ``None`` means the
    next episode qualifies however far away it is.
    """
    status = episode_status(ep)
    if status is EpisodeStatus.CI:
        return OutcomeResult(EpisodeOutcome.CI)
    if ep.type is EpisodeType.CI:
        return OutcomeResult(None, UndefinedReason.INVALID_CI)
    if status is EpisodeStatus.M:
        return OutcomeResult(EpisodeOutcome.M)
    if not ep.events or not valid_events(ep):
        return OutcomeResult(None, UndefinedReason.INVALID_EVENTS)
    try:
        following = _following(ep, episodes)
        for later in following:
            if not valid_events(later):
                return OutcomeResult(None, UndefinedReason.INVALID_EVENTS)
        return _with_following(ep, status, following, windows)
    except DateOrderError:
        return OutcomeResult(None, UndefinedReason.DATE_ERROR)


def _with_following(
    ep: EpisodeFacts,
    status: EpisodeStatus | None,
    following: list[EpisodeFacts],
    windows: Windows,
) -> OutcomeResult:
    if not following:
        required = (
            windows.benign_follow_up_months
            if status is EpisodeStatus.B
            else windows.normal_follow_up_months
        )
        if required is not None:
            return OutcomeResult(None, UndefinedReason.NO_SUBSEQUENT_EPISODE)
        return OutcomeResult(EpisodeOutcome.B) if status is EpisodeStatus.B else _normal(ep)

    nearest = _months_between(ep, following[0])
    ci_months = windows.ci_prior_months if windows.ci_prior_months is not None else nearest
    cancer_months = (
        windows.cancer_prior_months if windows.cancer_prior_months is not None else nearest
    )
    longest = max(ci_months, cancer_months)
    for later in following:
        if not _within(ep, later, longest):
            break
        if later.type is EpisodeType.CI:
            prior = _ci_prior(ep, later, ci_months)
            if prior:
                return OutcomeResult(EpisodeOutcome.CIP, None, later.key)
            reason = UndefinedReason.INVALID_EVENTS if prior is None else (
                UndefinedReason.INVALID_PRIOR
            )
            return OutcomeResult(None, reason, later.key)
        if episode_status(later) is EpisodeStatus.M:
            if _cancer_prior(ep, later, cancer_months):
                return OutcomeResult(EpisodeOutcome.MP, None, later.key)
            return OutcomeResult(None, UndefinedReason.INVALID_PRIOR, later.key)

    if status is EpisodeStatus.B:
        if windows.benign_follow_up_months is None:
            return OutcomeResult(EpisodeOutcome.B)
        months = windows.benign_follow_up_months
    else:
        if windows.normal_follow_up_months is None:
            return _normal(ep)
        months = windows.normal_follow_up_months

    follow_up: EpisodeFacts | None = None
    for later in following:
        if not later.events:
            return OutcomeResult(None, UndefinedReason.INVALID_EVENTS, later.key)
        if _within(ep, later, months):
            if not _not_cancer(later):
                return OutcomeResult(None, UndefinedReason.INVALID_PRIOR, later.key)
        else:
            follow_up = later
            break
    if follow_up is None:
        return OutcomeResult(None, UndefinedReason.INVALID_FOLLOW_UP)
    if not _not_cancer(follow_up):
        return OutcomeResult(None, UndefinedReason.INVALID_PRIOR, follow_up.key)
    if status is EpisodeStatus.B:
        return OutcomeResult(EpisodeOutcome.B, None, follow_up.key)
    return _normal(ep, follow_up.key)


def is_post_op(ep: EpisodeFacts, episodes: Sequence[EpisodeFacts]) -> bool | None:
    """True if an earlier episode had surgery or was of type CI; ``None`` if the
    episodes cannot be put in date order."""
    try:
        ordered = _sorted(episodes)
    except DateOrderError:
        return None
    index = next(i for i, other in enumerate(ordered) if other is ep)
    return any(
        earlier.of([EventKind.SURGERY]) or earlier.type is EpisodeType.CI
        for earlier in ordered[:index]
    )


# -- the client ----------------------------------------------------------------------


def client_status(episodes: Sequence[EpisodeFacts]) -> ClientStatus | None:
    """omidb ``Client.status``: CI if any episode is of type CI, then M, B, else N.

    ``None`` for a client with no episodes (nothing is known).
    """
    if not episodes:
        return None
    if any(ep.type is EpisodeType.CI for ep in episodes):
        return ClientStatus.CI
    if any(has_malignant_opinions(ep) for ep in episodes):
        return ClientStatus.M
    if any(has_benign_opinions(ep) for ep in episodes):
        return ClientStatus.B
    return ClientStatus.N


def client_outcome(episodes: Sequence[EpisodeFacts]) -> tuple[CaseOutcome, str]:
    """The brochure's label for a client, with the reason when it is Unknown.

    Brochure definitions: interval cancer, malignant and benign are "classified by
    surgery or biopsy, or previously classified" so the precedence over episodes is
    omidb's (CI, M, B); Unknown is "status None or an undefined outcome" (docs/data-model.md,
    "Outcomes"), made precise as:

    * no episodes: nothing is known;
    * an episode of type CI that is not an interval cancer (its biopsy or surgery
      found no malignancy) and no malignant episode: the record contradicts itself;
    * otherwise normal, but some episode has no status (an event without opinions,
      surgery without a malignant or benign opinion, no events): normal cannot be
      confirmed.
    """
    if not episodes:
        return CaseOutcome.UNKNOWN, "no clinical episodes"
    if any(is_interval_cancer(ep) for ep in episodes):
        return CaseOutcome.INTERVAL_CANCER, ""
    if any(has_malignant_opinions(ep) for ep in episodes):
        return CaseOutcome.MALIGNANT, ""
    if any(ep.type is EpisodeType.CI for ep in episodes):
        return CaseOutcome.UNKNOWN, UndefinedReason.INVALID_CI.value
    if any(has_benign_opinions(ep) for ep in episodes):
        return CaseOutcome.BENIGN, ""
    if any(episode_status(ep) is None for ep in episodes):
        return CaseOutcome.UNKNOWN, "episode without status"
    return CaseOutcome.NORMAL, ""


def classify_client(
    episodes: Sequence[EpisodeFacts], windows: Windows = DEFAULT_WINDOWS
) -> ClientClassification:
    """Status and outcome of a client and of each of her episodes (by ``key``)."""
    outcome, reason = client_outcome(episodes)
    per_episode: dict[str, EpisodeClassification] = {}
    for ep in episodes:
        try:
            first: date | None = earliest_date(ep)
        except DateOrderError:
            first = None
        per_episode[ep.key] = EpisodeClassification(
            status=episode_status(ep),
            outcome=episode_outcome(ep, episodes, windows),
            earliest_date=first,
            post_op=is_post_op(ep, episodes),
        )
    return ClientClassification(client_status(episodes), outcome, reason, per_episode)
