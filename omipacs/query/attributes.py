"""The attributes QIDO-RS can match and return, and where the index keeps each one.

Every entry names a DICOM attribute (keyword, tag, VR), the information-model level it
belongs to (PS3.4 C.6.1 Patient Root; every patient attribute is also usable at the
levels below, which is how the Study Root model and QIDO-RS see them) and
the index column that holds its value, or how it is computed from lower levels
(ModalitiesInStudy, the Number of ... Related ... counts, PS3.4 C.6.1.1.2-C.6.1.1.4).
Nothing is read from files: what is not in :mod:`omipacs.index.models` cannot be
searched or returned.

Two columns hold one attribute under two names: ImageLaterality (0020,0062) and, for
tomosynthesis, FrameLaterality (0020,9072) are both ``instance.laterality``
(docs/data-model.md, "Mammography attributes"). The View Code Sequence is searchable by path
(``ViewCodeSequence.CodeValue`` or ``00540220.00080100``, as PS3.18 §8.3.4.1 writes
sequence matching keys) and by the shorter alias ``ViewCode``.

Lower-level attributes may be used at a higher level (``/studies?Modality=MG``,
``/series?ImageLaterality=L``): a study or series matches when any of its series or
instances does, and the value returned is the set of distinct values below it. This is
what OHIF relies on when it asks for Modality at study level. The unique keys of lower
levels (SeriesInstanceUID at study level, ...) are the exception: they are used only at
their own level or below, so a study query never lists every instance UID.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydicom.datadict import keyword_for_tag, tag_for_keyword

from omipacs.index.models import Instance, Patient, Series, Study

Level = Literal["patient", "study", "series", "instance"]
#: The levels QIDO-RS searches (PS3.18 has no patient resource).
LEVELS: tuple[Level, ...] = ("study", "series", "instance")
#: Every level of the information model; C-FIND's Patient Root starts at the patient.
ALL_LEVELS: tuple[Level, ...] = ("patient", *LEVELS)

_RANK: Mapping[str, int] = {"patient": -1, "study": 0, "series": 1, "instance": 2}
_TABLE_LEVEL: Mapping[str, Level] = {
    "patient": "patient",
    "study": "study",
    "series": "series",
    "instance": "instance",
}


def rank(level: Level) -> int:
    """Depth of a level: patient -1, study 0, series 1, instance 2."""
    return _RANK[level]


def shallower(a: Level, b: Level) -> Level:
    """The higher (closer to the study) of two levels."""
    return a if rank(a) <= rank(b) else b


@dataclass(frozen=True, eq=False)
class Attribute:
    """One searchable or returnable attribute and its place in the index.

    Attributes
    ----------
    keyword, tag, vr
        As in PS3.6.
    level
        The Study Root level the attribute belongs to.
    column
        The index column holding the value (``None`` for counts and constants). When the
        column lives below ``level`` (ModalitiesInStudy is ``series.modality``), the
        value is the set of distinct values under the row.
    search_column
        An upper-cased copy of a PN column, so case-insensitive matching uses an index.
    count
        For the Number of ... Related ... attributes: the level whose rows are counted.
    constant
        A fixed value (InstanceAvailability is always ONLINE: nothing is near-line).
    multi
        The column holds several values joined by ``\\`` (ImageType, SoftwareVersions).
    items
        For a sequence: the attributes of its single item.
    matchable
        False for return-only attributes.
    aggregate
        True if the attribute may be used at a level above its own (see module notes).

    Entries are compared by identity: each exists once, in :data:`ATTRIBUTES`.
    """

    keyword: str
    tag: int
    vr: str
    level: Level
    column: Any = None
    search_column: Any = None
    count: Level | None = None
    constant: str | None = None
    multi: bool = False
    items: tuple[Attribute, ...] = ()
    matchable: bool = True
    aggregate: bool = True

    @property
    def key(self) -> str:
        """The tag as DICOM JSON writes it (``"0020000D"``)."""
        return f"{self.tag:08X}"

    @property
    def source(self) -> Level:
        """The level of the table the value is read from (or counted in)."""
        if self.count is not None:
            return self.count
        if self.column is not None:
            return _TABLE_LEVEL[self.column.class_.__tablename__]
        if self.items:
            deepest = max((item.source for item in self.items), key=rank)
            return deepest
        return self.level

    def usable_at(self, level: Level) -> bool:
        """Whether a query at ``level`` may match on (and return) this attribute."""
        return rank(self.level) <= rank(level) or self.aggregate

    def returnable_at(self, level: Level) -> bool:
        """Whether a value can be returned at ``level``: sequences only at their own."""
        return rank(self.level) <= rank(level) or (self.aggregate and self.vr != "SQ")


def _a(keyword: str, vr: str, level: Level, column: Any = None, **kw: Any) -> Attribute:
    tag = tag_for_keyword(keyword)
    if tag is None:  # pragma: no cover - the table below is fixed
        raise ValueError(keyword)
    return Attribute(keyword, tag, vr, level, column, **kw)


_VIEW_MODIFIER = _a(
    "ViewModifierCodeSequence",
    "SQ",
    "instance",
    items=(_a("CodeValue", "SH", "instance", Instance.view_modifier_codes),),
)

#: Every attribute the index can match or return, study level first.
ATTRIBUTES: tuple[Attribute, ...] = (
    # Patient level (study attributes in the Study Root model, PS3.4 C.6.2.1.1)
    _a(
        "PatientName",
        "PN",
        "patient",
        Patient.patient_name,
        search_column=Patient.patient_name_search,
    ),
    _a("PatientID", "LO", "patient", Patient.patient_id),
    _a("IssuerOfPatientID", "LO", "patient", Patient.issuer),
    _a("PatientBirthDate", "DA", "patient", Patient.birth_date),
    _a("PatientSex", "CS", "patient", Patient.sex),
    # Study level
    _a("PatientAge", "AS", "study", Study.patient_age),
    _a("StudyInstanceUID", "UI", "study", Study.study_instance_uid, aggregate=False),
    _a("StudyDate", "DA", "study", Study.study_date),
    _a("StudyTime", "TM", "study", Study.study_time),
    _a("AccessionNumber", "SH", "study", Study.accession_number),
    _a("StudyID", "SH", "study", Study.study_id),
    _a("StudyDescription", "LO", "study", Study.study_description),
    _a("ReferringPhysicianName", "PN", "study", Study.referring_physician_name),
    _a("ModalitiesInStudy", "CS", "study", Series.modality),
    _a("SOPClassesInStudy", "UI", "study", Instance.sop_class_uid),
    _a("NumberOfStudyRelatedSeries", "IS", "study", count="series", aggregate=False),
    _a("NumberOfStudyRelatedInstances", "IS", "study", count="instance", aggregate=False),
    _a("InstanceAvailability", "CS", "study", constant="ONLINE", matchable=False),
    # Series level
    _a("SeriesInstanceUID", "UI", "series", Series.series_instance_uid, aggregate=False),
    _a("Modality", "CS", "series", Series.modality),
    _a("SeriesNumber", "IS", "series", Series.series_number),
    _a("SeriesDescription", "LO", "series", Series.series_description),
    _a("SeriesDate", "DA", "series", Series.series_date),
    _a("BodyPartExamined", "CS", "series", Series.body_part_examined),
    _a("PresentationIntentType", "CS", "series", Series.presentation_intent_type),
    _a("NumberOfSeriesRelatedInstances", "IS", "series", count="instance", aggregate=False),
    # Instance level
    _a("SOPInstanceUID", "UI", "instance", Instance.sop_instance_uid, aggregate=False),
    _a("SOPClassUID", "UI", "instance", Instance.sop_class_uid),
    _a("AvailableTransferSyntaxUID", "UI", "instance", Instance.transfer_syntax_uid),
    _a("InstanceNumber", "IS", "instance", Instance.instance_number),
    _a("Rows", "US", "instance", Instance.rows),
    _a("Columns", "US", "instance", Instance.columns),
    _a("NumberOfFrames", "IS", "instance", Instance.number_of_frames),
    _a("BitsAllocated", "US", "instance", Instance.bits_allocated),
    _a("BitsStored", "US", "instance", Instance.bits_stored),
    _a("PhotometricInterpretation", "CS", "instance", Instance.photometric_interpretation),
    _a("ImageLaterality", "CS", "instance", Instance.laterality),
    _a("FrameLaterality", "CS", "instance", Instance.laterality),
    _a("ViewPosition", "CS", "instance", Instance.view_position),
    _a(
        "ViewCodeSequence",
        "SQ",
        "instance",
        items=(
            _a("CodeValue", "SH", "instance", Instance.view_code),
            _a("CodeMeaning", "LO", "instance", Instance.view_code_meaning),
            _VIEW_MODIFIER,
        ),
    ),
    _a("ImageType", "CS", "instance", Instance.image_type, multi=True),
    _a("Manufacturer", "LO", "instance", Instance.manufacturer),
    _a("ManufacturerModelName", "LO", "instance", Instance.manufacturer_model_name),
    _a("SoftwareVersions", "LO", "instance", Instance.software_versions, multi=True),
    _a("BodyPartThickness", "DS", "instance", Instance.body_part_thickness),
    _a("CompressionForce", "DS", "instance", Instance.compression_force),
    _a("KVP", "DS", "instance", Instance.kvp),
    _a("OrganDose", "DS", "instance", Instance.organ_dose),
    _a("BreastImplantPresent", "CS", "instance", Instance.breast_implant_present),
    _a(
        "ImagerPixelSpacing",
        "DS",
        "instance",
        Instance.imager_pixel_spacing,
        multi=True,
        matchable=False,
    ),
    _a("VOILUTFunction", "CS", "instance", Instance.voi_lut_function),
    _a("BurnedInAnnotation", "CS", "instance", Instance.burned_in_annotation),
    _a("PatientIdentityRemoved", "CS", "instance", Instance.patient_identity_removed),
    _a("FrameOfReferenceUID", "UI", "instance", Instance.frame_of_reference_uid),
    _a("ContentDate", "DA", "instance", Instance.content_date),
)

BY_KEYWORD: Mapping[str, Attribute] = {a.keyword: a for a in ATTRIBUTES}
BY_TAG: Mapping[int, Attribute] = {a.tag: a for a in ATTRIBUTES}

#: Shorter names for sequence paths (not DICOM keywords, so they cannot clash).
ALIASES: Mapping[str, str] = {"ViewCode": "ViewCodeSequence.CodeValue"}

#: Default return attributes, PS3.18 Tables 10.6.3-3 to 10.6.3-5 (Retrieve URL is left
#: to the web layer, which knows the public base URL). Series results always carry the
#: StudyInstanceUID and instance results both parent UIDs: OHIF needs them.
DEFAULTS: Mapping[Level, tuple[str, ...]] = {
    "study": (
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyID",
        "StudyDescription",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    "series": (
        "Modality",
        "SeriesDescription",
        "SeriesNumber",
        "SeriesInstanceUID",
        "NumberOfSeriesRelatedInstances",
        "StudyInstanceUID",
    ),
    "instance": (
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceAvailability",
        "Rows",
        "Columns",
        "BitsAllocated",
        "NumberOfFrames",
        "InstanceNumber",
        "SeriesInstanceUID",
        "StudyInstanceUID",
    ),
}

_KEYWORD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_TAG_RE = re.compile(r"^[0-9A-Fa-f]{8}$")
MAX_PATH_DEPTH = 4


class UnknownAttribute(LookupError):
    """A well-formed name that is not an attribute the index holds.

    ``dicom`` tells whether the name is at least a DICOM attribute (a keyword of the
    data dictionary, or any tag): ``includefield`` ignores those, as the archive simply
    has no value for them, while a name that is not DICOM at all is a client error.
    """

    def __init__(self, name: str, *, dicom: bool) -> None:
        super().__init__(name)
        self.name = name
        self.dicom = dicom


def is_well_formed(name: str) -> bool:
    """True if ``name`` is a keyword, a tag or a dotted path of them."""
    parts = name.split(".")
    return 0 < len(parts) <= MAX_PATH_DEPTH and all(
        _KEYWORD_RE.match(p) or _TAG_RE.match(p) for p in parts
    )


def _component(
    part: str, scope: Mapping[str, Attribute], by_tag: Mapping[int, Attribute]
) -> Attribute | None:
    if _TAG_RE.match(part):
        return by_tag.get(int(part, 16))
    return scope.get(part)


def _is_dicom(part: str) -> bool:
    if _TAG_RE.match(part):
        return True
    tag = tag_for_keyword(part)
    return tag is not None and keyword_for_tag(tag) == part


def resolve(name: str) -> tuple[Attribute, ...]:
    """The attribute path a parameter name designates, top-level attribute first.

    Accepts a keyword (``PatientID``), a tag (``00100020``), an alias (``ViewCode``) or
    a dotted sequence path (``ViewCodeSequence.CodeValue``, ``00540220.00080100``).

    Raises
    ------
    UnknownAttribute
        If ``name`` is well formed but names nothing the index holds.
    ValueError
        If ``name`` is not a keyword, tag or path at all.
    """
    name = ALIASES.get(name, name)
    if not is_well_formed(name):
        raise ValueError("not an attribute keyword, tag or sequence path")
    parts = name.split(".")
    path: list[Attribute] = []
    scope: Mapping[str, Attribute] = BY_KEYWORD
    by_tag: Mapping[int, Attribute] = BY_TAG
    for part in parts:
        found = _component(part, scope, by_tag)
        if found is None:
            raise UnknownAttribute(name, dicom=all(_is_dicom(p) for p in parts))
        path.append(found)
        scope = {item.keyword: item for item in found.items}
        by_tag = {item.tag: item for item in found.items}
    return tuple(path)


def leaves(attribute: Attribute) -> tuple[tuple[Attribute, ...], ...]:
    """Paths from ``attribute`` down to every stored column under it (itself if simple)."""
    if not attribute.items:
        return ((attribute,),)
    return tuple((attribute, *p) for item in attribute.items for p in leaves(item))
