"""The OMI-DB mark vocabulary and its coded form in SR (docs/data-model.md, "Marks").

Every mark field that the SR carries is a TID 1410 qualitative evaluation, a (concept
name, coded value) pair. Standard codes are used where DICOM has them: Margins (DCM
111037) with the CID 6008 margin values, Calcification Type (DCM 111009) with the CID
6010 values, Pathology (DCM 111042) with Malignant/Benign, and SNOMED CT findings.
What has no standard code (conspicuity, the OMI-DB-only features, NBSS lesion numbers)
uses the local coding scheme ``99OMIPACS`` (PS3.16 section 8: private schemes start
with ``99``), declared in the Coding Scheme Identification Sequence of every SR we
write.

The tables below are used in both directions, so that marks -> SR -> marks is exact:
:data:`EVALUATIONS` maps a mark field value to its pair, :func:`decode_evaluation`
maps a pair back.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, NamedTuple

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

LOCAL_SCHEME: Final = "99OMIPACS"
"""Coding Scheme Designator of the archive's local codes."""
LOCAL_SCHEME_NAME: Final = "omipacs local codes for expert marks"


def local(value: str, meaning: str) -> Code:
    """A code of the local scheme."""
    return Code(value, LOCAL_SCHEME, meaning)


class CodeKey(NamedTuple):
    """A code as compared: scheme designator and value (the meaning is only a label)."""

    scheme: str
    value: str


def key(code: Code) -> CodeKey:
    """The comparison key of a code."""
    return CodeKey(str(code.scheme_designator), str(code.value))


# -- the OMI-DB enumerations (omidb ``mark.py``) -------------------------------------------


class Conspicuity(StrEnum):
    """How visible the lesion is on the image (OMI-DB ``Conspicuity``)."""

    OBVIOUS = "Obvious"
    """Seen at once."""
    SUBTLE = "Subtle"
    """Seen on a careful read."""
    VERY_SUBTLE = "Very_subtle"
    """Hard to see even knowing where it is."""
    OCCULT = "Occult"
    """Not visible on this image."""
    NOT_RECALLED = "not_recalled"
    """Visible in retrospect, not recalled at the screen."""


class MassClass(StrEnum):
    """The mass border (OMI-DB ``MassClassification``), plus its calcification terms."""

    ILL_DEFINED = "ill_defined"
    """Indistinct margin."""
    SPICULATED = "spiculated"
    """Spiculated margin."""
    WELL_DEFINED = "well_defined"
    """Circumscribed margin."""
    OTHER = "other"
    """Another margin."""
    UNKNOWN = "unknown"
    """Margin not assessed."""
    LUCENT_CENTRED = "lucent-centred"
    """A calcification term found in the source's mass classes."""
    COARSE = "coarse_or_popcorn-like"
    """A calcification term found in the source's mass classes."""
    EGG_SHELL = "egg_shell_or_rim"
    """A calcification term found in the source's mass classes."""


class BenignClass(StrEnum):
    """The benign calcification type (OMI-DB ``BenignClassification``)."""

    COARSE = "coarse_or_popcorn-like"
    """Coarse or popcorn-like."""
    EGG_SHELL = "egg_shell_or_rim"
    """Eggshell or rim."""
    LUCENT_CENTRED = "lucent-centred"
    """Lucent-centred."""
    ROD = "rod-like"
    """Large rod-like."""
    ROUND_AND_PUNCTATE = "round_and_punctate"
    """Round and punctate."""


FEATURE_KEYS: Final[dict[str, str]] = {
    "architectural_distortion": "ArchitecturalDistortion",
    "dystrophic": "Dystrophic",
    "fat_necrosis": "FatNecrosis",
    "focal_asymmetry": "FocalAsymmetry",
    "mass": "Mass",
    "suspicious_calcifications": "SuspiciousCalcifications",
    "milk_of_calcium": "MilkOfCalcium",
    "other_benign_cluster": "OtherBenignCluster",
    "plasma_cell_mastitis": "PlasmaCellMastitis",
    "skin": "Skin",
    "with_calcification": "WithCalcification",
    "suture_calcification": "SutureCalcification",
    "vascular": "Vascular",
}
"""Feature flag (column name) -> OMI-DB IMAGEDB key."""


