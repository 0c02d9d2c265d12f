"""The omipacs de-identification profile: PS3.15 Annex E as data, resolved to operations.

The profile is three tables and one fallback, consulted in this order for every element,
at every depth of nesting:

1. :data:`OVERRIDES`, omipacs' own decisions, each with its reason (the pseudonymous
   Patient Name and ID, the marking attributes, SR text and a few Type 1/2 attributes
   whose combined action code needs an IOD-specific answer).
2. Group rules: private groups (removed unless on the safe-private list), curves 50xx
   and overlays 60xx (whole groups removed: the Clean Graphics Option is not offered),
   command, file meta and directory elements found inside a data set (E.1-1 lists some
   of them because they "could be misused within Private Sequences"), group lengths.
3. :data:`omipacs.deid.annex_e.TABLE_E1_1`, resolved per the options in use
   (:meth:`Profile.resolve`). "A requirement for an Option, when implemented, overrides
   any requirement for the underlying Profile" (PS3.15 E.1.1).
4. :data:`TECHNICAL_KEEP`, text attributes known to carry no identity (codes,
   manufacturer and model, VOI explanations).
5. A fallback by VR, following E.1.1 note 4 (handle dates and times by their VR) and
   note 5 (retain only what is known to be safe for free-text VRs):

   ======================== ==================================================
   VR                       Operation
   ======================== ==================================================
   UI                       remap to ``2.25.<hmac>``, except class UIDs,
                            transfer syntaxes, coding-scheme UIDs and any
                            DICOM-registered UID (root ``1.2.840.10008.``)
   DA, DT, TM               shift (113107) or remove (without 113107)
   SQ                       recurse: every item is de-identified by this profile
   PN, AE, LO, LT, SH, ST,  remove: free text and names are kept only when
   UC, UR, UT               listed in TECHNICAL_KEEP or cleaned by a rule
   UN                       remove: an unknown value cannot be judged
   CS, AS, numbers, AT,     keep: defined terms, ages and numbers carry no
   OB, OD, OF, OL, OV, OW   names (binary payloads that can are listed)
   ======================== ==================================================

The Retain Device Identity column (113109) selects the device attributes: make, model
and software are kept verbatim (they are not in Table E.1-1 at all) but serial numbers,
station names and other unit identifiers are *pseudonymised* with a keyed hash, so one
unit stays one unit across the archive without its serial number being published.
Since they are not retained, 113109 is not claimed in the De-identification Method Code
Sequence (:meth:`Profile.method_codes`). UIDs are always remapped: the Retain UIDs
Option (113110) is not used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Final

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.tag import BaseTag, Tag

from omipacs.deid.annex_e import TABLE_E1_1, AnnexERow


class Op(StrEnum):
    """What happens to one element. The values name the counters in ``DeidResult``."""

    KEEP = "keep"
    """Keep the value unchanged (Annex E "K" for a non-sequence)."""
    REMOVE = "remove"
    """Remove the element (Annex E "X")."""
    EMPTY = "empty"
    """Keep the element with a zero-length value (Annex E "Z"); an empty sequence for SQ."""
    DUMMY = "dummy"
    """Replace with a fixed dummy value consistent with the VR (Annex E "D")."""
    REMAP_UID = "remap_uid"
    """Replace every UID value with its deterministic ``2.25`` pseudonym (Annex E "U")."""
    SHIFT_DATE = "shift_date"
    """Shift DA/DT by the client's offset; TM is unchanged by a whole-day shift (113107)."""
    CLEAN = "clean"
    """Keep a descriptor made of safe words, else apply the rule's fallback (113105)."""
    HASH_DEVICE = "hash_device"
    """Replace a device identifier with a keyed hash, ``DEV`` + 12 base32 (113109)."""
    PSEUDONYM = "pseudonym"
    """Replace with the client pseudonym (Patient Name and Patient ID)."""
    RECURSE = "recurse"
    """A sequence kept and cleaned: every item is de-identified with this profile."""


