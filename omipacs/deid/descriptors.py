"""The Clean Descriptors Option (PS3.15 E.3.5, code 113105) for breast screening.

Annex E asks a de-identifier to "replace with values of similar meaning known not to
contain identifying information". Free text cannot be proven safe, so omipacs keeps a
descriptor only when *every* token of it is known and harmless: a word on a small
vocabulary of mammography terms (views, laterality, modality, processing, workflow
words) or one number of at most two digits. Anything that could be a date, a time or an
identifier (digit groups joined by ``/ - . :`` or spaces, three or more digits in a row,
letters glued to digits) and any unknown word makes the value unsafe, and the caller
applies the rule's fallback (remove, empty, dummy or keyed hash). "L CC", "R MLO",
"Screening Mammography", "Tomosynthesis" and "Lesion 1" pass; "Mrs Jane Smith NHS 943
476 5919", "R MLO 14 06 62", "Screening 10/02/16" and "L CC Sparrow" fail.

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
_SHORT_NUMBER: Final = re.compile(r"^\d{1,2}$")
_IDENTIFIER_PATTERNS: Final = (
    re.compile(r"\d\s*[/\\\-.:]\s*\d"),  # 10/02/16, 2016-02-10, 10.02.2016, 10:30, 1.5
    re.compile(r"\d\s+\d"),  # 14 06 62, 943 476 5919
    re.compile(r"\d{3,}"),  # 100216, 9434765919, 1962
    re.compile(r"\d[A-Z]{3,}|[A-Z]{3,}\d", re.IGNORECASE),  # 10FEB2016, FEB62, RSCH101
    re.compile(r"\d{1,2}(ST|ND|RD|TH)?\s*(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)",
               re.IGNORECASE),
)
MAX_NUMBERS: Final = 1
"""Short numbers a kept descriptor may hold ("Lesion 1"); two are a day and a month."""


def looks_like_identifier(text: str) -> bool:
    """True if ``text`` holds a date-, time- or identifier-like pattern.

    Digit groups joined by ``/ - . :`` or spaces, runs of three or more digits, and
    letters glued to digits (``10FEB16``, ``RSCH101``) are all treated as a possible
    date, telephone, NHS or hospital number. Used on its own for technical attributes
    whose words are the equipment's (window explanations, filter names), and as the
    first test of :func:`is_safe_descriptor`.
    """
    return any(p.search(text) for p in _IDENTIFIER_PATTERNS)


def is_safe_descriptor(text: str) -> bool:
    """True if every token of ``text`` is a vocabulary word, with at most one short number.

    A value is kept only when every token is known and harmless: any date-, time- or
    identifier-like pattern (:func:`looks_like_identifier`), any word outside
    :data:`SAFE_WORDS`, a number of three or more digits or more than
    :data:`MAX_NUMBERS` numbers makes it unsafe. An empty or blank descriptor is safe
    (there is nothing to leak). Characters outside printable ASCII make the value
    unsafe, since names in other scripts cannot be checked against an English
    vocabulary.

    Examples
    --------
    >>> is_safe_descriptor("R MLO")
    True
    >>> is_safe_descriptor("Mrs Jane Smith")
    False
    >>> is_safe_descriptor("R MLO 14 06 62")
    False
    """
    if not text.strip():
        return True
    if not text.isascii() or not text.isprintable():
        return False
    if looks_like_identifier(text):
        return False
    numbers = 0
    for token in _TOKEN_SPLIT.split(text.upper()):
        if not token:
            continue
        if token in SAFE_WORDS:
            continue
        if _SHORT_NUMBER.match(token):
            numbers += 1
            if numbers > MAX_NUMBERS:
                return False
            continue
        return False
    return True
