"""The engine on the T9 corpus: canaries, MIDI-B score, longitudinal invariants, quarantine."""

from __future__ import annotations

import copy
import io
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread, dcmwrite
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.tag import Tag

from omipacs.config import BurnedInAllow, Settings, StorageSettings
from omipacs.deid.engine import (
    IMPLEMENTATION_CLASS_UID,
    MAX_DEPTH,
    Deidentifier,
    DeidResult,
    quarantine_reason,
)
from omipacs.deid.identity import IdentityMap
from omipacs.deid.keys import DeidKeys
from omipacs.deid.pixels import overlay_plan
from omipacs.deid.profile import Option, Profile, SafePrivate
from omipacs.deid.pseudonyms import aggregate_age, remap_uid
from omipacs.errors import ConfigurationError, InvalidInstance

from .corpus import (
    BTO,
    MG,
    PATIENTS,
    SC,
    SR,
    VENDORS,
    Instance,
    Study,
    UidSource,
    build_corpus,
    make_mg,
    make_sc,
)
from .midi import MISSING_CONTAINER, Scorer, leaves, phi_hits, resolve, text_of

KEYS = DeidKeys.from_secret(bytes(range(1, 33)))
HEX = bytes(range(1, 33)).hex()

Processed = list[tuple[Instance, DeidResult]]


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> IdentityMap:
    return IdentityMap(tmp_path_factory.mktemp("identity") / "identity.sqlite")


@pytest.fixture(scope="module")
def processed(identity: IdentityMap) -> Processed:
    engine = Deidentifier(KEYS, identity)
    return [(i, engine.apply(i.dataset, i.meta, site=i.site)) for i in build_corpus()]


def encode(result: DeidResult) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, result.dataset, enforce_file_format=True)
    return buffer.getvalue()


def test_corpus_covers_the_t9_gate(processed: Processed) -> None:
    kinds = {i.kind for i, _ in processed}
    vendors = {str(i.dataset.Manufacturer) for i, _ in processed}
    assert len(processed) >= 50
    assert {"MG", "BTO", "SR"} <= kinds
    assert len(vendors) >= 3


def test_no_canary_survives_in_any_value(processed: Processed) -> None:
    hits = []
    for number, (_, result) in enumerate(processed):
        for source in (result.dataset, result.file_meta):
            for path, elem in leaves(source):
                for token in phi_hits(text_of(elem.value)):
                    hits.append(f"#{number} {path}: {token}")
    assert hits == []


def test_no_canary_original_uid_or_date_in_encoded_bytes(processed: Processed) -> None:
    hits = []
    for number, (instance, result) in enumerate(processed):
        data = encode(result).decode("latin-1").upper()
        originals = [
            text_of(elem.value) for _, elem in leaves(instance.dataset)
            if (elem.VR == "UI" and not text_of(elem.value).startswith("1.2.840.10008."))
            or elem.VR == "DA"
        ]
        originals.append(str(instance.meta.MediaStorageSOPInstanceUID))
        for token in [t.upper() for t in phi_hits(data)] + [o for o in originals if o in data]:
            hits.append(f"#{number}: {token}")
    assert hits == []


def test_midi_b_score_is_100_percent(processed: Processed) -> None:
    scorer = Scorer(KEYS)
    image_uids: dict[str, str] = {}
    for number, (instance, result) in enumerate(processed):
        scorer.score_instance(number, instance, result)
        image_uids[str(instance.dataset.SOPInstanceUID)] = str(result.dataset.SOPInstanceUID)
    scorer.finish(image_uids)
    print(f"\nMIDI-B style score, T9 corpus ({len(processed)} instances)")
    print(scorer.render())
    kinds = {row[0] for row in scorer.table()}
    assert {"text_removed", "date_shifted", "uid_changed", "uid_consistent",
            "patid_consistent", "tag_retained", "text_retained"} <= kinds
    failures = [f"{c.kind} {c.where}: {c.original!r} -> expected {c.expected!r}"
                for c in scorer.failures()]
    assert failures == []
    assert scorer.table()[-1][3] == 100.0