class Option(Enum):
    """CID 7050 De-identification Method codes (PS3.16), scheme DCM."""

    BASIC = "113100"
    CLEAN_PIXEL_DATA = "113101"
    CLEAN_RECOGNIZABLE_VISUAL_FEATURES = "113102"
    CLEAN_GRAPHICS = "113103"
    CLEAN_STRUCTURED_CONTENT = "113104"
    CLEAN_DESCRIPTORS = "113105"
    RETAIN_FULL_DATES = "113106"
    RETAIN_MODIFIED_DATES = "113107"
    RETAIN_PATIENT_CHARACTERISTICS = "113108"
    RETAIN_DEVICE_IDENTITY = "113109"
    RETAIN_UIDS = "113110"
    RETAIN_SAFE_PRIVATE = "113111"
    RETAIN_INSTITUTION_IDENTITY = "113112"

    @property
    def code(self) -> Code:
        """The coded concept, with the meaning taken from pydicom's copy of CID 7050."""
        concept: Code = getattr(codes.DCM, _CID_7050_KEYWORDS[self])
        return Code(concept.value, "DCM", concept.meaning)


_CID_7050_KEYWORDS: Final[Mapping[Option, str]] = MappingProxyType(
    {
        Option.BASIC: "BasicApplicationConfidentialityProfile",
        Option.CLEAN_PIXEL_DATA: "CleanPixelDataOption",
        Option.CLEAN_RECOGNIZABLE_VISUAL_FEATURES: "CleanRecognizableVisualFeaturesOption",
        Option.CLEAN_GRAPHICS: "CleanGraphicsOption",
        Option.CLEAN_STRUCTURED_CONTENT: "CleanStructuredContentOption",
        Option.CLEAN_DESCRIPTORS: "CleanDescriptorsOption",
        Option.RETAIN_FULL_DATES: "RetainLongitudinalTemporalInformationFullDatesOption",
        Option.RETAIN_MODIFIED_DATES: "RetainLongitudinalTemporalInformationModifiedDatesOption",
        Option.RETAIN_PATIENT_CHARACTERISTICS: "RetainPatientCharacteristicsOption",
        Option.RETAIN_DEVICE_IDENTITY: "RetainDeviceIdentityOption",
        Option.RETAIN_UIDS: "RetainUidsOption",
        Option.RETAIN_SAFE_PRIVATE: "RetainSafePrivateOption",
        Option.RETAIN_INSTITUTION_IDENTITY: "RetainInstitutionIdentityOption",
    }
)

SUPPORTED_OPTIONS: Final = frozenset(
    {
        Option.CLEAN_DESCRIPTORS,
        Option.RETAIN_MODIFIED_DATES,
        Option.RETAIN_PATIENT_CHARACTERISTICS,
        Option.RETAIN_DEVICE_IDENTITY,
    }
)
"""Options a :class:`Profile` may select; the Table E.1-1 columns transcribed for them.

Clean Pixel Data (113101) is honoured by quarantine, not by cleaning: an instance whose
pixels may carry burned-in text is never published, so the code is never claimed.
Retain Safe Private (113111) is claimed automatically when a safe private element was
actually kept.
"""

CLAIMED_ELSEWHERE: Final = frozenset({Option.RETAIN_DEVICE_IDENTITY})
"""Options used to select attributes but not claimed, because the attributes are
pseudonymised rather than retained (see :meth:`Profile.method_codes`)."""

OMIPACS_OPTIONS: Final = SUPPORTED_OPTIONS
"""The options of the archive's profile (docs/deidentification.md)."""

# Option columns in the order they are consulted (they never disagree in the table;
# tests/deid/test_profile.py checks it).
_OPTION_ORDER: Final = (
    Option.RETAIN_MODIFIED_DATES,
    Option.RETAIN_PATIENT_CHARACTERISTICS,
    Option.RETAIN_DEVICE_IDENTITY,
    Option.CLEAN_DESCRIPTORS,
)

TEXT_VRS: Final = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
DATE_VRS: Final = frozenset({"DA", "DT", "TM"})
KEPT_VRS: Final = frozenset(
    {"AS", "AT", "CS", "DS", "FD", "FL", "IS", "OB", "OD", "OF", "OL", "OV", "OW",
     "SL", "SS", "SV", "UL", "US", "UV", "US or SS", "OB or OW", "US or OW", "US or SS or OW"}
)

