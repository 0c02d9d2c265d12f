"""Synthetic expert marks for the demo data set, in OMI-DB's proportions.

The brochure counts 7,160 marked malignant cases of 15,404, 1,432 marked benign cases
of 11,029 and 83 marked priors of 2,860 interval cancers (OMI-DB's
brochure). :func:`demo_marks` marks the demo's clients in those shares, at least one per
class when the class has clients (so a small demo shows every kind), as mark records
for :func:`~omipacs.annotations.importer.import_marks`.

It reads the archive, not the demo manifest: the images' archive (de-identified) UIDs,
sizes and lateralities come from the index, and each client's outcome, lesion, breast
and episodes from the clinical tables (the demo's NBSS records must have been
imported). A malignant or benign case is marked on the FOR PRESENTATION images and the
tomosynthesis slices of her lesion's breast in the lesion's episode; an interval cancer
on the FOR PRESENTATION images of the screen before it (the CIP episode), where the
cancer is looked for in retrospect.

Boxes fall inside the breast of the demo's synthetic anatomy
(:func:`omipacs.demo.pixels.breast_anatomy`): between 15 % and 45 % of the width from
the chest wall (left edge for a left breast, right edge for a right one) and between
42 % and 60 % of the height, a region inside the breast outline and below the pectoral
muscle of every view the generator can draw. Everything derives from ``seed``.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from omipacs.clinical.codes import CaseOutcome
from omipacs.clinical.models import Client, Episode, Lesion, StudyLink
from omipacs.demo.clinical import SEED_2D_CASES
from omipacs.dicom.uids import BREAST_TOMOSYNTHESIS, MG_FOR_PRESENTATION
from omipacs.index.models import Instance, Series, Study

SEED_MARKED_CASES: Final[Mapping[CaseOutcome, int]] = {
    CaseOutcome.MALIGNANT: 7_160,
    CaseOutcome.BENIGN: 1_432,
    CaseOutcome.INTERVAL_CANCER: 83,
}
"""Marked cases by outcome, from the OMI-DB brochure (interval cancers: their priors)."""
BREAST_U: Final = (0.15, 0.45)
"""Fraction of the width from the chest wall where boxes may lie."""
BREAST_V: Final = (0.42, 0.60)
"""Fraction of the height where boxes may lie."""
READERS: Final = 5
_CONSPICUITY: Final[Mapping[CaseOutcome, tuple[tuple[str, float], ...]]] = {
    CaseOutcome.MALIGNANT: (("Obvious", 0.5), ("Subtle", 0.35), ("Very_subtle", 0.15)),
    CaseOutcome.BENIGN: (("Obvious", 0.55), ("Subtle", 0.35), ("Very_subtle", 0.1)),
    CaseOutcome.INTERVAL_CANCER: (("Subtle", 0.3), ("Very_subtle", 0.4), ("Occult", 0.3)),
}
_BENIGN_CLASSES: Final = ("coarse_or_popcorn-like", "egg_shell_or_rim", "lucent-centred",
                          "rod-like", "round_and_punctate")


def marked_shares() -> dict[CaseOutcome, float]:
    """Share of the cases of each outcome that are marked, in the brochure."""
    return {o: n / SEED_2D_CASES[o] for o, n in SEED_MARKED_CASES.items()}


def marked_counts(
    available: Mapping[CaseOutcome, int], shares: Mapping[CaseOutcome, float]
) -> dict[CaseOutcome, int]:
    """How many clients of each outcome to mark: the share, rounded, at least one."""
    out = {}
    for outcome, n in available.items():
        share = shares.get(outcome, 0.0)
        wanted = math.floor(n * share + 0.5)
        out[outcome] = min(n, max(wanted, 1 if n and share > 0 else 0))
    return out


def reader_pool(seed: int) -> list[str]:
    """Pseudonym-shaped reader IDs of the demo (``RDR`` and 12 base-32 characters)."""
    out = []
    for i in range(READERS):
        digest = hashlib.sha256(f"omipacs demo reader {seed} {i}".encode()).digest()
        out.append("RDR" + base64.b32encode(digest).decode("ascii")[:12])
    return out


@dataclass(frozen=True)
class _Case:
    client_pk: int
    outcome: CaseOutcome
    side: str
    lesion_no: str
    description: str
    episodes: tuple[int, ...]
    """Episodes whose studies hold the images to mark."""


@dataclass(frozen=True)
class _Image:
    study_uid: str
    series_uid: str
    sop_uid: str
    rows: int
    columns: int
    frames: int
    tomo: bool


def _case(session: Session, client_pk: int, outcome: CaseOutcome) -> _Case | None:
    rows = session.execute(
        select(Lesion.side, Lesion.nbss_lesion_no, Lesion.description, Episode.pk,
               Episode.outcome)
        .join(Episode, Lesion.episode_pk == Episode.pk)
        .where(Episode.client_pk == client_pk)
        .order_by(Episode.earliest_date, Episode.pk, Lesion.pk)
    ).all()
    wanted = {CaseOutcome.MALIGNANT: "M", CaseOutcome.BENIGN: "B",
              CaseOutcome.INTERVAL_CANCER: "CI"}[outcome]
    lesion = next((r for r in rows if r[4] == wanted), rows[-1] if rows else None)
    if lesion is None:
        return None
    side, number, description, episode_pk, _ = lesion
    episodes: tuple[int, ...] = (episode_pk,)
    if outcome is CaseOutcome.INTERVAL_CANCER:
        episodes = tuple(session.scalars(
            select(Episode.pk).where(Episode.client_pk == client_pk, Episode.outcome == "CIP",
                                     Episode.outcome_ref_episode_pk == episode_pk)
        ))
        if not episodes:
            prior = session.scalar(
                select(Episode.pk)
                .join(StudyLink, StudyLink.episode_pk == Episode.pk)
                .where(Episode.client_pk == client_pk, Episode.pk != episode_pk)
                .order_by(Episode.earliest_date.desc(), Episode.pk.desc()).limit(1)
            )
            episodes = (prior,) if prior is not None else ()
    return _Case(client_pk, outcome, side, number, description or "", episodes)


def _images(session: Session, case: _Case) -> list[_Image]:
    classes = [MG_FOR_PRESENTATION]
    if case.outcome is not CaseOutcome.INTERVAL_CANCER:
        classes.append(BREAST_TOMOSYNTHESIS)
    rows = session.execute(
        select(Study.study_instance_uid, Series.series_instance_uid,
               Instance.sop_instance_uid, Instance.rows, Instance.columns,
               Instance.number_of_frames, Instance.sop_class_uid)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(StudyLink, StudyLink.study_pk == Study.pk)
        .where(StudyLink.episode_pk.in_(case.episodes), Instance.laterality == case.side,
               Instance.sop_class_uid.in_(classes), Instance.rows.is_not(None))
        .order_by(Instance.pk)
    ).all()
    return [_Image(st, se, sop, int(r or 0), int(c or 0), f or 1, cls == BREAST_TOMOSYNTHESIS)
            for st, se, sop, r, c, f, cls in rows]


def _pick(rng: np.random.Generator, weighted: tuple[tuple[str, float], ...]) -> str:
    values, weights = zip(*weighted, strict=True)
    return str(rng.choice(values, p=np.array(weights) / sum(weights)))


def _description_fields(
    rng: np.random.Generator, description: str, outcome: CaseOutcome
) -> dict[str, Any]:
    malignant = outcome is not CaseOutcome.BENIGN
    if description == "MC":
        return {"Mass": 1, "WithCalcification": "WithCalcification",
                "SuspiciousCalcifications": "SuspiciousCalcifications",
                "MassClassification": "ill_defined"}
    if description == "CA":
        if malignant:
            return {"SuspiciousCalcifications": "SuspiciousCalcifications"}
        return {"BenignClassification": _BENIGN_CLASSES[int(rng.integers(5))],
                "OtherBenignCluster": "OtherBenignCluster"}
    if description == "DS":
        return {"ArchitecturalDistortion": "ArchitecturalDistortion"}
    if description == "AS":
        return {"FocalAsymmetry": "FocalAsymmetry"}
    margins = ("spiculated", "ill_defined") if malignant else ("well_defined", "other")
    return {"Mass": 1, "MassClassification": margins[int(rng.integers(2))]}


def _box(image: _Image, side: str, u: float, v: float, hw: float, hh: float) -> dict[str, int]:
    low_u, high_u = (u - hw) * image.columns, (u + hw) * image.columns
    if side == "R":  # a right breast's chest wall is on the right edge
        low_u, high_u = image.columns - high_u, image.columns - low_u
    x1, x2 = max(0, math.floor(low_u)), min(image.columns, math.ceil(high_u))
    y1 = max(0, math.floor((v - hh) * image.rows))
    y2 = min(image.rows, math.ceil((v + hh) * image.rows))
    return {"X1": x1, "Y1": y1, "X2": x2, "Y2": y2}


def demo_marks(
    session: Session, *, seed: int = 0, shares: Mapping[CaseOutcome, float] | None = None
) -> list[dict[str, Any]]:
    """Mark records for the demo's malignant, benign and interval-cancer clients.

    Parameters
    ----------
    session
        A read session of an archive holding the demo images and its NBSS records.
    seed
        The same seed and archive give the same records.
    shares
        Share of each outcome's clients to mark (:func:`marked_shares` by default).
    """
    shares = marked_shares() if shares is None else shares
    clients = session.execute(
        select(Client.pk, Client.outcome)
        .where(Client.outcome.in_([o.value for o in SEED_MARKED_CASES]),
               Client.patient_pk.is_not(None))
        .order_by(Client.client_id)
    ).all()
    by_outcome: dict[CaseOutcome, list[int]] = {o: [] for o in SEED_MARKED_CASES}
    for pk, outcome in clients:
        by_outcome[CaseOutcome(outcome)].append(pk)
    counts = marked_counts({o: len(pks) for o, pks in by_outcome.items()}, shares)
    readers = reader_pool(seed)
    records: list[dict[str, Any]] = []
    for position, outcome in enumerate(SEED_MARKED_CASES):
        pool = by_outcome[outcome]
        order = np.random.default_rng([seed, 0x3A4B, position]).permutation(len(pool))
        chosen = sorted(pool[i] for i in order[: counts[outcome]])
        for client_pk in chosen:
            case = _case(session, client_pk, outcome)
            if case is None:
                continue
            records += _case_marks(session, case, seed, readers, len(records))
    return records


def _case_marks(
    session: Session, case: _Case, seed: int, readers: list[str], first_id: int
) -> list[dict[str, Any]]:
    rng = np.random.default_rng([seed, 0x3A4B, case.client_pk])
    hw, hh = float(rng.uniform(0.04, 0.07)), float(rng.uniform(0.03, 0.05))
    u = float(rng.uniform(BREAST_U[0] + hw, BREAST_U[1] - hw))
    v = float(rng.uniform(BREAST_V[0] + hh, BREAST_V[1] - hh))
    common = {
        "Conspicuity": _pick(rng, _CONSPICUITY[case.outcome]),
        "LinkedNBSSLesionNumber": case.lesion_no,
        "Reader": readers[int(rng.integers(len(readers)))],
        **_description_fields(rng, case.description, case.outcome),
    }
    out: list[dict[str, Any]] = []
    for image in _images(session, case):
        record: dict[str, Any] = {
            "StudyInstanceUID": image.study_uid,
            "SeriesInstanceUID": image.series_uid,
            "SOPInstanceUID": image.sop_uid,
            "MarkID": 1 + first_id + len(out),
            **_box(image, case.side, u, v, hw, hh),
            **common,
        }
        if image.frames > 1:
            middle = (image.frames + 1) // 2 + int(rng.integers(-1, 2))
            record["FrameNumber"] = min(image.frames, max(1, middle))
        out.append(record)
    return out
