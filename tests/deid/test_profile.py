"""The profile as data: Table E.1-1 resolved per option, overrides, group rules, fallback."""

from __future__ import annotations

import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.sr.codedict import codes
from pydicom.tag import Tag

from omipacs.deid.annex_e import OPTION_COLUMNS, TABLE_E1_1
from omipacs.deid.profile import (
    DEFAULT_PROFILE,
    OVERRIDES,
    SUPPORTED_OPTIONS,
    TECHNICAL_KEEP,
    Op,
    Option,
    Profile,
    SafePrivate,
    is_class_uid_keyword,
)


def rule(keyword: str, profile: Profile = DEFAULT_PROFILE) -> tuple[Op, Op]:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    found = profile.rule_for(tag, dictionary_VR(tag))
    return found.op, found.fallback


T9_TAGS = [
    0x00100010, 0x00100020, 0x00100021, 0x00100030, 0x00101000, 0x00101001, 0x00101002,
    0x00101040, 0x00101060, 0x00101090, 0x00102154, 0x00104000,
    0x00080050, 0x00080080, 0x00080081, 0x00080090, 0x00080092, 0x00080094, 0x00081010,
    0x00081040, 0x00081048, 0x00081050, 0x00081060, 0x00081070,
    0x00181000, 0x00200010, 0x00204000, 0x00321032, 0x00380010, 0x00380300,
    0x00400009, 0x00400253, 0x00400275, 0x00401001, 0x0040A075, 0x0040A123, 0x0040A160,
    0x00700084, 0xFFFAFFFA,
]
"""Every standard attribute the de-identification tests plant a canary in."""


@pytest.mark.parametrize("tag", T9_TAGS, ids=lambda t: f"{t:08X}")
def test_every_t9_attribute_is_protected(tag: int) -> None:
    found = DEFAULT_PROFILE.rule_for(tag, dictionary_VR(tag))
    assert found.op not in (Op.KEEP, Op.SHIFT_DATE, Op.REMAP_UID)
    if found.op is Op.CLEAN:
        assert found.fallback in (Op.REMOVE, Op.EMPTY, Op.DUMMY)
    if found.op is Op.RECURSE:  # a cleaned sequence: its contents are protected in turn
        assert Tag(tag) == Tag(0x00400275)
    assert Tag(tag) in TABLE_E1_1 or Tag(tag).group == 0x0040  # TextValue is an override


