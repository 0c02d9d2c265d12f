"""Synthetic NBSS records matching the demo imaging data set.

:func:`clinical_records_for` writes one NBSS-style record (the layout of
:mod:`omipacs.clinical.nbss`) per client of a :class:`~omipacs.demo.generate.DemoManifest`:
the same NHS number, site and local ID as her images, one episode per screening round
dated on the round's study, and the round's study UIDs in its ``StudyList``. Imported
with the archive's keys, the records land on the clients and studies the de-identified
images made.

Outcomes follow the brochure's 2D table (normal 424,339 : benign 11,029 : malignant
15,404 : interval cancer 2,860 : unknown 15,727), allocated by largest remainder; from
20 clients up, each non-normal class gets at least one client, taken from the normal
ones (:func:`allocate`). Malignant and benign clients are preferably the recalled ones
(with a DBT assessment, as in the NHS programme only a recall gets DBT); interval
cancers preferably the others, with a symptomatic CI episode between screens. Malignant
and benign clients carry plausible pathology; unknown clients have an event without
opinions or surgery without a verdict, which the rules cannot classify.

Everything derives from ``(seed, client index)``: the same inputs give the same records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, Final

import numpy as np

from omipacs.clinical.codes import CASE_OUTCOME_ORDER, CaseOutcome
from omipacs.demo.generate import DemoClient, DemoManifest, DemoStudy
from omipacs.demo.vendors import VENDORS

SEED_2D_CASES: Final[Mapping[CaseOutcome, int]] = {
    CaseOutcome.NORMAL: 424_339,
    CaseOutcome.BENIGN: 11_029,
    CaseOutcome.MALIGNANT: 15_404,
    CaseOutcome.INTERVAL_CANCER: 2_860,
    CaseOutcome.UNKNOWN: 15_727,
}
"""Cases with 2D images by outcome, from the OMI-DB brochure."""
MINIMUM_FROM: Final = 20
"""From this many clients up, every non-normal class gets at least one."""
_ETHNICITY: Final = (("A", 0.78), ("B", 0.02), ("C", 0.04), ("H", 0.04), ("J", 0.02),
                     ("K", 0.01), ("M", 0.02), ("N", 0.02), ("R", 0.01), ("Z", 0.04))
_SOURCE_LABEL: Final = {
    CaseOutcome.NORMAL: "Normal",
    CaseOutcome.BENIGN: "Benign",
    CaseOutcome.MALIGNANT: "Malignant",
    CaseOutcome.INTERVAL_CANCER: "Interval Cancer",
    CaseOutcome.UNKNOWN: "Unknown",
}


def allocate(
    n: int, weights: Mapping[CaseOutcome, int] = SEED_2D_CASES, *,
    minimum_from: int = MINIMUM_FROM,
) -> dict[CaseOutcome, int]:
    """Split ``n`` clients in proportion to ``weights`` (largest remainder).

    Ties go to the brochure's order. With ``n >= minimum_from`` each class other than
    normal gets at least one client, taken from the normal ones.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    total = sum(weights.values())
    quotas = {k: n * weights.get(k, 0) / total for k in CASE_OUTCOME_ORDER}
    counts = {k: math.floor(q) for k, q in quotas.items()}
    order = sorted(CASE_OUTCOME_ORDER,
                   key=lambda k: (-(quotas[k] - counts[k]), CASE_OUTCOME_ORDER.index(k)))
    for k in order[: n - sum(counts.values())]:
        counts[k] += 1
    if n >= minimum_from:
        for k in CASE_OUTCOME_ORDER[1:]:
            if counts[k] == 0:
                counts[k] = 1
                counts[CaseOutcome.NORMAL] -= 1
    return counts


def planned_outcomes(
    manifest: DemoManifest, seed: int, weights: Mapping[CaseOutcome, int] = SEED_2D_CASES
) -> dict[int, CaseOutcome]:
    """The outcome each client's record is written to have, by client index."""
    counts = allocate(len(manifest.clients), weights)
    rng = np.random.default_rng([seed, 0xC11])
    recalled = [c.index for c in manifest.clients if _assessment(c) is not None]
    others = [c.index for c in manifest.clients if _assessment(c) is None]
    rng.shuffle(recalled)
    rng.shuffle(others)
    plan: dict[int, CaseOutcome] = {}

    def take(outcome: CaseOutcome, first: list[int], then: list[int]) -> None:
        for _ in range(counts[outcome]):
            pool = first if first else then
            plan[pool.pop(0)] = outcome

    take(CaseOutcome.MALIGNANT, recalled, others)
    take(CaseOutcome.BENIGN, recalled, others)
    take(CaseOutcome.INTERVAL_CANCER, others, recalled)
    take(CaseOutcome.UNKNOWN, others, recalled)
    for index in recalled + others:
        plan[index] = CaseOutcome.NORMAL
    return plan


