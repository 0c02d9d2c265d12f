"""The Clean Descriptors Option (PS3.15 E.3.5, code 113105) for breast screening.

Annex E asks a de-identifier to "replace with values of similar meaning known not to
contain identifying information". Free text cannot be proven safe, so omipacs keeps a
descriptor only when *every* word of it is on a small vocabulary of mammography terms
(views, laterality, modality, processing, workflow words) and any number in it is short.
Anything else is treated as unsafe and the caller applies the rule's fallback (remove,
empty or dummy). "L CC", "R MLO", "Screening Mammography" and "Tomosynthesis" pass;
"Mrs Jane Smith NHS 943 476 5919" fails on its first word.

Words that are also common names (Mark, Prior, Low, High, ...) are deliberately absent,
so that "R. Low" is not kept because both of its tokens look technical.
"""

from __future__ import annotations

import re
from typing import Final

SAFE_WORDS: Final = frozenset(
    """
    L R LT RT LEFT RIGHT BILATERAL BILAT BOTH
    CC MLO ML LM LMO SIO XCCL XCCM FB AT RL RM ID IMF CV CCID MLOID
    LCC RCC LMLO RMLO LML RML LLM RLM LXCCL RXCCL LXCCM RXCCM LSIO RSIO LFB RFB LAT RAT
    IMPLANT IMPLANTS DISPLACED EKLUND NIPPLE AXILLA AXILLARY TAIL LATERAL MEDIAL
    CRANIOCAUDAL MEDIOLATERAL LATEROMEDIAL OBLIQUE EXAGGERATED CLEAVAGE ROLLED
    TANGENTIAL SUPERIOR INFERIOR INFEROMEDIAL SUPEROLATERAL
    SPOT MAG MAGNIFICATION MAGNIFIED COMPRESSION PADDLE PADDLES
    MG MAMMO MAMMOGRAM MAMMOGRAMS MAMMOGRAPHY MAMMOGRAPHIC MAMMOGRAPHIE
    DIGITAL FFDM DBT BT TOMO TOMOSYNTHESIS COMBO HD SYNTHESIZED SYNTHESISED SYNTHETIC
    CVIEW C VIEW VIEWS PROJECTION PROJECTIONS RECONSTRUCTION RECONSTRUCTED RECON
    SLICE SLICES SLAB SLABS SLABBING VOLUME 2D 3D
    CEM CESM CEDM CONTRAST ENHANCED SPECTRAL ENERGY DUAL RECOMBINED SUBTRACTED
    SUBTRACTION LE HE
    SCREENING SCREEN DIAGNOSTIC ASSESSMENT RECALL RECALLED FOLLOW UP FOLLOWUP SURVEILLANCE
    SYMPTOMATIC ROUTINE STANDARD ADDITIONAL REPEAT TECHNICAL QC QA PHANTOM
    BREAST BREASTS CHEST
    FOR PRESENTATION PROCESSING PROCESSED UNPROCESSED RAW ORIGINAL PRIMARY SECONDARY
    DERIVED
    BIOPSY BIOPSIES STEREO STEREOTACTIC STEREOTACTICALLY VACUUM ASSISTED VAB CORE
    SPECIMEN SPECIMENS GUIDED GUIDANCE LOCALISATION LOCALIZATION WIRE MARKER CLIP
    ULTRASOUND US MRI MR DX CR SC SR PR KO GSPS CAD
    IMAGE IMAGES SERIES STUDY EXAM EXAMINATION REPORT STRUCTURED PRESENTATION STATE
    ANNOTATION ANNOTATIONS ROI REGION REGIONS LESION LESIONS FINDING FINDINGS
    MASS MASSES CALCIFICATION CALCIFICATIONS CALCS MICROCALCIFICATIONS DISTORTION
    ARCHITECTURAL ASYMMETRY ASYMMETRIC DENSITY FOCAL NORMAL BENIGN MALIGNANT
    SUSPICIOUS INDETERMINATE NO YES NONE UNKNOWN
    AND WITH WITHOUT OF THE TO IN ON AT BY
    """.split()
)
"""Upper-case words that may appear in a kept descriptor."""

_TOKEN_SPLIT: Final = re.compile(r"[\s_/\\\-,.;:()\[\]+&'\"#*=|^]+")
_SHORT_NUMBER: Final = re.compile(r"^\d{1,2}[A-Z]?$")


def is_safe_descriptor(text: str) -> bool:
    """True if ``text`` is made only of vocabulary words and numbers of at most 2 digits.

    An empty or blank descriptor is safe (there is nothing to leak). Characters outside
    printable ASCII make the value unsafe, since names in other scripts cannot be checked
    against an English vocabulary.

    Examples
    --------
    >>> is_safe_descriptor("R MLO")
    True
    >>> is_safe_descriptor("Mrs Jane Smith")
    False
    """
    if not text.strip():
        return True
    if not text.isascii() or not text.isprintable():
        return False
    for token in _TOKEN_SPLIT.split(text.upper()):
        if not token:
            continue
        if token in SAFE_WORDS or _SHORT_NUMBER.match(token):
            continue
        return False
    return True