class Pathology(StrEnum):
    """The pathology outcome of the lesion a mark is linked to."""

    MALIGNANT = "malignant"
    """Surgery, biopsy or cytology found cancer."""
    BENIGN = "benign"
    """Biopsy or cytology found a benign lesion."""


class FindingKind(StrEnum):
    """What a mark shows, as the finding type of its TID 1410 group (CID 6001 style)."""

    MASS = "mass"
    """Mammographic breast mass (SCT 129788004)."""
    MASS_WITH_CALCIFICATION = "mass_with_calcification"
    """Mass with calcifications (DCM 111459)."""
    CALCIFICATION_CLUSTER = "calcification_cluster"
    """Calcification cluster (SCT 129769006): suspicious calcifications."""
    CALCIFICATION = "calcification"
    """Radiographic calcification finding (SCT 129748009): benign calcifications."""
    ARCHITECTURAL_DISTORTION = "architectural_distortion"
    """Architectural distortion of breast (SCT 129792006)."""
    FOCAL_ASYMMETRY = "focal_asymmetry"
    """Focal asymmetric breast tissue (SCT 129789007)."""
    ASYMMETRY = "asymmetry"
    """Asymmetric breast tissue (SCT 129790003)."""
    FINDING = "finding"
    """A finding of no more specific type (SCT 404684003)."""
    OTHER = "other"
    """A finding type code this archive does not classify (kept verbatim)."""


FINDING_CODES: Final[dict[FindingKind, Code]] = {
    FindingKind.MASS: codes.SCT.MammographicBreastMass,
    FindingKind.MASS_WITH_CALCIFICATION: codes.DCM.MassWithCalcifications,
    FindingKind.CALCIFICATION_CLUSTER: codes.SCT.CalcificationCluster,
    FindingKind.CALCIFICATION: codes.SCT.RadiographicCalcificationFinding,
    FindingKind.ARCHITECTURAL_DISTORTION: codes.SCT.ArchitecturalDistortionOfBreast,
    FindingKind.FOCAL_ASYMMETRY: codes.SCT.FocalAsymmetricBreastTissue,
    FindingKind.ASYMMETRY: codes.SCT.AsymmetricBreastTissue,
    FindingKind.FINDING: codes.SCT.Finding,
}
_FINDING_ALIASES: Final[dict[CodeKey, FindingKind]] = {
    key(codes.SCT.Mass): FindingKind.MASS,
    key(codes.SCT.MicrocalcificationsOfTheBreast): FindingKind.CALCIFICATION_CLUSTER,
    key(codes.SCT.IndividualCalcification): FindingKind.CALCIFICATION,
    key(codes.DCM.Finding): FindingKind.FINDING,
    key(codes.SCT.ClinicalFinding): FindingKind.FINDING,
}
FINDING_KINDS: Final[dict[CodeKey, FindingKind]] = {
    **{key(c): k for k, c in FINDING_CODES.items()}, **_FINDING_ALIASES
}
"""Finding type code -> kind (standard synonyms included)."""

LESION_DESCRIPTION_KINDS: Final[dict[str, tuple[FindingKind, ...]]] = {
    "MA": (FindingKind.MASS,),
    "MC": (FindingKind.MASS_WITH_CALCIFICATION,),
    "CA": (FindingKind.CALCIFICATION_CLUSTER, FindingKind.CALCIFICATION),
    "DS": (FindingKind.ARCHITECTURAL_DISTORTION,),
    "AS": (FindingKind.FOCAL_ASYMMETRY, FindingKind.ASYMMETRY),
}
"""NBSS ``LesionDescription`` codes that name a finding kind, for searches by lesion type."""

