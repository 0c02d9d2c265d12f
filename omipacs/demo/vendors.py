"""Equipment profiles of the three mammography systems the demo imitates.

Values are typical of each vendor's headers (manufacturer and model strings, detector
pixel pitch and matrix, bit depth, anode and filters, grey-scale conventions) so that
vendor-dependent code paths (MONOCHROME1 display, SIGMOID VOI LUT, differing pixel
spacing) are exercised. Serial numbers, stations and institutions are invented.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class VendorProfile:
    """Equipment attributes typical of one mammography system."""

    manufacturer: str
    model: str
    software_versions: tuple[str, ...]
    device_serial: str
    detector_id: str
    station: str
    institution: str
    institution_address: str
    pixel_spacing: float
    """ImagerPixelSpacing in mm, the detector pitch."""
    full_size: tuple[int, int]
    """(Rows, Columns) of a full-field 2D image."""
    bits_raw: int
    """BitsStored of For Processing images."""
    bits_processed: int
    """BitsStored of For Presentation images."""
    anode: str
    filters: tuple[str, str]
    """Filter for thinner and for thicker breasts (switch at 55 mm)."""
    detector_type: str
    source_to_detector: float
    processed_monochrome1: bool = False
    """For Presentation images stored as MONOCHROME1 (GE)."""
    voi_function: str | None = None
    """VOILUTFunction of For Presentation images, if not LINEAR."""


VENDORS: Mapping[str, VendorProfile] = {
    "HOLOGIC": VendorProfile(
        manufacturer="HOLOGIC, Inc.",
        model="Selenia Dimensions",
        software_versions=("1.11.2.8",),
        device_serial="81234567",
        detector_id="SN 60513",
        station="HOLOGIC-SD01",
        institution="Riverside Breast Screening Unit",
        institution_address="Riverside Hospital, Mill Lane, Guildford, GU2 7XX",
        pixel_spacing=0.07,
        full_size=(4096, 3328),
        bits_raw=14,
        bits_processed=12,
        anode="TUNGSTEN",
        filters=("RHODIUM", "SILVER"),
        detector_type="DIRECT",
        source_to_detector=700.0,
    ),
    "GE": VendorProfile(
        manufacturer="GE MEDICAL SYSTEMS",
        model="Senographe Pristina",
        software_versions=("ADS_28.24", "IDC_1.2"),
        device_serial="PR0010442",
        detector_id="DX8312",
        station="GEPRISTINA2",
        institution="Northgate Breast Screening Centre",
        institution_address="Northgate General Hospital, Station Road, Leeds, LS9 7TF",
        pixel_spacing=0.1,
        full_size=(2294, 1914),
        bits_raw=14,
        bits_processed=14,
        anode="MOLYBDENUM",
        filters=("MOLYBDENUM", "RHODIUM"),
        detector_type="SCINTILLATOR",
        source_to_detector=660.0,
        processed_monochrome1=True,
        voi_function="SIGMOID",
    ),
    "SIEMENS": VendorProfile(
        manufacturer="SIEMENS",
        model="Mammomat Revelation",
        software_versions=("VA10B",),
        device_serial="10153",
        detector_id="D-2201",
        station="MAMMO-REV-1",
        institution="Westfield Breast Imaging Service",
        institution_address="Westfield Infirmary, Kingsway, Sheffield, S10 2JF",
        pixel_spacing=0.085,
        full_size=(3584, 2816),
        bits_raw=12,
        bits_processed=12,
        anode="TUNGSTEN",
        filters=("RHODIUM", "RHODIUM"),
        detector_type="DIRECT",
        source_to_detector=650.0,
    ),
}
"""Profiles keyed by the ``vendor`` argument of the factory functions."""

DBT_FULL_SIZE = (2457, 1890)
"""(Rows, Columns) of a full-size tomosynthesis slice."""
DBT_PIXEL_SPACING = 0.1
"""In-plane pixel spacing of reconstructed slices, mm."""