DICOM_UID_ROOT: Final = "1.2.840.10008."
"""UIDs under this root are registered by the standard (PS3.6 Annex A) and never remapped."""

UID_KEEP_KEYWORDS: Final = frozenset(
    {"CodingSchemeUID", "MappingResourceUID", "ContextUID", "ContextGroupExtensionCreatorUID",
     "ImplementationClassUID"}
)
"""UI attributes that name a scheme or an implementation, not an instance."""


def is_class_uid_keyword(keyword: str) -> bool:
    """True for UI attributes that identify a class or a syntax, kept verbatim.

    Covers *SOPClassUID* and friends (``ReferencedSOPClassUIDInFile``,
    ``ManufacturerDeviceClassUID``), every *TransferSyntaxUID* and
    :data:`UID_KEEP_KEYWORDS`.
    """
    return "ClassUID" in keyword or "TransferSyntaxUID" in keyword or keyword in UID_KEEP_KEYWORDS


TECHNICAL_KEEP: Final = frozenset(
    {
        # Device identity kept verbatim (113109); not in Table E.1-1.
        "Manufacturer", "ManufacturerModelName", "SoftwareVersions",
        "DetectorManufacturerName", "DetectorManufacturerModelName",
        "SecondaryCaptureDeviceManufacturer", "SecondaryCaptureDeviceManufacturerModelName",
        "SecondaryCaptureDeviceSoftwareVersions",
        "ApplicationName", "ApplicationVersion", "ApplicationManufacturer",
        "AcquisitionDeviceProcessingCode",
        # Coded concepts (Code Sequence Macro, PS3.3 Table 8.8-1): the engine first
        # cleans each code item as a whole (omipacs.deid.codes).
        "CodeValue", "CodingSchemeDesignator", "CodeMeaning", "LongCodeValue", "URNCodeValue",
    }
)
"""Text-VR attributes kept verbatim by the fallback (standard attributes, by keyword)."""

TECHNICAL_CHECKED: Final = frozenset(
    {
        # Versions and names of coding resources.
        "CodingSchemeVersion", "MappingResourceName", "CodingSchemeName",
        # Presentation of pixel values.
        "RescaleType", "WindowCenterWidthExplanation", "LUTExplanation",
        "DimensionDescriptionLabel", "StackID",
        # Acquisition technique named by the equipment.
        "FilterType", "CollimatorGridName",
    }
)
"""Text-VR attributes worded by the equipment: kept unless a value looks like a date or
an identifier (:func:`omipacs.deid.descriptors.looks_like_identifier`), else removed."""


@dataclass(frozen=True)
class Rule:
    """The operation for one element, with the reason, for audit and tests."""

    op: Op
    source: str
    """Where the rule comes from, e.g. ``"E.1-1 X/Z/D, 113109:K"`` or ``"VR PN"``."""
    fallback: Op = Op.REMOVE
    """For :attr:`Op.CLEAN`: what to do with a value that is not a safe descriptor."""
    technical: bool = False
    """For :attr:`Op.CLEAN`: the value is the equipment's wording, checked only for
    date- and identifier-like patterns rather than against the vocabulary."""


def _ext(op: Op, reason: str, fallback: Op = Op.REMOVE) -> Rule:
    return Rule(op, f"omipacs: {reason}", fallback)


