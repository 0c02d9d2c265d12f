"""Read a few identifying attributes of a file cheaply, for failure reports.

A STOW-RS response must name the SOP class and instance of each failed part where it
can (PS3.18 §10.5.3); this reads just those, and never raises.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from pydicom import dcmread

from omipacs.dicom.uids import is_valid_uid

_TAGS = ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"]


def peek_identity(path: Path) -> tuple[str, str, str]:
    """(SOP class, SOP instance, study) UIDs, each '' when absent or not a valid UID."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
        values = [str(ds.get(t, "") or "") for t in _TAGS]
    except Exception:
        return "", "", ""
    cleaned = [v if is_valid_uid(v) else "" for v in values]
    return cleaned[0], cleaned[1], cleaned[2]