FINDING_CATEGORY: Final = codes.SCT.MorphologicallyAbnormalStructure
"""TID 1410 Finding Category of every mark."""


def finding_kind_for(features: frozenset[str], mass_class: str | None,
                     benign_class: str | None) -> FindingKind:
    """The finding type of an OMI-DB mark, from its flags (most specific first)."""
    calcified = bool({"with_calcification", "suspicious_calcifications"} & features)
    mass = "mass" in features or mass_class is not None
    if mass and calcified:
        return FindingKind.MASS_WITH_CALCIFICATION
    if mass:
        return FindingKind.MASS
    if "suspicious_calcifications" in features:
        return FindingKind.CALCIFICATION_CLUSTER
    if "architectural_distortion" in features:
        return FindingKind.ARCHITECTURAL_DISTORTION
    if "focal_asymmetry" in features:
        return FindingKind.FOCAL_ASYMMETRY
    benign = {"dystrophic", "milk_of_calcium", "vascular", "suture_calcification", "skin",
              "other_benign_cluster", "with_calcification"}
    if benign & features or benign_class is not None:
        return FindingKind.CALCIFICATION
    return FindingKind.FINDING


# -- evaluations ---------------------------------------------------------------------------

CONSPICUITY: Final = local("CONSPICUITY", "Conspicuity")
FEATURE: Final = local("FEATURE", "Mammographic feature")
MASS_CLASS: Final = local("MASS_CLASS", "Mass classification")
NBSS_LESION: Final = local("NBSS_LESION", "Linked NBSS lesion number")
MARGINS: Final = codes.DCM.Margins
CALCIFICATION_TYPE: Final = codes.DCM.CalcificationType
PATHOLOGY: Final = codes.DCM.Pathology


class Evaluation(NamedTuple):
    """A qualitative evaluation: concept name and coded value."""

    name: Code
    value: Code


CONSPICUITY_CODES: Final[dict[Conspicuity, Code]] = {
    Conspicuity.OBVIOUS: local("OBVIOUS", "Obvious"),
    Conspicuity.SUBTLE: local("SUBTLE", "Subtle"),
    Conspicuity.VERY_SUBTLE: local("VERY_SUBTLE", "Very subtle"),
    Conspicuity.OCCULT: local("OCCULT", "Occult"),
    Conspicuity.NOT_RECALLED: local("NOT_RECALLED", "Not recalled"),
}

MASS_CLASS_EVALUATIONS: Final[dict[MassClass, Evaluation]] = {
    MassClass.SPICULATED: Evaluation(MARGINS, codes.SCT.SpiculatedLesion),
    MassClass.ILL_DEFINED: Evaluation(MARGINS, codes.SCT.IndistinctLesion),
    MassClass.WELL_DEFINED: Evaluation(MARGINS, codes.SCT.CircumscribedLesion),
    MassClass.OTHER: Evaluation(MARGINS, local("MARGIN_OTHER", "Other margin")),
    MassClass.UNKNOWN: Evaluation(MARGINS, local("MARGIN_UNKNOWN", "Unknown margin")),
    MassClass.LUCENT_CENTRED: Evaluation(MASS_CLASS, codes.SCT.LucentCenteredCalcification),
    MassClass.COARSE: Evaluation(MASS_CLASS, codes.SCT.CoarsePopcornLikeCalcification),
    MassClass.EGG_SHELL: Evaluation(MASS_CLASS, codes.SCT.EggshellCalcification),
}

BENIGN_CLASS_CODES: Final[dict[BenignClass, Code]] = {
    BenignClass.COARSE: codes.SCT.CoarsePopcornLikeCalcification,
    BenignClass.EGG_SHELL: codes.SCT.EggshellCalcification,
    BenignClass.LUCENT_CENTRED: codes.SCT.LucentCenteredCalcification,
    BenignClass.ROD: codes.SCT.LargeRodLikeCalcification,
    BenignClass.ROUND_AND_PUNCTATE: codes.SCT.RoundShapedCalcification,
}
"""Under Calcification Type; punctate (SCT 129755006) also reads back as round/punctate."""