def test_marking_attributes(processed: Processed) -> None:
    ds = processed[0][1].dataset
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert all(0 < len(v) <= 64 for v in ds.DeidentificationMethod)
    items = ds.DeidentificationMethodCodeSequence
    # Device identifiers are pseudonymised, not retained: 113109 is not claimed.
    assert [i.CodeValue for i in items] == ["113100", "113105", "113107", "113108"]
    assert {i.CodingSchemeDesignator for i in items} == {"DCM"}
    assert items[0].CodeMeaning == codes.DCM.BasicApplicationConfidentialityProfile.meaning
    assert items[2].CodeMeaning == (
        codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption.meaning
    )
    # The text says what the codes cannot: how device identity, ages and bits were treated.
    text = list(ds.DeidentificationMethod)
    assert "Device serials, stations, unit IDs: keyed pseudonyms" in text
    assert "Ages over 89 given as 090Y" in text
    assert "Pixel bits outside Bits Stored cleared" in text  # the MG has 12 of 16 bits
    # What the text claims for devices is what was done: a keyed pseudonym, not the serial.
    assert str(ds.DeviceSerialNumber).startswith("DEV") and str(ds.StationName).startswith("DEV")


def test_marking_replaces_an_earlier_de_identification(processed: Processed) -> None:
    instance = processed[0][0]
    ds = copy.deepcopy(instance.dataset)
    ds.PatientIdentityRemoved = "NO"
    ds.DeidentificationMethod = "done by CANARY tool"
    result = Deidentifier(KEYS).apply(ds, instance.meta, site=instance.site)
    assert result.dataset.PatientIdentityRemoved == "YES"
    assert "CANARY" not in str(result.dataset.DeidentificationMethod)


def test_class_uids_and_transfer_syntax_untouched(processed: Processed) -> None:
    for instance, result in processed:
        assert result.dataset.SOPClassUID == instance.dataset.SOPClassUID
        assert result.file_meta.TransferSyntaxUID == instance.meta.TransferSyntaxUID
        assert result.file_meta.MediaStorageSOPClassUID == instance.meta.MediaStorageSOPClassUID
        for path, elem in leaves(instance.dataset):
            if "ClassUID" in elem.keyword:
                found = resolve(result.dataset, path)
                if found is not MISSING_CONTAINER:
                    assert isinstance(found, DataElement) and found.value == elem.value, path


def test_file_meta_is_replaced(processed: Processed) -> None:
    for _, result in processed:
        meta = result.file_meta
        assert meta.MediaStorageSOPInstanceUID == result.dataset.SOPInstanceUID
        assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
        assert "SourceApplicationEntityTitle" not in meta
        assert "SendingApplicationEntityTitle" not in meta
        assert result.dataset.file_meta is meta


def test_encoded_file_round_trips(processed: Processed) -> None:
    instance, result = next(p for p in processed if p[0].kind == "SR")
    back = dcmread(io.BytesIO(encode(result)))
    assert back.SOPInstanceUID == result.dataset.SOPInstanceUID
    assert back.ContentSequence[0].PersonName == "ANONYMOUS"


def test_same_nhs_number_at_two_sites_is_one_client(processed: Processed) -> None:
    p1 = [r.client for i, r in processed if i.patient.key == "p1"]
    sites = {i.site for i, _ in processed if i.patient.key == "p1"}
    assert sites == {"SITE_A", "SITE_B"}
    assert len({c.client_id for c in p1}) == 1
    assert all(c.linked and c.client_id.startswith("OPTM") for c in p1)


def test_clients_differ_between_patients(processed: Processed) -> None:
    ids = {i.patient.key: r.client.client_id for i, r in processed}
    assert len(set(ids.values())) == len(PATIENTS)


def test_without_nhs_number_the_client_is_unlinked_and_stable(processed: Processed) -> None:
    p3 = [r.client for i, r in processed if i.patient.key == "p3"]
    assert len({c.client_id for c in p3}) == 1
    assert not p3[0].linked and p3[0].client_id.startswith("UNLK")


def test_study_intervals_are_exact(processed: Processed) -> None:
    import datetime as dt

    dates: dict[tuple[str, str], set[str]] = defaultdict(set)
    for instance, result in processed:
        if instance.kind == "MG":
            dates[(instance.patient.key, instance.site)].add(str(result.dataset.StudyDate))
    for key, shifted in dates.items():
        first, second = sorted(dt.datetime.strptime(d, "%Y%m%d").date() for d in shifted)
        assert (second - first).days == 1096, key


