"""UID checks and the lists of SOP classes and transfer syntaxes the archive accepts.

A UID is validated before it is used anywhere (a query, a log line, a lookup): only
``[0-9.]``, at most 64 characters, no empty or zero-padded components (PS3.5 §9.1).
Storage keys are never derived from UIDs (see :mod:`omipacs.blobs`), but the check keeps
injection and traversal attempts (``../../x``) out of every other layer too.
"""

from __future__ import annotations

import re

from pydicom import uid as pyuid

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_valid_uid(value: object) -> bool:
    """True if ``value`` is a syntactically valid DICOM UID (PS3.5 §9.1)."""
    return isinstance(value, str) and 0 < len(value) <= 64 and bool(_UID_RE.match(value))


MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
BREAST_TOMOSYNTHESIS = "1.2.840.10008.5.1.4.1.1.13.1.3"
BREAST_PROJECTION_PRESENTATION = "1.2.840.10008.5.1.4.1.1.13.1.4"
BREAST_PROJECTION_PROCESSING = "1.2.840.10008.5.1.4.1.1.13.1.5"

#: Storage SOP classes the archive accepts (docs/data-model.md, "Accepted objects"), by UID.
STORAGE_SOP_CLASSES: dict[str, str] = {
    MG_FOR_PRESENTATION: "Digital Mammography X-Ray Image Storage - For Presentation",
    MG_FOR_PROCESSING: "Digital Mammography X-Ray Image Storage - For Processing",
    BREAST_TOMOSYNTHESIS: "Breast Tomosynthesis Image Storage",
    BREAST_PROJECTION_PRESENTATION: "Breast Projection X-Ray Image Storage - For Presentation",
    BREAST_PROJECTION_PROCESSING: "Breast Projection X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.1": "Multi-frame Single Bit Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State Storage",
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.50": "Mammography CAD SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.59": "Key Object Selection Document Storage",
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image Storage",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image Storage",
}

#: Transfer syntaxes stored as received. Deflate is left out on purpose: a small deflated
#: stream can inflate to gigabytes before any size check (docs/architecture.md, "Hostile
#: input"). Big endian is retired (PS3.5 Annex A.3) and left out too.
ACCEPTED_TRANSFER_SYNTAXES: tuple[str, ...] = (
    pyuid.ExplicitVRLittleEndian,
    pyuid.ImplicitVRLittleEndian,
    pyuid.JPEGLosslessSV1,
    pyuid.JPEGLossless,
    pyuid.JPEGBaseline8Bit,
    pyuid.JPEGExtended12Bit,
    pyuid.JPEGLSLossless,
    pyuid.JPEGLSNearLossless,
    pyuid.JPEG2000Lossless,
    pyuid.JPEG2000,
    pyuid.HTJ2KLossless,
    pyuid.HTJ2KLosslessRPCL,
    pyuid.HTJ2K,
    pyuid.RLELossless,
)

NATIVE_TRANSFER_SYNTAXES = frozenset({pyuid.ExplicitVRLittleEndian, pyuid.ImplicitVRLittleEndian})


def is_multiframe_class(sop_class_uid: str) -> bool:
    """True for SOP classes whose images are usually multi-frame (DBT and projections)."""
    return sop_class_uid in (
        BREAST_TOMOSYNTHESIS,
        BREAST_PROJECTION_PRESENTATION,
        BREAST_PROJECTION_PROCESSING,
    )