FEATURE_EVALUATIONS: Final[dict[str, Evaluation]] = {
    "architectural_distortion": Evaluation(FEATURE, codes.SCT.ArchitecturalDistortionOfBreast),
    "focal_asymmetry": Evaluation(FEATURE, codes.SCT.FocalAsymmetricBreastTissue),
    "mass": Evaluation(FEATURE, codes.SCT.MammographicBreastMass),
    "suspicious_calcifications": Evaluation(FEATURE, codes.SCT.CalcificationCluster),
    "with_calcification": Evaluation(FEATURE, codes.SCT.RadiographicCalcificationFinding),
    "fat_necrosis": Evaluation(FEATURE, codes.SCT.FatNecrosisOfBreast),
    "plasma_cell_mastitis": Evaluation(
        FEATURE, local("PLASMA_MASTITIS", "Plasma cell mastitis")
    ),
    "other_benign_cluster": Evaluation(
        FEATURE, local("BENIGN_CLUSTER", "Other benign calcification cluster")
    ),
    "dystrophic": Evaluation(CALCIFICATION_TYPE, codes.SCT.DystrophicCalcification),
    "milk_of_calcium": Evaluation(CALCIFICATION_TYPE, codes.SCT.MilkOfCalciumCalcification),
    "vascular": Evaluation(CALCIFICATION_TYPE, codes.SCT.VascularCalcificationRadiographicFinding),
    "suture_calcification": Evaluation(CALCIFICATION_TYPE, codes.SCT.CalcifiedSutureMaterial),
    "skin": Evaluation(CALCIFICATION_TYPE, codes.SCT.CalcifiedSkinOfBreast),
}
"""Feature flag -> the evaluation written when the flag is set (absent when not)."""

PATHOLOGY_CODES: Final[dict[Pathology, Code]] = {
    Pathology.MALIGNANT: codes.SCT.Malignant,
    Pathology.BENIGN: codes.SCT.Benign,
}


def lesion_code(number: str) -> Code:
    """The local code of an NBSS lesion number (the number is the code value)."""
    return local(number, f"NBSS lesion {number}")


class Decoded(NamedTuple):
    """What one evaluation means for a mark: a field and its value."""

    field: str
    """``conspicuity``, ``mass_class``, ``benign_class``, ``pathology``,
    ``lesion_number`` or ``feature``."""
    value: str


def _decoding() -> dict[tuple[CodeKey, CodeKey], Decoded]:
    table: dict[tuple[CodeKey, CodeKey], Decoded] = {}
    for conspicuity, code in CONSPICUITY_CODES.items():
        table[(key(CONSPICUITY), key(code))] = Decoded("conspicuity", conspicuity.value)
    for mass_class, (name, code) in MASS_CLASS_EVALUATIONS.items():
        table[(key(name), key(code))] = Decoded("mass_class", mass_class.value)
    for benign, code in BENIGN_CLASS_CODES.items():
        table[(key(CALCIFICATION_TYPE), key(code))] = Decoded("benign_class", benign.value)
    table[(key(CALCIFICATION_TYPE), key(codes.SCT.PunctateCalcification))] = Decoded(
        "benign_class", BenignClass.ROUND_AND_PUNCTATE.value
    )
    for feature, (name, code) in FEATURE_EVALUATIONS.items():
        table[(key(name), key(code))] = Decoded("feature", feature)
    for pathology, code in PATHOLOGY_CODES.items():
        table[(key(PATHOLOGY), key(code))] = Decoded("pathology", pathology.value)
    return table


DECODING: Final = _decoding()


def decode_evaluation(name: CodeKey, value: CodeKey) -> Decoded | None:
    """The mark field an evaluation sets, or ``None`` if it maps to none."""
    found = DECODING.get((name, value))
    if found is not None:
        return found
    if name == key(NBSS_LESION) and value.scheme == LOCAL_SCHEME:
        return Decoded("lesion_number", value.value)
    return None