OVERRIDES: Final[Mapping[str, Rule]] = MappingProxyType(
    {
        "PatientName": _ext(Op.PSEUDONYM, "client pseudonym (consistent dummy, E.1.1 note 3)"),
        "PatientID": _ext(Op.PSEUDONYM, "client pseudonym (consistent dummy, E.1.1 note 3)"),
        "PatientBirthDate": _ext(Op.EMPTY, "Z; the age is kept in PatientAge instead"),
        # Set afresh by the engine after cleaning (PS3.15 E.1.1 item 6).
        "PatientIdentityRemoved": _ext(Op.REMOVE, "rewritten by the engine"),
        "DeidentificationMethod": _ext(Op.REMOVE, "rewritten by the engine"),
        "DeidentificationMethodCodeSequence": _ext(Op.REMOVE, "rewritten by the engine"),
        "LongitudinalTemporalInformationModified": _ext(Op.REMOVE, "rewritten by the engine"),
        # Free text that is Type 1 or 2 where it appears: cleaned, else a dummy or empty.
        "TextValue": _ext(Op.CLEAN, "SR TEXT content item (Type 1C)", Op.DUMMY),
        "UnformattedTextValue": _ext(Op.CLEAN, "presentation state text (Type 1C)", Op.DUMMY),
        "ContentDescription": _ext(Op.CLEAN, "Type 2 in Content Identification", Op.EMPTY),
        "PositionReferenceIndicator": _ext(Op.CLEAN, "Type 2 in Frame of Reference", Op.EMPTY),
        # Labels chosen by a person (CS, so no vocabulary limit by VR): cleaned too.
        "ContentLabel": _ext(Op.CLEAN, "Type 1 label of a presentation state or SR", Op.DUMMY),
        # Layer names are matched across sequences: a keyed hash keeps them matching.
        "GraphicLayer": _ext(Op.CLEAN, "Type 1 layer name, referenced by annotations",
                             Op.HASH_DEVICE),
        "AcquisitionContextSequence": _ext(Op.EMPTY, "X/Z resolved to Z: Type 2 in MG"),
        # Locations are not device identity: removed although 113109 says K.
        "ScheduledStationNameCodeSequence": _ext(Op.REMOVE, "station location codes"),
        "ScheduledStationGeographicLocationCodeSequence": _ext(Op.REMOVE, "location codes"),
        "PerformedStationNameCodeSequence": _ext(Op.REMOVE, "station location codes"),
        "PerformedStationGeographicLocationCodeSequence": _ext(Op.REMOVE, "location codes"),
        # Descriptive device attributes under 113109: make and model, not a unit.
        "LensMake": _ext(Op.KEEP, "113109 make, not a unit identifier"),
        "LensModel": _ext(Op.KEEP, "113109 model, not a unit identifier"),
        "SourceManufacturer": _ext(Op.KEEP, "113109 make, not a unit identifier"),
        # Payloads that can hide anything.
        "EncapsulatedDocument": _ext(Op.REMOVE, "opaque document payload"),
        "EncryptedAttributesSequence": _ext(Op.REMOVE, "may hold the original identity"),
        "MACParametersSequence": _ext(Op.REMOVE, "signature material, invalid once modified"),
        "IssuerOfPatientIDQualifiersSequence": _ext(Op.REMOVE, "names the ID issuer"),
        "IssuerOfAccessionNumberSequence": _ext(Op.REMOVE, "names the accession issuer"),
        # Versions of coding resources are not patient dates.
        "ContextGroupVersion": _ext(Op.KEEP, "coding resource version, not a patient date"),
        "ContextGroupLocalVersion": _ext(Op.KEEP, "coding resource version"),
        "TemplateVersion": _ext(Op.KEEP, "coding resource version"),
        "TemplateLocalVersion": _ext(Op.KEEP, "coding resource version"),
    }
)
"""omipacs decisions that take precedence over Table E.1-1, by keyword."""



def _tag(keyword: str) -> BaseTag:
    value = tag_for_keyword(keyword)
    if value is None:
        raise ValueError(f"unknown DICOM keyword {keyword!r} in the de-identification profile")
    return Tag(value)


_OVERRIDE_TAGS: Final[Mapping[BaseTag, Rule]] = MappingProxyType(
    {_tag(k): r for k, r in OVERRIDES.items()}
)


@dataclass(frozen=True)
class SafePrivate:
    """One private element known to be safe (Retain Safe Private Option, E.3.10)."""

    creator: str
    """The Private Creator value that reserves the block, compared after stripping."""
    group: int
    """The odd group number."""
    element: int
    """The element offset within the block, 0x00 to 0xFF."""


