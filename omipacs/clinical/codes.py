"""The NBSS code lists the clinical layer reads, validates and classifies with.

These are the real National Breast Screening System codes as OMI-DB delivers them
(docs/data-model.md, "Codes"). Every enumerated field that drives classification, a cohort
filter or a statistic is checked against its list on import, so a typo in a source file
is refused with a reason instead of quietly turning a malignant case into a normal one.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final


class EpisodeType(StrEnum):
    """Why an episode was opened (NBSS ``EpisodeType``)."""

    CA = "CA"
    """Continued assessment."""
    CD = "CD"
    """Delayed treatment."""
    CF = "CF"
    """Follow-up after treatment."""
    CI = "CI"
    """Interval case: a cancer found between two routine screens."""
    CR = "CR"
    """Local recurrence."""
    F = "F"
    """First call."""
    G = "G"
    """GP referral."""
    H = "H"
    """Higher risk."""
    N = "N"
    """Non-routine recall."""
    R = "R"
    """Routine recall."""
    S = "S"
    """Self referral."""
    X = "X"
    """Other."""


class EpisodeAction(StrEnum):
    """What the episode ended with (NBSS ``EpisodeAction``)."""

    EC = "EC"
    """Early recall for clinic."""
    ES = "ES"
    """Early recall for screening."""
    FN = "FN"
    """Fine needle aspiration."""
    FP = "FP"
    """Follow-up (post-treatment)."""
    FV = "FV"
    """Further X-ray views."""
    IP = "IP"
    """Inpatient biopsy."""
    MT = "MT"
    """Medical treatment."""
    NA = "NA"
    """No action from this procedure."""
    R2 = "R2"
    """Routine second film opinion (obsolete)."""
    RC = "RC"
    """Review in clinic."""
    RF = "RF"
    """Referral to consultant or GP."""
    RR = "RR"
    """Routine recall for screening."""
    ST = "ST"
    """Surgical treatment."""
    TR = "TR"
    """Repeat film (technical)."""
    WB = "WB"
    """Wide bore needle."""


class SideOpinion(StrEnum):
    """An event's opinion on one breast (NBSS ``left_opinion`` / ``right_opinion``)."""

    OB = "OB"
    """Benign."""
    OM = "OM"
    """Malignant."""
    ON = "ON"
    """Normal."""
    OS = "OS"
    """Suspicious."""
    OU = "OU"
    """Uncertain."""


class EventKind(StrEnum):
    """The event blocks of an NBSS episode."""

    SCREENING = "screening"
    """``SCREENING``: the screen and its reads, per breast."""
    OTHER_SCREENING = "other_screening"
    """``OTHERSCREENING``: further screens of the episode (repeat or technical recall)."""
    ASSESSMENT = "assessment"
    """``ASSESSMENT``: recall to an assessment clinic (further views, DBT, ultrasound)."""
    CLINICAL = "clinical"
    """``CLINICAL``: clinical examination."""
    BIOPSY_WIDE = "biopsy_wide"
    """``BIOPSYWIDE``: wide-bore (core) needle biopsy, with histology."""
    BIOPSY_FINE = "biopsy_fine"
    """``BIOPSYFINE``: fine-needle aspiration, with cytology."""
    SURGERY = "surgery"
    """``SURGERY``: excision, with the definitive pathology."""
    INTERVAL_CANCER = "interval_cancer"
    """``INTERVALCANCER``: the diagnosis of a cancer between screens."""


NBSS_EVENT_BLOCKS: Final[dict[str, EventKind]] = {
    "SCREENING": EventKind.SCREENING,
    "ASSESSMENT": EventKind.ASSESSMENT,
    "CLINICAL": EventKind.CLINICAL,
    "BIOPSYWIDE": EventKind.BIOPSY_WIDE,
    "BIOPSYFINE": EventKind.BIOPSY_FINE,
    "SURGERY": EventKind.SURGERY,
    "INTERVALCANCER": EventKind.INTERVAL_CANCER,
}
"""Episode keys holding one event each (``OTHERSCREENING`` holds several, keyed by id)."""

SCREENING_KINDS: Final = frozenset({EventKind.SCREENING, EventKind.OTHER_SCREENING})
PATHOLOGY_KINDS: Final = frozenset(
    {EventKind.SURGERY, EventKind.BIOPSY_WIDE, EventKind.BIOPSY_FINE}
)
"""Events whose opinions decide malignant or benign (omidb ``has_malignant_opinions``)."""


class LesionDescription(StrEnum):
    """What a lesion looks like (NBSS ``LesionDescription``)."""

    AS = "AS"
    """Asymmetry."""
    CA = "CA"
    """Calcification only."""
    CY = "CY"
    """Cyst."""
    DS = "DS"
    """Distortion."""
    LN = "LN"
    """Lymph node."""
    MA = "MA"
    """Mass."""
    MC = "MC"
    """Mass with calcification."""
    NA = "NA"
    """No significant abnormality."""
    ZZ = "ZZ"
    """Clinical (no imaging description)."""


INVASIVE_COMPONENTS: Final = frozenset({"IDC", "ILC", "IMC", "IMU", "IPX", "ITC"})
INVASIVE_TYPES: Final = frozenset({"IN", "IP", "IM", "IO"})
DISEASE_GRADES: Final = frozenset({"G1", "G2", "G3", "NA"})
INSITU_COMPONENTS: Final = frozenset({"NID", "NIL", "NIP"})
DCIS_GRADES: Final = frozenset({"NDH", "NDI", "NDL", "NDN"})
MALIGNANCY_TYPES: Final = frozenset({"a", "b", "c"})
"""a in situ, b invasive, c not assessable (NBSS ``MalignancyType``, lower case)."""
HER2_SCORES: Final = frozenset({"0", "1+", "2+", "3+"})
RECEPTOR_POSITIVE: Final = "RP"
RECEPTOR_NEGATIVE: Final = "RN"

OPINION_CODE: Final = re.compile(
    r"^(?:[ABCIPRU][1-5]|H[0125]|MRI[1-5]|R[BMNOSU]|BA|SH)$"
)
"""Per-lesion and per-read opinions: A1-5 assessment, B1-5 core biopsy, C1-5 cytology,
H0/1/2/5 histology, I1-5 imaging, MRI1-5, P1-5 clinical, R1-5 radiology, U1-5
ultrasound, RB/RM/RN/RO/RS/RU screen read, BA and SH."""

LESION_POSITION: Final = re.compile(r"^(?:LM|RM|[LR][A-E][1-4])$")
SIDES: Final = ("L", "R")


class CaseOutcome(StrEnum):
    """A client's outcome as the brochure counts cases."""

    NORMAL = "N"
    BENIGN = "B"
    MALIGNANT = "M"
    INTERVAL_CANCER = "CI"
    UNKNOWN = "U"


CASE_OUTCOME_ORDER: Final = (
    CaseOutcome.NORMAL,
    CaseOutcome.BENIGN,
    CaseOutcome.MALIGNANT,
    CaseOutcome.INTERVAL_CANCER,
    CaseOutcome.UNKNOWN,
)
"""The order of the brochure's tables."""
