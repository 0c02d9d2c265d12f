"""What a curator sees of a quarantined instance before releasing or purging it.

A held file is the one received, so its header names the patient (see
:mod:`omipacs.ingest.quarantine`). A person deciding whether its *pixels* may be
published needs to see the pixels and the few attributes that describe the image and
how it was made; nothing else. So the header summary is an allow-list of descriptive,
non-identifying attributes (no names, dates, IDs, UIDs, institutions or free text), and
the preview is the first (or a chosen) frame rendered exactly as WADO-RS ``/rendered``
renders it (:func:`omipacs.retrieve.render.render_frame`), burned-in text and all,
since that is what the curator must judge.

The frame's bytes are located with the same frame table ingest computes
(:func:`omipacs.dicom.frames.frame_table`) and decoded by
:func:`omipacs.dicom.pixels.decode_frame`, within the process's decode slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydicom.dataset import Dataset
from pydicom.uid import UID

from omipacs.dicom.frames import frame_table, number_of_frames
from omipacs.dicom.parse import ParsedFile, parse_file
from omipacs.dicom.pixels import decode_frame
from omipacs.errors import BadRequest, NotAcceptable, NotFound
from omipacs.retrieve.render import MAX_VIEWPORT_SIDE, render_frame

PREVIEW_SIDE: Final = 1024
"""The preview fits in this square unless the curator asks for another size."""

SUMMARY_KEYWORDS: Final = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "ImageType",
    "BurnedInAnnotation",
    "RecognizableVisualFeatures",
    "PresentationIntentType",
    "BodyPartExamined",
    "ViewPosition",
    "ImageLaterality",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "LossyImageCompression",
)
"""Descriptive attributes shown in the header summary: none of them identifies anyone.
(A free-text field such as Image Comments could, so none is listed.)"""


@dataclass(frozen=True)
class HeaderItem:
    """One line of the header summary."""

    name: str
    value: str


def _value(ds: Dataset, keyword: str) -> str | None:
    if keyword not in ds:
        return None
    value = ds[keyword].value
    if value is None or value == "":
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)[:128]
    return str(value)[:128]


def _overlay_groups(ds: Dataset) -> list[str]:
    groups = {t.group for t in ds.keys() if 0x6000 <= t.group <= 0x601E and t.group % 2 == 0}
    return [f"{g:04X}" for g in sorted(groups)]


def header_summary(path: Path) -> list[HeaderItem]:
    """The allow-listed attributes of a held file, with its SOP class and encoding."""
    parsed = parse_file(path)
    ds = parsed.dataset
    sop_class = str(ds.get("SOPClassUID", "") or "")
    items = [
        HeaderItem("SOP Class", _uid_name(sop_class)),
        HeaderItem("Transfer Syntax", _uid_name(parsed.transfer_syntax)),
    ]
    for keyword in SUMMARY_KEYWORDS:
        value = _value(ds, keyword)
        if value is not None:
            items.append(HeaderItem(keyword, value))
    overlays = _overlay_groups(ds)
    items.append(HeaderItem("Overlay planes", ", ".join(overlays) if overlays else "none"))
    items.append(HeaderItem("Pixel data", "present" if parsed.pixel is not None else "absent"))
    items.append(HeaderItem("File size", f"{parsed.file_size} bytes"))
    return items


def _uid_name(uid: str) -> str:
    if not uid:
        return ""
    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def frames_of(path: Path) -> int:
    """How many frames the held file has (0 when it holds no pixels)."""
    parsed = parse_file(path)
    return number_of_frames(parsed.dataset) if parsed.pixel is not None else 0


def _frame_bytes(parsed: ParsedFile, number: int) -> bytes:
    assert parsed.pixel is not None
    table = frame_table(parsed.dataset, parsed.pixel)
    if table is None:
        raise NotAcceptable("this object's frames cannot be located for a preview")
    out = bytearray()
    with open(parsed.path, "rb") as f:
        for offset, length in table[number - 1]:
            f.seek(offset)
            out += f.read(length)
    return bytes(out)


def preview(path: Path, frame: int = 1, side: int = PREVIEW_SIDE) -> bytes:
    """Frame ``frame`` (1-based) of a held file as PNG, fitted in ``side`` pixels square.

    Raises
    ------
    NotFound
        If the file holds no pixels or no such frame.
    BadRequest
        If ``side`` is outside 1..MAX_VIEWPORT_SIDE.
    NotAcceptable
        If its frames cannot be located or decoded here.
    """
    if not 1 <= side <= MAX_VIEWPORT_SIDE:
        raise BadRequest(f"the preview size must be between 1 and {MAX_VIEWPORT_SIDE}")
    parsed = parse_file(path)
    if parsed.pixel is None:
        raise NotFound("this object holds no pixels")
    count = number_of_frames(parsed.dataset)
    if not 1 <= frame <= count:
        raise NotFound(f"frame {frame} does not exist (the object has {count})")
    pixels = decode_frame(parsed.dataset, _frame_bytes(parsed, frame), parsed.transfer_syntax)
    rows, columns = pixels.shape[:2]
    fit = (side, side) if max(rows, columns) > side else None
    return render_frame(
        parsed.dataset, pixels, media_type="image/png", viewport=fit, frame_index=frame - 1
    )