def test_one_offset_per_client_across_sites(processed: Processed) -> None:
    import datetime as dt

    offsets = set()
    for instance, result in processed:
        if instance.patient.key == "p1" and instance.kind == "MG":
            before = dt.datetime.strptime(instance.study_date, "%Y%m%d").date()
            after = dt.datetime.strptime(str(result.dataset.StudyDate), "%Y%m%d").date()
            offsets.add((after - before).days)
    assert len(offsets) == 1
    assert -4014 <= offsets.pop() <= -365


def test_references_resolve_after_remapping(processed: Processed) -> None:
    new_uid = {str(i.dataset.SOPInstanceUID): str(r.dataset.SOPInstanceUID) for i, r in processed}
    new_study = {str(i.dataset.StudyInstanceUID): str(r.dataset.StudyInstanceUID)
                 for i, r in processed}
    checked = 0
    for instance, result in processed:
        ds = result.dataset
        if instance.kind == "SR":
            evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
            ref = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
            image_item = next(i for i in ds.ContentSequence if i.ValueType == "IMAGE")
            uid_item = next(i for i in ds.ContentSequence if i.ValueType == "UIDREF")
            target = new_uid[instance.references[0]]
            assert ref.ReferencedSOPInstanceUID == target
            assert image_item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == target
            assert evidence.StudyInstanceUID == ds.StudyInstanceUID
            assert uid_item.UID == new_study[str(instance.dataset.StudyInstanceUID)]
            checked += 1
        if instance.kind == "GSPS":
            image = ds.ReferencedSeriesSequence[0].ReferencedImageSequence[0]
            assert image.ReferencedSOPInstanceUID == new_uid[instance.references[0]]
            checked += 1
    assert checked == 2 * sum(i.kind == "SR" for i, _ in processed)


def test_study_series_and_frame_of_reference_are_shared(processed: Processed) -> None:
    by_study: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for instance, result in processed:
        if instance.kind in ("MG", "BTO"):
            key = str(instance.dataset.StudyInstanceUID)
            by_study[key].add((str(result.dataset.StudyInstanceUID),
                               str(result.dataset.FrameOfReferenceUID)))
    assert all(len(v) == 1 for v in by_study.values())


def test_re_sending_gives_identical_output(processed: Processed) -> None:
    instance, first = processed[5]
    again = Deidentifier(KEYS).apply(instance.dataset, instance.meta, site=instance.site)
    assert encode(again) == encode(first)


def test_input_data_set_is_not_modified(processed: Processed) -> None:
    instance = processed[0][0]
    assert str(instance.dataset.PatientName) == PATIENTS[0].name
    assert "DigitalSignaturesSequence" in instance.dataset
    assert instance.meta.SourceApplicationEntityTitle == "CANARYAE"


def test_patient_age_is_computed_when_missing(processed: Processed) -> None:
    for instance, result in processed:
        if instance.patient.key == "p2":
            assert "PatientAge" not in instance.dataset
            assert result.dataset.PatientAge in ("053Y", "056Y")
            assert result.dataset.PatientBirthDate == ""


def test_retained_characteristics_and_device_identity(processed: Processed) -> None:
    instance, result = processed[0]
    ds = result.dataset
    assert (ds.PatientSex, ds.EthnicGroup, ds.PatientWeight) == ("F", "A", 64)
    assert ds.Manufacturer == instance.dataset.Manufacturer
    assert ds.ManufacturerModelName == instance.dataset.ManufacturerModelName
    assert ds.DeviceSerialNumber.startswith("DEV") and len(ds.DeviceSerialNumber) == 15
    others = {str(r.dataset.DeviceSerialNumber) for i, r in processed if i.site == instance.site}
    assert others == {str(ds.DeviceSerialNumber)}


def test_action_counts_are_reported(processed: Processed) -> None:
    counts = processed[0][1].action_counts
    for op in ("remove", "remap_uid", "shift_date", "pseudonym", "recurse", "hash_device"):
        assert counts[op] > 0
    assert counts["meta_removed"] == 3  # implementation UID, source and sending AE


def test_identity_map_records_clients_and_sites(
    processed: Processed, identity: IdentityMap
) -> None:
    assert len(identity) == len(PATIENTS)
    p1 = next(r.client for i, r in processed if i.patient.key == "p1")
    record = identity.lookup(p1.key_hash)
    assert record is not None
    assert record.client_id == p1.client_id and record.linked
    assert record.sites == ("SITE_A", "SITE_B")


