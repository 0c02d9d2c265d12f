"""Pixels that may identify: burned-in text and overlays hidden in unused pixel bits.

omipacs does not edit what an image shows, so PS3.15's Clean Pixel Data Option (E.3.1)
is honoured by *not publishing* what may show identity:

* **Burned-in text.** Burned In Annotation (0028,0301) ``YES``, or any value other than
  ``NO``, quarantines the instance. For the classes that commonly carry burned-in text
  (ultrasound, secondary capture, visible-light photographs, endoscopy, microscopy and
  ophthalmic photographs, and any other class whose Modality is one of
  :data:`BURNED_IN_MODALITIES`) an *absent* Burned In Annotation quarantines it too:
  only an explicit ``NO`` is believed. A site whose equipment is known not to burn text
  can be allowed by SOP class and manufacturer (``[[deid.burned_in_allow]]``).
* **Overlays in the pixel words.** Old equipment drew overlays (names, dates) into the
  unused high bits of 16-bit pixel words (Overlay Bit Position (60xx,0102) at or above
  Bits Stored, no Overlay Data). The profile removes the overlay's description (group
  60xx), but the bits would still be served. For native (uncompressed) pixel data every
  bit outside the stored range is therefore cleared on ingest (:class:`BitMask`; signed
  data is sign-extended from High Bit instead, which is what a reader computes anyway);
  compressed pixel data with a declared embedded overlay is quarantined, since it cannot
  be edited without decoding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

BURNED_IN_CLASSES: Final = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
        "1.2.840.10008.5.1.4.1.1.6.3",  # Photoacoustic Image
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
        "1.2.840.10008.5.1.4.1.1.77.1.1",  # VL Endoscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.2",  # VL Microscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.3",  # VL Slide-Coordinates Microscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image (XC)
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image
        "1.2.840.10008.5.1.4.1.1.77.1.5.1",  # Ophthalmic Photography 8 Bit
        "1.2.840.10008.5.1.4.1.1.77.1.5.2",  # Ophthalmic Photography 16 Bit
        "1.2.840.10008.5.1.4.1.1.77.1.6",  # VL Whole Slide Microscopy
        "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic (frames with labels)
        "1.2.840.10008.5.1.4.1.1.12.2",  # X-Ray Radiofluoroscopic
    }
)
"""SOP classes that commonly carry burned-in text; only an explicit ``NO`` is believed."""

BURNED_IN_MODALITIES: Final = frozenset({"US", "IVUS", "XC", "ES", "GM", "SM", "OP", "OT"})
"""Modalities whose images commonly carry burned-in text, whatever their SOP class."""

NATIVE_SYNTAXES: Final = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian})


class AllowEntry(Protocol):
    """One ``[[deid.burned_in_allow]]`` entry (see :class:`omipacs.config.BurnedInAllow`)."""

    @property
    def sop_class_uid(self) -> str: ...

    @property
    def manufacturer(self) -> str: ...


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - malformed input reads as absent here
        return ""
    return "" if value is None else str(value).strip()


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value is None or value == "" else int(value)
    except Exception:  # noqa: BLE001 - malformed input reads as absent here
        return None


def can_carry_burned_in_text(ds: Dataset) -> bool:
    """True for an instance of a class or modality that commonly burns text in."""
    return (_text(ds, "SOPClassUID") in BURNED_IN_CLASSES
            or _text(ds, "Modality").upper() in BURNED_IN_MODALITIES)


def _allowed(ds: Dataset, allow: Iterable[AllowEntry]) -> bool:
    sop_class = _text(ds, "SOPClassUID")
    maker = _text(ds, "Manufacturer").casefold()
    return any(
        entry.sop_class_uid == sop_class
        and (not entry.manufacturer or entry.manufacturer.casefold() == maker)
        for entry in allow
    )


def burned_in_reason(ds: Dataset, allow: Iterable[AllowEntry] = ()) -> str | None:
    """Why the pixels of ``ds`` may show burned-in identity, or ``None``.

    Reasons are fixed strings and never echo a value from the data set.
    """
    burned_in = _text(ds, "BurnedInAnnotation").upper()
    if burned_in == "YES":
        return "BurnedInAnnotation is YES: the pixel data may show identifying text"
    if burned_in not in ("", "NO"):
        return "BurnedInAnnotation is neither YES nor NO"
    if not burned_in and can_carry_burned_in_text(ds) and not _allowed(ds, allow):
        return (
            "an image of a class that can carry burned-in text without BurnedInAnnotation "
            "NO: burned-in text cannot be ruled out"
        )
    if _text(ds, "RecognizableVisualFeatures").upper() == "YES":
        return "RecognizableVisualFeatures is YES"
    return None


def _embedded_overlay(ds: Dataset, bits_stored: int, high_bit: int, bits_allocated: int) -> bool:
    """True if an overlay group says its bits live inside the pixel words."""
    low = high_bit - bits_stored + 1
    for group in range(0x6000, 0x6020, 2):
        position = ds.get((group, 0x0102))
        if position is None:
            continue
        try:
            bit = int(position.value)
        except (TypeError, ValueError):
            return True  # unreadable: assume the worst
        if (group, 0x3000) not in ds and not low <= bit <= high_bit and bit < bits_allocated:
            return True
    return False


@dataclass(frozen=True)
class BitMask:
    """Clear the bits of each native pixel word outside the stored range."""

    bits_allocated: int
    bits_stored: int
    high_bit: int
    signed: bool

    @property
    def word_bytes(self) -> int:
        return self.bits_allocated // 8

    def apply(self, chunk: bytes) -> bytes:
        """``chunk`` (whole little-endian words; a trailing partial word is kept) cleaned."""
        out = bytearray(chunk)
        self.clean(memoryview(out))
        return bytes(out)

    def clean(self, chunk: memoryview) -> None:
        """Clean the whole little-endian words of a writable ``chunk`` in place (a
        trailing partial word is kept): no copy of the pixel bytes is made."""
        size = self.word_bytes
        kind = {1: "u1", 2: "<u2", 4: "<u4"}[size]
        words = np.frombuffer(chunk, dtype=kind, count=len(chunk) // size)
        if self.signed and self.high_bit == self.bits_stored - 1:
            shift = self.bits_allocated - self.bits_stored
            signed = words.view(kind.replace("u", "i"))
            np.left_shift(signed, shift, out=signed)
            np.right_shift(signed, shift, out=signed)
        else:
            low = self.high_bit - self.bits_stored + 1
            np.bitwise_and(words, ((1 << self.bits_stored) - 1) << low, out=words)


def overlay_plan(ds: Dataset, transfer_syntax: str) -> tuple[BitMask | None, str | None]:
    """``(mask, quarantine reason)`` for the bits outside the stored range of ``ds``.

    Native data with Bits Stored < Bits Allocated gets a :class:`BitMask`; compressed
    data is quarantined only when an overlay says it is embedded in the pixel words.
    """
    bits_allocated = _int(ds, "BitsAllocated")
    bits_stored = _int(ds, "BitsStored")
    if bits_allocated is None or bits_stored is None or bits_stored >= bits_allocated:
        return None, None
    high_bit = _int(ds, "HighBit")
    if high_bit is None or not bits_stored - 1 <= high_bit < bits_allocated:
        high_bit = bits_stored - 1
    signed = _int(ds, "PixelRepresentation") == 1
    if transfer_syntax in NATIVE_SYNTAXES:
        if bits_allocated not in (8, 16, 32):
            return None, "pixel words of an unusual size cannot be cleaned of overlay bits"
        return BitMask(bits_allocated, bits_stored, high_bit, signed), None
    if _embedded_overlay(ds, bits_stored, high_bit, bits_allocated):
        return None, "compressed pixel data with an overlay embedded in the pixel words"
    return None, None