@pytest.mark.parametrize(
    ("keyword", "op", "fallback"),
    [
        # pseudonyms and Basic Profile replacements
        ("PatientName", Op.PSEUDONYM, Op.REMOVE),
        ("PatientID", Op.PSEUDONYM, Op.REMOVE),
        ("PatientBirthDate", Op.EMPTY, Op.REMOVE),
        ("PatientBirthTime", Op.REMOVE, Op.REMOVE),
        ("AccessionNumber", Op.EMPTY, Op.REMOVE),
        ("ReferringPhysicianName", Op.EMPTY, Op.REMOVE),
        ("StudyID", Op.EMPTY, Op.REMOVE),
        ("InstitutionName", Op.REMOVE, Op.REMOVE),
        ("OperatorsName", Op.REMOVE, Op.REMOVE),
        ("OtherPatientIDsSequence", Op.REMOVE, Op.REMOVE),
        ("IssuerOfPatientID", Op.REMOVE, Op.REMOVE),
        ("VerifyingObserverName", Op.DUMMY, Op.REMOVE),
        ("PersonName", Op.DUMMY, Op.REMOVE),
        ("ContentCreatorName", Op.EMPTY, Op.REMOVE),
        ("DigitalSignaturesSequence", Op.REMOVE, Op.REMOVE),
        ("DataSetTrailingPadding", Op.REMOVE, Op.REMOVE),
        ("OriginalAttributesSequence", Op.REMOVE, Op.REMOVE),
        ("ReferencedStudySequence", Op.REMOVE, Op.REMOVE),
        ("ReferencedPatientSequence", Op.REMOVE, Op.REMOVE),
        # 113107 modified dates, VR rule for unlisted dates
        ("StudyDate", Op.SHIFT_DATE, Op.REMOVE),
        ("AcquisitionDateTime", Op.SHIFT_DATE, Op.REMOVE),
        ("StudyTime", Op.SHIFT_DATE, Op.REMOVE),
        ("InstanceCreationDate", Op.SHIFT_DATE, Op.REMOVE),
        ("VerificationDateTime", Op.SHIFT_DATE, Op.REMOVE),
        ("TimezoneOffsetFromUTC", Op.REMOVE, Op.REMOVE),
        ("ContextGroupVersion", Op.KEEP, Op.REMOVE),
        # 113108 patient characteristics
        ("PatientAge", Op.KEEP, Op.REMOVE),
        ("PatientSex", Op.KEEP, Op.REMOVE),
        ("EthnicGroup", Op.KEEP, Op.REMOVE),
        ("PatientWeight", Op.KEEP, Op.REMOVE),
        ("Allergies", Op.CLEAN, Op.REMOVE),
        # 113109 device identity
        ("Manufacturer", Op.KEEP, Op.REMOVE),
        ("ManufacturerModelName", Op.KEEP, Op.REMOVE),
        ("SoftwareVersions", Op.KEEP, Op.REMOVE),
        ("DeviceSerialNumber", Op.HASH_DEVICE, Op.REMOVE),
        ("DetectorID", Op.HASH_DEVICE, Op.REMOVE),
        ("StationName", Op.HASH_DEVICE, Op.REMOVE),
        ("PerformedStationAETitle", Op.HASH_DEVICE, Op.REMOVE),
        ("DeviceUID", Op.REMAP_UID, Op.REMOVE),
        ("ManufacturerDeviceClassUID", Op.KEEP, Op.REMOVE),
        ("UDISequence", Op.RECURSE, Op.REMOVE),
        ("PerformedStationGeographicLocationCodeSequence", Op.REMOVE, Op.REMOVE),
        # 113105 clean descriptors
        ("StudyDescription", Op.CLEAN, Op.REMOVE),
        ("SeriesDescription", Op.CLEAN, Op.REMOVE),
        ("ImageComments", Op.CLEAN, Op.REMOVE),
        ("ProtocolName", Op.CLEAN, Op.REMOVE),
        ("ContrastBolusAgent", Op.CLEAN, Op.EMPTY),
        ("TextValue", Op.CLEAN, Op.DUMMY),
        ("UnformattedTextValue", Op.CLEAN, Op.DUMMY),
        ("ContentDescription", Op.CLEAN, Op.EMPTY),
        ("RequestAttributesSequence", Op.RECURSE, Op.REMOVE),
        # sequences kept and cleaned
        ("ContentSequence", Op.RECURSE, Op.REMOVE),
        ("ReferencedImageSequence", Op.RECURSE, Op.REMOVE),
        ("SourceImageSequence", Op.RECURSE, Op.REMOVE),
        ("VerifyingObserverSequence", Op.RECURSE, Op.REMOVE),
        ("VerifyingObserverIdentificationCodeSequence", Op.EMPTY, Op.REMOVE),
        ("GraphicAnnotationSequence", Op.RECURSE, Op.REMOVE),
        ("CurrentRequestedProcedureEvidenceSequence", Op.RECURSE, Op.REMOVE),
        ("PerFrameFunctionalGroupsSequence", Op.RECURSE, Op.REMOVE),
        ("AcquisitionContextSequence", Op.EMPTY, Op.REMOVE),
        # UIDs
        ("SOPInstanceUID", Op.REMAP_UID, Op.REMOVE),
        ("StudyInstanceUID", Op.REMAP_UID, Op.REMOVE),
        ("FrameOfReferenceUID", Op.REMAP_UID, Op.REMOVE),
        ("IrradiationEventUID", Op.REMAP_UID, Op.REMOVE),
        ("ReferencedSOPInstanceUID", Op.REMAP_UID, Op.REMOVE),
        ("DimensionOrganizationUID", Op.REMAP_UID, Op.REMOVE),
        ("UID", Op.REMAP_UID, Op.REMOVE),
        ("SOPClassUID", Op.KEEP, Op.REMOVE),
        ("ReferencedSOPClassUID", Op.KEEP, Op.REMOVE),
        ("RelatedGeneralSOPClassUID", Op.KEEP, Op.REMOVE),
        ("ReferencedSOPClassUIDInFile", Op.REMOVE, Op.REMOVE),  # directory group 0004
        ("AffectedSOPInstanceUID", Op.REMOVE, Op.REMOVE),  # command group 0000
        ("CodingSchemeUID", Op.KEEP, Op.REMOVE),
        # VR fallback
        ("RetrieveAETitle", Op.REMOVE, Op.REMOVE),
        ("RetrieveURL", Op.REMOVE, Op.REMOVE),
        ("PatientSpeciesDescription", Op.REMOVE, Op.REMOVE),
        ("ExposureControlModeDescription", Op.REMOVE, Op.REMOVE),
        ("ViewPosition", Op.KEEP, Op.REMOVE),
        ("ImageLaterality", Op.KEEP, Op.REMOVE),
        ("KVP", Op.KEEP, Op.REMOVE),
        ("Rows", Op.KEEP, Op.REMOVE),
        ("PixelData", Op.KEEP, Op.REMOVE),
        ("CodeMeaning", Op.KEEP, Op.REMOVE),
        ("RescaleType", Op.CLEAN, Op.REMOVE),
        ("ContentLabel", Op.CLEAN, Op.DUMMY),
        ("GraphicLayer", Op.CLEAN, Op.HASH_DEVICE),
        ("ViewCodeSequence", Op.RECURSE, Op.REMOVE),
        ("EncapsulatedDocument", Op.REMOVE, Op.REMOVE),
        # marking attributes are rewritten, never copied
        ("PatientIdentityRemoved", Op.REMOVE, Op.REMOVE),
        ("DeidentificationMethodCodeSequence", Op.REMOVE, Op.REMOVE),
    ],
)
def test_resolution(keyword: str, op: Op, fallback: Op) -> None:
    assert rule(keyword) == (op, fallback)