def test_site_local_ids_from_two_sites_do_not_merge() -> None:
    ds = Dataset()
    ds.PatientID = "12345"
    engine = Deidentifier(KEYS)
    assert engine.client_for(ds, site="SITE_A") != engine.client_for(ds, site="SITE_B")
    assert engine.client_for(ds, site="SITE_A") == engine.client_for(ds, site="SITE_A")


# -- quarantine -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sop_class", "burned_in", "quarantined"),
    [
        (SC, None, True),
        (SC, "YES", True),
        (SC, "NO", False),
        (SC + ".2", None, True),
        (SC + ".4", "NO", False),
        (MG, "YES", True),
        (MG, None, False),
        (MG, "NO", False),
        (MG, "MAYBE", True),
        (BTO, "Yes", True),
        # Classes beyond SC that carry burned-in text: only an explicit NO is believed.
        ("1.2.840.10008.5.1.4.1.1.77.1.4", None, True),  # VL photographic (XC)
        ("1.2.840.10008.5.1.4.1.1.77.1.4", "NO", False),
        ("1.2.840.10008.5.1.4.1.1.6.1", None, True),  # ultrasound
        ("1.2.840.10008.5.1.4.1.1.6.1", "", True),
        ("1.2.840.10008.5.1.4.1.1.6.1", "NO", False),
        ("1.2.840.10008.5.1.4.1.1.3.1", None, True),  # ultrasound multi-frame
        ("1.2.840.10008.5.1.4.1.1.77.1.1", None, True),  # endoscopy
    ],
)
@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
def test_quarantine_rules(sop_class: str, burned_in: str | None, quarantined: bool) -> None:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    assert (quarantine_reason(ds) is not None) is quarantined


@pytest.mark.parametrize("burned_in", [None, "YES"])
def test_quarantined_secondary_capture_is_still_de_identified(burned_in: str | None) -> None:
    uid = UidSource()
    study = Study(uid(), "20180102", "060Y")
    instance = make_sc(PATIENTS[0], VENDORS[0], study, uid, burned_in)
    result = Deidentifier(KEYS).apply(instance.dataset, instance.meta, site="SITE_A")
    assert result.quarantine_reason is not None and not result.publishable
    assert "CANARY" not in result.quarantine_reason
    assert not phi_hits(encode(result).decode("latin-1"))


def test_clean_secondary_capture_is_published() -> None:
    uid = UidSource()
    instance = make_sc(PATIENTS[0], VENDORS[0], Study(uid(), "20180102", "060Y"), uid, "NO")
    result = Deidentifier(KEYS).apply(instance.dataset, instance.meta, site="SITE_A")
    assert result.publishable and result.quarantine_reason is None


# -- robustness ---------------------------------------------------------------------------


def _nested(depth: int) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = SR
    ds.SOPInstanceUID = "1.2.3.4"
    current = ds
    for _ in range(depth):
        child = Dataset()
        child.ValueType = "CONTAINER"
        current.ContentSequence = Sequence([child])
        current = child
    current.TextValue = "Lesion 1"
    return ds


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_deep_nesting_is_an_invalid_instance(depth: int) -> None:
    with pytest.raises(InvalidInstance):
        Deidentifier(KEYS).apply(_nested(depth))


def test_nesting_up_to_the_limit_is_accepted() -> None:
    result = Deidentifier(KEYS).apply(_nested(MAX_DEPTH - 1))
    item = result.dataset
    for _ in range(MAX_DEPTH - 1):
        item = item.ContentSequence[0]
    assert item.TextValue == "Lesion 1"


def test_header_read_from_a_file_is_handled(tmp_path: Path) -> None:
    uid = UidSource()
    study = Study(uid(), "20190415", "061Y")
    instance = make_mg(PATIENTS[0], VENDORS[0], study, "L CC", uid, uid())
    instance.dataset.file_meta = instance.meta
    path = tmp_path / "in.dcm"
    dcmwrite(path, instance.dataset, enforce_file_format=True)
    header = dcmread(path, stop_before_pixels=True)
    result = Deidentifier(KEYS).apply(header, site="SITE_A")
    assert result.file_meta.MediaStorageSOPInstanceUID == result.dataset.SOPInstanceUID
    assert result.dataset.SOPInstanceUID == remap_uid(KEYS, str(instance.dataset.SOPInstanceUID))
    assert not phi_hits(encode(result).decode("latin-1"))