@dataclass(frozen=True)
class Profile:
    """A resolved profile: Table E.1-1 plus options, overrides and the fallback.

    Parameters
    ----------
    options
        Options to apply, a subset of :data:`SUPPORTED_OPTIONS`. The archive uses all of
        them (:data:`OMIPACS_OPTIONS`); fewer is allowed for tests and exports.
    safe_private
        Private elements to keep. Empty by default: omipacs keeps no private element
        until a vendor's element has been reviewed and agreed.
    """

    options: frozenset[Option] = OMIPACS_OPTIONS
    safe_private: frozenset[SafePrivate] = frozenset()
    _cache: dict[tuple[int, str], Rule] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        unsupported = self.options - SUPPORTED_OPTIONS
        if unsupported:
            names = ", ".join(sorted(o.value for o in unsupported))
            raise ValueError(f"de-identification options not supported: {names}")

    # -- Table E.1-1 -------------------------------------------------------------------

    def resolve(self, row: AnnexERow) -> tuple[str, Option | None]:
        """The action code that applies to ``row`` and the option it came from, if any."""
        for option in _OPTION_ORDER:
            if option in self.options and option.value in row.options:
                return row.options[option.value], option
        return row.basic, None

    def _table_rule(self, row: AnnexERow, vr: str, keyword: str) -> Rule:
        code, option = self.resolve(row)
        source = f"E.1-1 {row.basic}" + (f", {option.value}:{code}" if option else "")
        if vr == "UI" and code[0] not in "XZ":
            # K, D, C or U on a UID: a consistent replacement, as Retain UIDs is not used.
            return Rule(Op.KEEP if is_class_uid_keyword(keyword) else Op.REMAP_UID, source)
        if option is Option.RETAIN_MODIFIED_DATES:
            return Rule(Op.SHIFT_DATE if vr in DATE_VRS else Op.REMOVE, source)
        if option is Option.RETAIN_DEVICE_IDENTITY:
            if vr == "SQ":
                return Rule(Op.RECURSE, source)
            return Rule(Op.HASH_DEVICE if vr in TEXT_VRS else Op.KEEP, source)
        if code == "K":
            return Rule(Op.RECURSE if vr == "SQ" else Op.KEEP, source)
        if code == "C":
            if vr == "SQ":
                return Rule(Op.RECURSE, source)
            return Rule(Op.CLEAN, source, _basic_op(row.basic, vr))
        return Rule(_basic_op(code, vr), source)

    # -- lookup ------------------------------------------------------------------------

    def rule_for(self, tag: int, vr: str) -> Rule:
        """The rule for a public (even group) element with value representation ``vr``."""
        key = (int(tag), vr)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._rule_for(Tag(tag), vr)
        return cached

    def _rule_for(self, tag: BaseTag, vr: str) -> Rule:
        if tag.is_private:
            return Rule(Op.REMOVE, "private; use private_rule()")
        keyword = keyword_for_tag(tag)
        override = _OVERRIDE_TAGS.get(tag)
        if override is not None:
            return override
        group_rule = _group_rule(tag)
        if group_rule is not None:
            return group_rule
        if (vr == "SQ") != (_dictionary_vr(tag, "UN") == "SQ") and keyword:
            return Rule(Op.REMOVE, "sequence and non-sequence VRs disagree (malformed)")
        row = TABLE_E1_1.get(tag)
        if row is not None:
            return self._table_rule(row, _dictionary_vr(tag, vr), keyword)
        if keyword in TECHNICAL_KEEP:
            return Rule(Op.KEEP, "omipacs: technical attribute")
        if keyword in TECHNICAL_CHECKED:
            return Rule(Op.CLEAN, "omipacs: technical wording", Op.REMOVE, technical=True)
        if not keyword:
            return Rule(Op.REMOVE, "public element unknown to the data dictionary")
        return self._vr_rule(keyword, _dictionary_vr(tag, vr))

    def _vr_rule(self, keyword: str, vr: str) -> Rule:
        source = f"VR {vr}"
        if vr == "UI":
            return Rule(Op.KEEP if is_class_uid_keyword(keyword) else Op.REMAP_UID, source)
        if vr in DATE_VRS:
            dates = Option.RETAIN_MODIFIED_DATES in self.options
            return Rule(Op.SHIFT_DATE if dates else Op.REMOVE, source)
        if vr == "SQ":
            return Rule(Op.RECURSE, source)
        if vr in KEPT_VRS:
            return Rule(Op.KEEP, source)
        return Rule(Op.REMOVE, source)

    def private_rule(self, tag: int, creator: str | None) -> Rule:
        """The rule for a private data element whose block is reserved by ``creator``.

        Private creator elements themselves are kept by the engine only when one of
        their block's elements is kept.
        """
        t = Tag(tag)
        if creator is not None and self.safe_private:
            entry = SafePrivate(creator.strip(), t.group, t.element & 0xFF)
            if t.element >= 0x1000 and entry in self.safe_private:
                return Rule(Op.KEEP, "safe private (113111)")
        return Rule(Op.REMOVE, "E.1-1 private attributes X")

    # -- marking -----------------------------------------------------------------------

    def method_codes(self, *, retained_private: bool) -> tuple[Option, ...]:
        """CID 7050 codes for (0012,0064): what was actually done to the instance.

        113100, the options applied as the standard defines them, and 113111 if a safe
        private element was kept. Retain Device Identity (113109) is *not* claimed even
        though its column of Table E.1-1 selects the attributes concerned: those
        attributes are not retained but replaced by keyed pseudonyms
        (:attr:`Op.HASH_DEVICE`), a consistent dummy of the kind E.1.1 allows, and only
        make, model and software versions, which the Basic Profile keeps anyway, are
        kept verbatim. The De-identification Method text says so.
        """
        used = set(self.options) - CLAIMED_ELSEWHERE
        if retained_private:
            used.add(Option.RETAIN_SAFE_PRIVATE)
        return (Option.BASIC, *sorted(used, key=lambda o: o.value))


