"""Every rule of docs/data-model.md, "Outcomes", as tables of episodes and expected labels."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from omipacs.clinical.classify import (
    ClientStatus,
    EpisodeFacts,
    EpisodeOutcome,
    EpisodeStatus,
    EventFacts,
    UndefinedReason,
    Windows,
    classify_client,
    client_outcome,
    client_status,
    earliest_date,
    episode_outcome,
    episode_status,
    is_post_op,
)
from omipacs.clinical.codes import CaseOutcome, EpisodeType, EventKind, SideOpinion

K = EventKind
Op = SideOpinion
T = EpisodeType
DAY0 = date(2015, 3, 2)


def ev(kind: EventKind, left: SideOpinion | None = None, right: SideOpinion | None = None,
       day: int = 0) -> EventFacts:
    return EventFacts(kind, left, right, (DAY0 + timedelta(days=day),))


def ep(key: str, type_: EpisodeType | None, *events: EventFacts, opened: int | None = None,
       diagnosed: int | None = None) -> EpisodeFacts:
    return EpisodeFacts(
        key, type_, tuple(events),
        opened_date=None if opened is None else DAY0 + timedelta(days=opened),
        diagnosis_date=None if diagnosed is None else DAY0 + timedelta(days=diagnosed),
    )


def months(n: float) -> int:
    """Days in ``n`` months as omidb counts them (365/12 days a month)."""
    return int(n * 365 / 12)


def screen(day: int = 0) -> EventFacts:
    return ev(K.SCREENING, Op.ON, Op.ON, day)


def normal(key: str, day: int) -> EpisodeFacts:
    return ep(key, T.R, screen(day))


def malignant(key: str, day: int) -> EpisodeFacts:
    return ep(key, T.R, screen(day), ev(K.ASSESSMENT, Op.OS, None, day + 14),
              ev(K.BIOPSY_WIDE, Op.OM, None, day + 21))


def interval(key: str, day: int, *, biopsy: SideOpinion | None = None) -> EpisodeFacts:
    events = [ev(K.CLINICAL, Op.OS, None, day)]
    if biopsy is not None:
        events.append(ev(K.BIOPSY_WIDE, biopsy, None, day + 7))
    return ep(key, T.CI, *events, diagnosed=day)


STATUS_CASES = [
    # rule 1: CI
    ("CI with malignant biopsy", ep("1", T.CI, ev(K.BIOPSY_WIDE, Op.OM)), EpisodeStatus.CI),
    ("CI with malignant surgery", ep("1", T.CI, ev(K.SURGERY, None, Op.OM)), EpisodeStatus.CI),
    ("CI without biopsy or surgery", ep("1", T.CI, ev(K.CLINICAL, Op.OS)), EpisodeStatus.CI),
    ("CI with no events at all", ep("1", T.CI, diagnosed=0), EpisodeStatus.CI),
    # rule 2: CI type that fails the interval-cancer test
    ("CI with benign biopsy", ep("1", T.CI, ev(K.BIOPSY_WIDE, Op.OB)), None),
    ("CI with non-malignant surgery", ep("1", T.CI, ev(K.SURGERY, Op.ON, Op.ON)), None),
    ("CI with uncertain fine needle", ep("1", T.CI, ev(K.BIOPSY_FINE, Op.OU)), None),
    # rule 3: malignant opinions
    ("wide-bore OM left", ep("1", T.R, screen(), ev(K.BIOPSY_WIDE, Op.OM, None)),
     EpisodeStatus.M),
    ("fine-needle OM right", ep("1", T.R, ev(K.BIOPSY_FINE, None, Op.OM)), EpisodeStatus.M),
    ("surgery OM", ep("1", T.R, ev(K.SURGERY, Op.ON, Op.OM)), EpisodeStatus.M),
    ("M wins over B", ep("1", T.R, ev(K.BIOPSY_WIDE, Op.OB), ev(K.SURGERY, Op.OM)),
     EpisodeStatus.M),
    ("OM on assessment does not count",
     ep("1", T.R, ev(K.ASSESSMENT, Op.OM, None)), EpisodeStatus.NA),
    # rule 4: benign opinions
    ("wide-bore OB", ep("1", T.R, screen(), ev(K.BIOPSY_WIDE, Op.OB)), EpisodeStatus.B),
    ("surgery OB", ep("1", T.R, ev(K.SURGERY, None, Op.OB)), EpisodeStatus.B),
    ("benign despite a null-opinion event",
     ep("1", T.R, ev(K.BIOPSY_FINE, Op.OB), ev(K.CLINICAL)), EpisodeStatus.B),
    # rule 5: undefined
    ("no events", ep("1", T.R, opened=0), None),
    ("assessment with null opinions", ep("1", T.R, screen(), ev(K.ASSESSMENT)), None),
    ("clinical with null opinions", ep("1", T.R, ev(K.CLINICAL)), None),
    ("biopsy with null opinions", ep("1", T.R, ev(K.ASSESSMENT, Op.OS), ev(K.BIOPSY_WIDE)),
     None),
    ("surgery without M or B", ep("1", T.R, ev(K.SURGERY, Op.ON, Op.OS)), None),
    # rule 6-8: NAB, NA, N
    ("assessment and wide-bore biopsy",
     ep("1", T.R, screen(), ev(K.ASSESSMENT, Op.OS), ev(K.BIOPSY_WIDE, Op.ON)), EpisodeStatus.NAB),
    ("assessment and fine needle",
     ep("1", T.R, ev(K.ASSESSMENT, None, Op.OS), ev(K.BIOPSY_FINE, None, Op.OU)),
     EpisodeStatus.NAB),
    ("assessment only", ep("1", T.R, screen(), ev(K.ASSESSMENT, Op.ON)), EpisodeStatus.NA),
    ("screening only", ep("1", T.R, screen()), EpisodeStatus.N),
    ("screening with null opinions is still normal", ep("1", T.F, ev(K.SCREENING)),
     EpisodeStatus.N),
    ("other screening only", ep("1", T.R, ev(K.OTHER_SCREENING)), EpisodeStatus.N),
    ("biopsy without assessment", ep("1", T.R, ev(K.BIOPSY_WIDE, Op.OS)), EpisodeStatus.N),
    ("interval-cancer block needs no opinions", ep("1", T.R, screen(), ev(K.INTERVAL_CANCER)),
     EpisodeStatus.N),
    ("no type, screening", ep("1", None, screen()), EpisodeStatus.N),
]


@pytest.mark.parametrize(("name", "episode", "expected"), STATUS_CASES,
                         ids=[c[0] for c in STATUS_CASES])
def test_episode_status(name: str, episode: EpisodeFacts, expected: EpisodeStatus | None) -> None:
    assert episode_status(episode) is expected


Y3 = months(36) - 3  # a routine recall: just under three years
OUTCOME_CASES: list[tuple[str, list[EpisodeFacts], Windows, EpisodeOutcome | None,
                          UndefinedReason | None, str | None]] = [
    ("interval cancer", [interval("1", 0)], Windows(), EpisodeOutcome.CI, None, None),
    ("CI contradicted", [interval("1", 0, biopsy=Op.OB)], Windows(), None,
     UndefinedReason.INVALID_CI, None),
    ("malignant", [malignant("1", 0)], Windows(), EpisodeOutcome.M, None, None),
    ("invalid events", [ep("1", T.R, screen(), ev(K.ASSESSMENT))], Windows(), None,
     UndefinedReason.INVALID_EVENTS, None),
    ("no events", [ep("1", T.R, opened=0)], Windows(), None,
     UndefinedReason.INVALID_EVENTS, None),
    ("surgery without verdict", [ep("1", T.R, ev(K.SURGERY, Op.ON, Op.ON))], Windows(), None,
     UndefinedReason.INVALID_EVENTS, None),
    ("last normal", [normal("1", 0)], Windows(), EpisodeOutcome.N, None, None),
    ("last NA", [ep("1", T.R, screen(), ev(K.ASSESSMENT, Op.ON, None, 14))], Windows(),
     EpisodeOutcome.NA, None, None),
    ("last NAB", [ep("1", T.R, screen(), ev(K.ASSESSMENT, Op.OS, None, 14),
                     ev(K.BIOPSY_FINE, Op.ON, None, 20))], Windows(),
     EpisodeOutcome.NAB, None, None),
    ("last benign", [ep("1", T.R, screen(), ev(K.BIOPSY_WIDE, Op.OB, None, 20))], Windows(),
     EpisodeOutcome.B, None, None),
    # CIP window (36 months by default)
    ("CIP: CI 20 months later", [normal("1", 0), interval("2", months(20))], Windows(),
     EpisodeOutcome.CIP, None, "2"),
    ("CIP: CI just inside 36 months", [normal("1", 0), interval("2", months(36))], Windows(),
     EpisodeOutcome.CIP, None, "2"),
    ("CI at 37.5 months: inside 39, outside 36",
     [normal("1", 0), interval("2", months(37.5))], Windows(), None,
     UndefinedReason.INVALID_PRIOR, "2"),
    ("CI at 40 months: no prior", [normal("1", 0), interval("2", months(40))], Windows(),
     EpisodeOutcome.N, None, None),
    ("prior of a contradictory CI", [normal("1", 0), interval("2", months(20), biopsy=Op.OB)],
     Windows(), None, UndefinedReason.INVALID_EVENTS, "2"),
    ("CIP with a narrower window", [normal("1", 0), interval("2", months(20))],
     Windows(ci_prior_months=12, cancer_prior_months=12), EpisodeOutcome.N, None, None),
    # MP window (39 months by default)
    ("MP: screen-detected cancer at the next round", [normal("1", 0), malignant("2", Y3)],
     Windows(), EpisodeOutcome.MP, None, "2"),
    ("MP: cancer at 38 months", [normal("1", 0), malignant("2", months(38))], Windows(),
     EpisodeOutcome.MP, None, "2"),
    ("no MP: cancer at 42 months", [normal("1", 0), malignant("2", months(42))], Windows(),
     EpisodeOutcome.N, None, None),
    ("MP only for the proximal prior",
     [normal("1", 0), normal("2", Y3), malignant("3", 2 * Y3)], Windows(),
     EpisodeOutcome.N, None, None),
    ("benign before a cancer is its prior",
     [ep("1", T.R, screen(), ev(K.BIOPSY_WIDE, Op.OB, None, 20)), malignant("2", Y3)],
     Windows(), EpisodeOutcome.MP, None, "2"),
    # no windows: the proximal prior qualifies however far
    ("proximal CIP without a window", [normal("1", 0), interval("2", months(60))],
     Windows(None, None), EpisodeOutcome.CIP, None, "2"),
    ("proximal MP without a window", [normal("1", 0), malignant("2", months(70))],
     Windows(None, None), EpisodeOutcome.MP, None, "2"),
    ("not proximal without a window",
     [normal("1", 0), normal("2", Y3), interval("3", Y3 + months(12))], Windows(None, None),
     EpisodeOutcome.N, None, None),
    # the episodes that follow must be valid and sortable
    ("later episode with null opinions",
     [normal("1", 0), ep("2", T.R, screen(Y3), ev(K.CLINICAL, day=Y3 + 10))], Windows(), None,
     UndefinedReason.INVALID_EVENTS, None),
    ("later episode without any date", [normal("1", 0), ep("2", T.R)], Windows(), None,
     UndefinedReason.DATE_ERROR, None),
    # follow-up requirements
    ("normal needs a follow-up and has none", [normal("1", 0)],
     Windows(normal_follow_up_months=24), None, UndefinedReason.NO_SUBSEQUENT_EPISODE, None),
    ("normal confirmed by a later normal", [normal("1", 0), normal("2", Y3)],
     Windows(normal_follow_up_months=24), EpisodeOutcome.N, None, "2"),
    ("follow-up too early", [normal("1", 0), normal("2", months(6))],
     Windows(normal_follow_up_months=24), None, UndefinedReason.INVALID_FOLLOW_UP, None),
    ("cancer inside the follow-up window", [normal("1", 0), malignant("2", months(12))],
     Windows(1, 1, normal_follow_up_months=24), None, UndefinedReason.INVALID_PRIOR, "2"),
    ("first follow-up is a cancer", [normal("1", 0), malignant("2", months(12))],
     Windows(1, 1, normal_follow_up_months=6), None, UndefinedReason.INVALID_PRIOR, "2"),
    ("follow-up episode without events", [normal("1", 0), ep("2", T.R, opened=Y3)],
     Windows(normal_follow_up_months=24), None, UndefinedReason.INVALID_EVENTS, "2"),
    ("benign confirmed by a later normal",
     [ep("1", T.R, screen(), ev(K.BIOPSY_WIDE, Op.OB, None, 20)), normal("2", Y3)],
     Windows(benign_follow_up_months=24), EpisodeOutcome.B, None, "2"),
    ("benign needs a follow-up and has none",
     [ep("1", T.R, screen(), ev(K.BIOPSY_WIDE, Op.OB, None, 20))],
     Windows(benign_follow_up_months=24), None, UndefinedReason.NO_SUBSEQUENT_EPISODE, None),
]


@pytest.mark.parametrize(("name", "episodes", "windows", "outcome", "undefined", "ref"),
                         OUTCOME_CASES, ids=[c[0] for c in OUTCOME_CASES])
def test_episode_outcome(name: str, episodes: list[EpisodeFacts], windows: Windows,
                         outcome: EpisodeOutcome | None, undefined: UndefinedReason | None,
                         ref: str | None) -> None:
    result = episode_outcome(episodes[0], episodes, windows)
    assert (result.outcome, result.undefined, result.ref_key) == (outcome, undefined, ref)


def test_outcome_of_an_episode_in_the_middle_of_a_history() -> None:
    history = [normal("1", 0), normal("2", Y3), malignant("3", 2 * Y3), normal("4", 3 * Y3)]
    results = [episode_outcome(e, history).outcome for e in history]
    assert results == [EpisodeOutcome.N, EpisodeOutcome.MP, EpisodeOutcome.M, EpisodeOutcome.N]


def test_episodes_are_sorted_by_date_not_by_listing_order() -> None:
    later_first = [interval("2", months(20)), normal("1", 0)]
    assert episode_outcome(later_first[1], later_first).outcome is EpisodeOutcome.CIP


CLIENT_CASES = [
    ("no episodes", [], None, CaseOutcome.UNKNOWN, "no clinical episodes"),
    ("interval cancer", [normal("1", 0), interval("2", months(20))], ClientStatus.CI,
     CaseOutcome.INTERVAL_CANCER, ""),
    ("CI without biopsy", [interval("1", 0)], ClientStatus.CI, CaseOutcome.INTERVAL_CANCER, ""),
    ("contradictory CI only", [normal("1", 0), interval("2", months(20), biopsy=Op.OB)],
     ClientStatus.CI, CaseOutcome.UNKNOWN, "InvalidCI"),
    ("contradictory CI and a malignancy",
     [malignant("1", 0), interval("2", months(20), biopsy=Op.OB)], ClientStatus.CI,
     CaseOutcome.MALIGNANT, ""),
    ("malignant after benign", [ep("1", T.R, ev(K.BIOPSY_WIDE, Op.OB)), malignant("2", Y3)],
     ClientStatus.M, CaseOutcome.MALIGNANT, ""),
    ("benign", [normal("1", 0), ep("2", T.R, screen(Y3), ev(K.BIOPSY_FINE, Op.OB, None, Y3))],
     ClientStatus.B, CaseOutcome.BENIGN, ""),
    ("normal", [normal("1", 0), normal("2", Y3)], ClientStatus.N, CaseOutcome.NORMAL, ""),
    ("normal with assessment", [ep("1", T.R, screen(), ev(K.ASSESSMENT, Op.ON))],
     ClientStatus.N, CaseOutcome.NORMAL, ""),
    ("normal but an event without opinions", [normal("1", 0), ep("2", T.R, ev(K.CLINICAL))],
     ClientStatus.N, CaseOutcome.UNKNOWN, "episode without status"),
    ("surgery without verdict", [ep("1", T.R, ev(K.SURGERY, Op.ON, Op.ON))], ClientStatus.N,
     CaseOutcome.UNKNOWN, "episode without status"),
    ("an episode with no events", [normal("1", 0), ep("2", T.R, opened=Y3)], ClientStatus.N,
     CaseOutcome.UNKNOWN, "episode without status"),
]


@pytest.mark.parametrize(("name", "episodes", "status", "outcome", "reason"), CLIENT_CASES,
                         ids=[c[0] for c in CLIENT_CASES])
def test_client_status_and_outcome(name: str, episodes: list[EpisodeFacts],
                                   status: ClientStatus | None, outcome: CaseOutcome,
                                   reason: str) -> None:
    assert client_status(episodes) is status
    assert client_outcome(episodes) == (outcome, reason)


@pytest.mark.parametrize(
    ("episodes", "index", "expected"),
    [
        ([normal("1", 0), normal("2", Y3)], 1, False),
        ([ep("1", T.R, ev(K.SURGERY, Op.OB)), normal("2", Y3)], 1, True),
        ([interval("1", 0), normal("2", Y3)], 1, True),
        ([normal("1", 0), interval("2", 400)], 0, False),
        ([normal("1", 0), ep("2", T.R)], 0, None),
    ],
)
def test_is_post_op(episodes: list[EpisodeFacts], index: int, expected: bool | None) -> None:
    assert is_post_op(episodes[index], episodes) is expected


@pytest.mark.parametrize(
    ("episode", "expected"),
    [
        (ep("1", T.R, screen(10), ev(K.ASSESSMENT, Op.ON, None, 30), opened=0), 10),
        (ep("1", T.R, opened=5), 5),
        (ep("1", T.CI, opened=5, diagnosed=9), 9),
        (ep("1", T.CI, opened=5), 5),
        (ep("1", T.R, ev(K.INTERVAL_CANCER, day=2), opened=7), 7),
    ],
)
def test_earliest_date(episode: EpisodeFacts, expected: int) -> None:
    assert earliest_date(episode) == DAY0 + timedelta(days=expected)


def test_classify_client_labels_every_episode() -> None:
    history = [normal("1", 0), normal("2", Y3), interval("3", Y3 + months(18))]
    result = classify_client(history)
    assert result.outcome is CaseOutcome.INTERVAL_CANCER and result.status is ClientStatus.CI
    labels = {k: (v.status, v.outcome.outcome, v.outcome.ref_key) for k, v in
              result.episodes.items()}
    assert labels == {
        "1": (EpisodeStatus.N, EpisodeOutcome.N, None),
        "2": (EpisodeStatus.N, EpisodeOutcome.CIP, "3"),
        "3": (EpisodeStatus.CI, EpisodeOutcome.CI, None),
    }
    assert result.episodes["3"].post_op is False
    assert result.episodes["1"].earliest_date == DAY0