def test_safe_private_elements_are_kept_and_declared() -> None:
    ds = Dataset()
    ds.SOPClassUID = MG
    ds.SOPInstanceUID = "1.2.3.4"
    block = ds.private_block(0x0019, "ACME MG", create=True)
    block.add_new(0x01, "DS", "42.5")
    block.add_new(0x02, "LO", "secret")
    profile = Profile(safe_private=frozenset({SafePrivate("ACME MG", 0x0019, 0x01)}))
    out = Deidentifier(KEYS, profile=profile).apply(ds).dataset
    assert out[0x00191001].value == "42.5"
    assert out[0x00190010].value == "ACME MG"
    assert 0x00191002 not in out
    codes_used = [i.CodeValue for i in out.DeidentificationMethodCodeSequence]
    assert Option.RETAIN_SAFE_PRIVATE.value in codes_used


def test_basic_profile_without_options_removes_dates_and_devices() -> None:
    uid = UidSource()
    study = Study(uid(), "20190415", "061Y")
    instance = make_mg(PATIENTS[0], VENDORS[0], study, "L CC", uid, uid())
    engine = Deidentifier(KEYS, profile=Profile(options=frozenset()))
    out = engine.apply(instance.dataset, instance.meta, site="SITE_A").dataset
    assert out.StudyDate == ""  # Z
    assert "AcquisitionDate" not in out and "InstanceCreationDate" not in out
    assert "DeviceSerialNumber" not in out and "PatientAge" not in out
    del instance.dataset.PatientAge
    again = engine.apply(instance.dataset, instance.meta, site="SITE_A").dataset
    assert "PatientAge" not in again  # not added back without 113108
    assert "SeriesDescription" not in out  # X without Clean Descriptors
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == ["113100"]


def test_undecodable_elements_are_dropped() -> None:
    ds = Dataset()
    ds.SOPClassUID = MG
    ds.SOPInstanceUID = "1.2.3.4"
    ds[0x00280010] = RawDataElement(Tag(0x00280010), "US", 3, b"\x01\x02\x03", 0, False, True)
    result = Deidentifier(KEYS).apply(ds)
    assert "Rows" not in result.dataset
    assert result.action_counts["unreadable"] == 1


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_unparseable_dates_are_removed() -> None:
    ds = Dataset()
    ds.SOPClassUID = MG
    ds.SOPInstanceUID = "1.2.3.4"
    ds.add_new(0x00080020, "DA", "12/03/2019 CANARY")
    ds.AcquisitionDateTime = "2019041"
    result = Deidentifier(KEYS).apply(ds)
    assert "StudyDate" not in result.dataset and "AcquisitionDateTime" not in result.dataset
    assert result.action_counts["unparseable_date"] == 2


def test_from_settings(tmp_path: Path) -> None:
    settings = Settings(storage=StorageSettings(root=tmp_path))
    with pytest.raises(ConfigurationError):
        Deidentifier.from_settings(settings, environ={})
    engine = Deidentifier.from_settings(settings, environ={"OMIPACS_DEID_KEY": "ab" * 2 + HEX})
    assert engine.identity is not None
    assert engine.identity.url == f"sqlite:///{tmp_path / 'identity.sqlite'}"
    engine.identity.close()


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_values_of_the_wrong_kind_are_removed() -> None:
    ds = Dataset()
    ds.SOPClassUID = MG
    ds.SOPInstanceUID = "1.2.3.4"
    ds.add_new(0x0020000D, "UN", b"1.2.3.99\x00")  # StudyInstanceUID sent as UN bytes
    ds.add_new(0x00181000, "SQ", Sequence([Dataset()]))  # DeviceSerialNumber as a sequence
    out = Deidentifier(KEYS).apply(ds).dataset
    assert "DeviceSerialNumber" not in out
    assert out.StudyInstanceUID == remap_uid(KEYS, "1.2.3.99")  # UN read as UI, remapped


def test_graphic_layers_still_match_after_cleaning(processed: Processed) -> None:
    """A layer named after a person is replaced by a keyed hash, the same everywhere."""
    for instance, result in processed:
        if instance.kind != "GSPS":
            continue
        out = result.dataset
        declared = {item.GraphicLayer for item in out.GraphicLayerSequence}
        used = {item.GraphicLayer for item in out.GraphicAnnotationSequence}
        assert used <= declared and not phi_hits("".join(declared))
        assert out.ContentLabel == "ANONYMIZED"