def clinical_records_for(
    manifest: DemoManifest, seed: int, weights: Mapping[CaseOutcome, int] = SEED_2D_CASES
) -> list[dict[str, Any]]:
    """One NBSS-style record per client of ``manifest``, in client order.

    ``weights`` sets the proportions of outcomes (the brochure's by default; a demo of
    cancers may ask for more malignant cases).
    """
    plan = planned_outcomes(manifest, seed, weights)
    return [_Record(client, plan[client.index], seed).build() for client in manifest.clients]


def _assessment(client: DemoClient) -> DemoStudy | None:
    return next((s for s in client.studies if s.kind == "assessment"), None)


def _iso(day: date) -> str:
    return day.isoformat()


def _age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


class _Record:
    """Builds the record of one client."""

    def __init__(self, client: DemoClient, outcome: CaseOutcome, seed: int) -> None:
        self.client = client
        self.outcome = outcome
        self.rng = np.random.default_rng([seed, client.index, 0xC11])
        self.screens = [s for s in client.studies if s.kind == "screening"]
        self.assessment = _assessment(client)
        side = self.assessment.lateralities[0] if self.assessment else None
        self.side: str = side or ("L" if self.rng.random() < 0.5 else "R")
        profile = VENDORS[client.vendor]
        self.equipment = f"{profile.manufacturer.split(',')[0]} {profile.model}"[:64]
        self.description: str | None = None

    def pick(self, options: tuple[str, ...]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def build(self) -> dict[str, Any]:
        client = self.client
        codes, weights = zip(*_ETHNICITY, strict=True)
        record: dict[str, Any] = {
            "NHSNumber": client.nhs_number,
            "Site": client.site,
            "LocalID": client.patient.local_id,
            "IssuerOfPatientID": f"PAS_{client.site}",
            "ClientID": f"demd{client.index:06d}",
            "Classification": _SOURCE_LABEL[self.outcome],
            "Ethnicity": str(self.rng.choice(codes, p=np.array(weights) / sum(weights))),
            "IMDDecile": int(self.rng.integers(1, 11)),
            "HighRisk": "N",
        }
        last = len(self.screens)
        for round_no, screen in enumerate(self.screens, start=1):
            final = round_no == last
            record[str(round_no)] = self.episode(round_no, screen, final)
        if self.outcome is CaseOutcome.INTERVAL_CANCER:
            record[str(last + 1)] = self.interval_cancer(self.screens[-1].date)
        record["DENSITY"] = self.density(self.screens[-1])
        features = self.features()
        if features:
            record["IMAGEFEATURES"] = features
        return record

    # -- episodes ------------------------------------------------------------------------

    def screening(self, screen: DemoStudy, recalled: bool) -> dict[str, Any]:
        age = _age(self.client.patient.birth_date, screen.date)
        block: dict[str, Any] = {}
        for side in ("L", "R"):
            suspicious = recalled and side == self.side
            block[side] = {
                "DateTaken": _iso(screen.date),
                "Opinion": "RS" if suspicious else "RN",
                "EquipmentMakeModel": self.equipment,
                "AgeAtScreening": age,
                "Readers": [f"R{int(self.rng.integers(100, 999))}" for _ in range(2)],
            }
        block["left_opinion"] = "OS" if recalled and self.side == "L" else "ON"
        block["right_opinion"] = "OS" if recalled and self.side == "R" else "ON"
        return block

    def opinions(self, on_side: str | None, other: str | None = None) -> dict[str, Any]:
        left, right = (on_side, other) if self.side == "L" else (other, on_side)
        return {"left_opinion": left, "right_opinion": right}

    def episode(self, round_no: int, screen: DemoStudy, final: bool) -> dict[str, Any]:
        outcome = self.outcome if final else CaseOutcome.NORMAL
        recalled = final and (self.assessment is not None or outcome in (
            CaseOutcome.BENIGN, CaseOutcome.MALIGNANT))
        studies = [screen.study_uid]
        if final and self.assessment is not None:
            studies.append(self.assessment.study_uid)
        assess_day = (self.assessment.date if self.assessment is not None
                      else screen.date + timedelta(weeks=3))
        episode: dict[str, Any] = {
            "EpisodeType": "F" if round_no == 1 else "R",
            "EpisodeAction": "RR",
            "EpisodeOpenedDate": _iso(screen.date),
            "EpisodeIsClosed": "Y",
            "ActualEpisodeOpenedYear": screen.date.year,
            "PatientAge": _age(self.client.patient.birth_date, screen.date),
            "StudyList": studies,
            "SCREENING": self.screening(screen, recalled),
        }
        last_day = screen.date
        if recalled:
            episode["ASSESSMENT"] = {
                **self.opinions("ON" if outcome is CaseOutcome.NORMAL else "OS", None),
                "dateperformed": _iso(assess_day),
                self.side: {"1": {"DatePerformed": _iso(assess_day),
                                  "MammoOpinion": "R2" if outcome is CaseOutcome.NORMAL
                                  else "R4", "UssOpinion": "U2", "MammoSizeMm": 12}},
            }
            episode["LESION"] = {self.side: {"1": self.lesion(outcome)}}
            last_day = assess_day
        if outcome is CaseOutcome.BENIGN:
            last_day = assess_day + timedelta(days=7)
            episode["EpisodeAction"] = "WB"
            episode["BIOPSYWIDE"] = {
                **self.opinions("OB"), "dateperformed": _iso(last_day),
                self.side: {"1": {"DatePerformed": _iso(last_day), "Opinion": "B2",
                                  "NeedleSpecimenType": "C", "BenignLesions": "FA"}},
            }
        elif outcome is CaseOutcome.MALIGNANT:
            biopsy = assess_day + timedelta(days=7)
            last_day = biopsy + timedelta(weeks=5)
            pathology = self.pathology()
            episode["EpisodeAction"] = "ST"
            episode["BIOPSYWIDE"] = {
                **self.opinions("OM"), "dateperformed": _iso(biopsy),
                self.side: {"1": {"DatePerformed": _iso(biopsy), "Opinion": "B5", **pathology}},
            }
            episode["SURGERY"] = {
                **self.opinions("OM"), "dateperformed": _iso(last_day),
                self.side: {"1": {"DatePerformed": _iso(last_day), "Opinion": "H5", **pathology,
                                  **self.surgical()}},
            }
        elif outcome is CaseOutcome.UNKNOWN:
            last_day = screen.date + timedelta(days=int(self.rng.integers(20, 60)))
            if self.rng.random() < 0.5:
                episode["CLINICAL"] = {"dateperformed": _iso(last_day),
                                       "left_opinion": None, "right_opinion": None}
            else:
                episode["SURGERY"] = {**self.opinions("ON", "ON"),
                                      "dateperformed": _iso(last_day)}
        episode["EpisodeClosedDate"] = _iso(last_day + timedelta(days=7))
        return episode

    def lesion(self, outcome: CaseOutcome) -> dict[str, Any]:
        if outcome is CaseOutcome.MALIGNANT:
            description = self.pick(("MA", "MA", "MC", "CA", "DS"))
        elif outcome is CaseOutcome.BENIGN:
            description = self.pick(("MA", "CY", "CA", "AS"))
        else:
            description = self.pick(("AS", "NA", "MA"))
        self.description = description
        quadrant = self.pick(("A", "B", "C", "D", "E"))
        position = f"{self.side}{quadrant}{int(self.rng.integers(1, 5))}"
        return {"LesionDescription": description, "LesionPosition": position,
                "CystAspirated": "Y" if description == "CY" else "N",
                "LesionNotes": "synthetic note: not a real patient"}

    def pathology(self) -> dict[str, Any]:
        in_situ = self.rng.random() < 0.2
        her2_score = self.pick(("0", "1+", "1+", "2+", "3+"))
        er = "RP" if self.rng.random() < 0.8 else "RN"
        if in_situ:
            return {"InvasivePresent": "N", "MalignancyType": "a",
                    "InSituComponents": ["NID"],
                    "DcisGrade": self.pick(("NDH", "NDI", "NDL")),
                    "HormoneERStatus": er}
        return {
            "InvasivePresent": "Y",
            "MalignancyType": "b",
            "InvasiveComponents": [self.pick(("IDC", "IDC", "IDC", "ILC", "IMC"))],
            "InvasiveType": self.pick(("IN", "IP")),
            "DiseaseGrade": self.pick(("G1", "G2", "G2", "G3")),
            "HER2ReceptorScore": her2_score,
            "HER2ReceptorStatus": "RP" if her2_score == "3+" else "RN",
            "HormoneERScore": str(int(self.rng.integers(0, 9))),
            "HormoneERStatus": er,
            "HormonePRStatus": "RP" if self.rng.random() < 0.65 else "RN",
            "OtherGeneCodes": ["BRCA2"] if self.rng.random() < 0.05 else [],
        }

    def surgical(self) -> dict[str, Any]:
        return {
            "WholeSizeOfTumour": round(float(self.rng.gamma(2.5, 7.0)), 1),
            "AxillaryNodesNumberPositive": int(self.rng.poisson(0.5)),
            "ExcisionMargins": self.pick(("CLEAR", "CLEAR", "CLOSE")),
            "TreatmentProcedure": self.pick(("WLE", "MAST")),
        }

    def interval_cancer(self, last_screen: date) -> dict[str, Any]:
        gap = int(self.rng.integers(180, 900))
        diagnosed = min(last_screen + timedelta(days=gap), date(2025, 12, 31))
        diagnosed = max(diagnosed, last_screen + timedelta(days=60))
        surgery = diagnosed + timedelta(weeks=4)
        pathology = self.pathology()
        return {
            "EpisodeType": "CI",
            "EpisodeAction": "ST",
            "EpisodeOpenedDate": _iso(diagnosed),
            "EpisodeClosedDate": _iso(surgery + timedelta(days=14)),
            "EpisodeIsClosed": "Y",
            "IntervalCancerDateOfDiagnosis": _iso(diagnosed),
            "PatientAge": _age(self.client.patient.birth_date, diagnosed),
            "CLINICAL": {**self.opinions("OS"), "dateperformed": _iso(diagnosed),
                         self.side: {"1": {"DatePerformed": _iso(diagnosed), "Opinion": "P4"}}},
            "SURGERY": {**self.opinions("OM"), "dateperformed": _iso(surgery),
                        self.side: {"1": {"DatePerformed": _iso(surgery), "Opinion": "H5",
                                          **pathology, **self.surgical()}}},
            "INTERVALCANCER": {self.side: {"1": {"DatePerformed": _iso(diagnosed)}}},
            "LESION": {self.side: {"1": {"LesionDescription": self.pick(("MA", "DS")),
                                         "LesionPosition": f"{self.side}C2"}}},
        }

    # -- per image -------------------------------------------------------------------------

    def density(self, screen: DemoStudy) -> list[dict[str, Any]]:
        base = float(np.clip(self.rng.normal(8.0, 4.0), 2.5, 30.0))
        out = []
        for instance in screen.instances:
            if not instance.processed:
                continue
            vbd = round(float(np.clip(base + self.rng.normal(0, 0.6), 2.0, 35.0)), 2)
            volume = round(float(self.rng.uniform(300, 1500)), 1)
            out.append({
                "StudyInstanceUID": screen.study_uid,
                "SOPInstanceUID": instance.sop_uid,
                "Side": instance.laterality,
                "Algorithm": "Volpara",
                "Date": _iso(screen.date),
                "VolumetricBreastDensity": vbd,
                "FibroglandularTissueVolume": round(volume * vbd / 100, 1),
                "BreastVolume": volume,
                "VolparaDensityGrade": 1 if vbd < 4.5 else 2 if vbd < 7.5 else 3 if vbd < 15.5
                else 4,
            })
        return out

    def features(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        screen = self.screens[-1]
        if self.rng.random() < 0.05:
            image = screen.instances[int(self.rng.integers(len(screen.instances)))]
            out.append({"SOPInstanceUID": image.sop_uid, "Side": image.laterality,
                        "Feature": "blur", "Value": "moderate", "Source": "QA"})
        if self.description in ("CA", "MC"):
            for image in screen.instances:
                if image.processed and image.laterality == self.side:
                    out.append({"SOPInstanceUID": image.sop_uid, "Side": image.laterality,
                                "Feature": "microcalcifications", "Value": "present",
                                "Source": "reader"})
        return out