@pytest.mark.parametrize(
    ("tag", "vr"),
    [
        (0x60003000, "OW"), (0x60004000, "LT"), (0x60000022, "LO"), (0x601E0010, "US"),
        (0x50003000, "OW"), (0x501E0005, "US"),
        (0x00080000, "UL"), (0x00020016, "AE"), (0x00001000, "UI"), (0x00041500, "CS"),
        (0x7F000010, "OW"),
    ],
)
def test_group_rules_remove(tag: int, vr: str) -> None:
    assert DEFAULT_PROFILE.rule_for(tag, vr).op is Op.REMOVE


def test_private_elements_are_removed_by_default() -> None:
    assert DEFAULT_PROFILE.private_rule(0x00091001, "ACME").op is Op.REMOVE
    assert DEFAULT_PROFILE.private_rule(0x00091001, None).op is Op.REMOVE


def test_safe_private_list() -> None:
    profile = Profile(safe_private=frozenset({SafePrivate("ACME", 0x0009, 0x01)}))
    assert profile.private_rule(0x00091001, " ACME ").op is Op.KEEP
    assert profile.private_rule(0x00092001, "ACME").op is Op.KEEP  # any block number
    assert profile.private_rule(0x00091002, "ACME").op is Op.REMOVE
    assert profile.private_rule(0x00091001, "OTHER").op is Op.REMOVE
    assert profile.private_rule(0x00091001, None).op is Op.REMOVE


def test_options_change_the_resolution() -> None:
    basic = Profile(options=frozenset())
    assert rule("StudyDate", basic)[0] is Op.EMPTY
    assert rule("AcquisitionDate", basic)[0] is Op.REMOVE
    assert rule("InstanceCreationDate", basic)[0] is Op.REMOVE
    assert rule("PatientAge", basic)[0] is Op.REMOVE
    assert rule("DeviceSerialNumber", basic)[0] is Op.REMOVE
    assert rule("SeriesDescription", basic)[0] is Op.REMOVE
    assert rule("RequestAttributesSequence", basic)[0] is Op.REMOVE


def test_option_columns_never_disagree() -> None:
    for row in TABLE_E1_1.values():
        used = {row.options[c] for c in OPTION_COLUMNS if c in row.options}
        assert len(used) <= 1, row


def test_overrides_and_keep_list_name_real_attributes() -> None:
    for keyword in [*OVERRIDES, *TECHNICAL_KEEP]:
        assert tag_for_keyword(keyword) is not None, keyword


def test_no_keep_listed_attribute_is_in_table_e1_1() -> None:
    for keyword in TECHNICAL_KEEP:
        assert Tag(tag_for_keyword(keyword)) not in TABLE_E1_1, keyword  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [("SOPClassUID", True), ("ReferencedSOPClassUIDInFile", True), ("TransferSyntaxUID", True),
     ("EncryptedContentTransferSyntaxUID", True), ("CodingSchemeUID", True),
     ("SOPInstanceUID", False), ("FrameOfReferenceUID", False), ("UID", False)],
)
def test_class_uid_keywords(keyword: str, expected: bool) -> None:
    assert is_class_uid_keyword(keyword) is expected


def test_method_codes() -> None:
    assert [o.value for o in DEFAULT_PROFILE.method_codes(retained_private=False)] == [
        "113100", "113105", "113107", "113108"]  # 113109: devices are hashed, not retained
    assert Option.RETAIN_DEVICE_IDENTITY in DEFAULT_PROFILE.options  # still selects rows
    assert Option.RETAIN_SAFE_PRIVATE in DEFAULT_PROFILE.method_codes(retained_private=True)
    assert Option.CLEAN_PIXEL_DATA not in DEFAULT_PROFILE.method_codes(retained_private=True)


@pytest.mark.parametrize("option", list(Option))
def test_option_codes_come_from_cid_7050(option: Option) -> None:
    code = option.code
    assert code.value == option.value and code.scheme_designator == "DCM"
    assert code.meaning in {c.meaning for c in codes.cid7050.concepts.values()}


def test_unsupported_options_are_refused() -> None:
    with pytest.raises(ValueError, match="113110"):
        Profile(options=frozenset({Option.RETAIN_UIDS}))
    assert Profile(options=SUPPORTED_OPTIONS) == DEFAULT_PROFILE