def test_vocabulary_paired_with_identifiers_is_cleaned(processed: Processed) -> None:
    """SR TEXT, GSPS text, local codes and unknown public elements (issue 14, item 1)."""
    _, sr = next(p for p in processed if p[0].kind == "SR")
    texts = [item.TextValue for item in sr.dataset.ContentSequence if "TextValue" in item]
    assert texts and all(t == "ANONYMIZED" or not phi_hits(t) for t in texts)
    _, mg = next(p for p in processed if p[0].kind == "MG")
    assert Tag(0x00089999) not in mg.dataset and Tag(0x00089998) not in mg.dataset
    assert "DerivationDescription" not in mg.dataset or not phi_hits(
        str(mg.dataset.DerivationDescription))


def test_burned_in_allow_list_by_class_and_manufacturer() -> None:
    us = "1.2.840.10008.5.1.4.1.1.6.1"
    ds = Dataset()
    ds.SOPClassUID = us
    ds.Manufacturer = "Acme Ultrasound"
    allow = [BurnedInAllow(us, "ACME ULTRASOUND")]
    assert quarantine_reason(ds, allow) is None
    assert quarantine_reason(ds, [BurnedInAllow(us, "Other")]) is not None
    assert quarantine_reason(ds, [BurnedInAllow(us)]) is None
    ds.BurnedInAnnotation = "YES"
    assert quarantine_reason(ds, allow) is not None  # YES is never allowed


def _overlay_header(bits_allocated: int, bits_stored: int, signed: bool = False) -> Dataset:
    ds = Dataset()
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)
    ds.add_new(0x60000102, "US", 15)  # overlay in bit 15 of each word
    ds.add_new(0x60000100, "US", 1)
    return ds


def test_overlay_bits_in_native_words_are_cleared() -> None:
    mask, reason = overlay_plan(_overlay_header(16, 12), "1.2.840.10008.1.2.1")
    assert reason is None and mask is not None
    words = np.array([0x8FFF, 0x8001, 0x0123, 0xF000], dtype="<u2").tobytes() + b"\x07"
    assert np.frombuffer(mask.apply(words)[:8], "<u2").tolist() == [0x0FFF, 0x0001, 0x0123, 0]
    assert mask.apply(words)[8:] == b"\x07"  # a trailing partial word is left alone


def test_signed_words_are_sign_extended_from_high_bit() -> None:
    mask, _ = overlay_plan(_overlay_header(16, 12, signed=True), "1.2.840.10008.1.2")
    assert mask is not None
    words = np.array([0x0FFF, 0x87FF, 0x0800], dtype="<u2").tobytes()  # -1, 2047 + bit, -2048
    assert np.frombuffer(mask.apply(words), "<i2").tolist() == [-1, 2047, -2048]


def test_overlay_in_compressed_words_is_quarantined() -> None:
    assert overlay_plan(_overlay_header(16, 12), "1.2.840.10008.1.2.4.70") == (
        None, "compressed pixel data with an overlay embedded in the pixel words")
    header = _overlay_header(16, 12)
    del header[0x60000102]
    assert overlay_plan(header, "1.2.840.10008.1.2.4.70") == (None, None)
    assert overlay_plan(_overlay_header(16, 16), "1.2.840.10008.1.2.1") == (None, None)


@pytest.mark.parametrize(
    ("age", "oldest", "expected"),
    [("089Y", 89, "089Y"), ("090Y", 89, "090Y"), ("093Y", 89, "090Y"), ("104Y", 89, "090Y"),
     ("011M", 89, "011M"), ("085Y", 84, "085Y"), ("086Y", 84, "085Y"), ("", 89, "")],
)
def test_ages_over_the_limit_are_aggregated(age: str, oldest: int, expected: str) -> None:
    assert aggregate_age(age, oldest) == expected


def test_oldest_age_is_configurable() -> None:
    ds = Dataset()
    ds.PatientID = "X"
    ds.PatientBirthDate = "19300101"
    ds.StudyDate = "20160601"
    ds.StudyInstanceUID = "1.2.3"
    assert Deidentifier(KEYS).apply(ds).dataset.PatientAge == "086Y"
    assert Deidentifier(KEYS, oldest_age=84).apply(ds).dataset.PatientAge == "085Y"