def _dictionary_vr(tag: BaseTag, vr: str) -> str:
    """The dictionary VR when the element's own is unknown or ambiguous."""
    if vr not in ("UN", "") and " or " not in vr:
        return vr
    try:
        return dictionary_VR(tag)
    except KeyError:
        return vr


def _basic_op(code: str, vr: str) -> Op:
    """Resolve a Basic Profile code without IOD knowledge (PS3.15 E.1.1).

    Combined codes take their first, most protective, action unless an override says the
    attribute is required: ``X/Z``, ``X/D`` and ``X/Z/D`` remove, ``Z/D`` empties.
    ``X/Z/U*`` keeps reference sequences and remaps the UIDs inside, since presentation
    states, SRs and derived images need their references. ``D`` on a sequence cleans it
    item by item (E.1.1: "Cleaning a sequence ... recursively applying the profile").
    """
    if code == "X/Z/U*":
        return Op.RECURSE if vr == "SQ" else Op.REMOVE
    first = code.split("/")[0]
    if first == "X":
        return Op.REMOVE
    if first == "Z":
        return Op.EMPTY
    if first == "U":
        return Op.REMAP_UID
    if first == "D":
        if vr == "SQ":
            return Op.RECURSE
        if vr in DATE_VRS:
            return Op.SHIFT_DATE
        return Op.DUMMY
    if first == "K":
        return Op.RECURSE if vr == "SQ" else Op.KEEP
    return Op.REMOVE


def _group_rule(tag: BaseTag) -> Rule | None:
    group, element = tag.group, tag.element
    if element == 0x0000:
        return Rule(Op.REMOVE, "group length (recomputed on write)")
    if group in (0x0000, 0x0002, 0x0004, 0x0006):
        return Rule(Op.REMOVE, "command, file meta or directory element inside a data set")
    if 0x5000 <= group <= 0x501E and group % 2 == 0:
        return Rule(Op.REMOVE, "E.1-1 curve data (50xx,xxxx) X")
    if 0x6000 <= group <= 0x601E and group % 2 == 0:
        return Rule(Op.REMOVE, "E.1-1 overlay data/comments (60xx,3000/4000) X; whole group")
    if group in (0x1000, 0x1010) or 0x7F00 <= group <= 0x7F1E:
        return Rule(Op.REMOVE, "retired repeating group")
    return None


DEFAULT_PROFILE: Final = Profile()
"""The archive's profile: Basic + 113105, 113107, 113108, 113109; no safe privates."""
