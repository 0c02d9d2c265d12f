"""Synthetic headers with canary identifiers planted everywhere one can hide.

Every identifying value contains the token ``CANARY`` or is one of the patients' NHS
numbers, birth dates, postcodes or telephone numbers, so "no identifier survived" is one
case-insensitive search of the output. Nothing here is real patient data.

The corpus imitates three sites with three vendors' equipment. Each client has two
screening episodes 1096 days apart, each with four FFDM views, a tomosynthesis stack, a
CAD SR and a presentation state that reference the images, and a Secondary Capture
marked as free of burned-in text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

MG = "1.2.840.10008.5.1.4.1.1.1.2"
MG_RAW = "1.2.840.10008.5.1.4.1.1.1.2.1"
BTO = "1.2.840.10008.5.1.4.1.1.13.1.3"
SR = "1.2.840.10008.5.1.4.1.1.88.50"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
SC = "1.2.840.10008.5.1.4.1.1.7"

PHI_CLASSES = {
    "CANARY": "names",
    # Surnames and forenames that are also ordinary English words.
    "SPARROW": "names", "HEATHER": "names",
    "9434765919": "ids", "943 476 5919": "ids", "943-476-5919": "ids",
    "4010232137": "ids", "401 023 2137": "ids", "4857773457": "ids",
    "19580312": "dates", "19610727": "dates", "19550101": "dates", "19240505": "dates",
    "19200115": "dates",
    # One true date written the ways people and systems write it (10 February 2016,
    # 14 June 1962); paired with vocabulary words wherever they are planted.
    "10/02/16": "dates", "14 06 62": "dates", "2016-02-10": "dates", "10.02.2016": "dates",
    "10 Feb 2016": "dates", "10FEB16": "dates", "14/6/1962": "dates",
    "GU2 7QZ": "geographic", "01483 555019": "phone",
}
"""Planted identifiers and the HIPAA Safe Harbor class each stands for."""

PHI_TOKENS = tuple(PHI_CLASSES)
"""Searched case-insensitively in every output value and in the encoded bytes."""

VOCABULARY_PHI = (
    "Lesion 1 10/02/16", "R MLO 14 06 62", "Recall Sparrow", "Screening 10 Feb 2016",
    "L CC 10.02.2016", "Screening 10FEB16", "Heather Sparrow", "R MLO 2016-02-10",
    "Lesion 1 14/6/1962", "Screening Mammography Sparrow",
)
"""Vocabulary words paired with a date or a name that is also a word (issue: Clean
Descriptors kept such values whole)."""

SAFE_DESCRIPTORS = frozenset(
    {"L CC", "R CC", "L MLO", "R MLO", "Screening Mammography", "Tomosynthesis", "Lesion 1",
     "R MLO Tomosynthesis"}
)
"""Descriptor values planted as safe: the profile must keep them (text_retained)."""

RETAINED = ("PatientAge", "PatientSex", "EthnicGroup", "Manufacturer",
            "ManufacturerModelName", "SoftwareVersions", "Modality", "BurnedInAnnotation")
"""Top-level attributes that must come out unchanged (113108, 113109 and technical)."""

ADDRESS = "17 Canary Wharf Lane, Guildford, GU2 7QZ"
PHONE = "01483 555019"
COMMENT = "Mrs Janetta Canaryfield NHS 943 476 5919 DOB 12/03/1958 tel 01483 555019"


@dataclass(frozen=True)
class Vendor:
    manufacturer: str
    model: str
    software: str
    site: str
    issuer: str


VENDORS = (
    Vendor("HOLOGIC, Inc.", "Selenia Dimensions", "1.11.2.8", "SITE_A", "RSCH"),
    Vendor("GE MEDICAL SYSTEMS", "Senographe Pristina", "ADS_43.10", "SITE_B", "FHFT"),
    Vendor("SIEMENS", "Mammomat Revelation", "VA10A", "SITE_C", "ASPH"),
)


@dataclass(frozen=True)
class Patient:
    key: str
    name: str
    nhs: str | None
    local_id: str
    birth: str
    age_given: bool = True


PATIENTS = (
    Patient("p1", "CANARYFIELD^JANETTA^Q", "9434765919", "RSCH-CANARY-101", "19580312"),
    Patient("p2", "CANARYWOOD^MAUD", "4010232137", "FHFT-CANARY-202", "19610727",
            age_given=False),
    Patient("p3", "CANARYLOCAL^NELL", None, "ASPH-CANARY-303", "19550101"),
    # Over 89 at screening: the age is aggregated to 090Y, computed (p4) or given (p5).
    Patient("p4", "CANARYELDER^EDITH", "4857773457", "ASPH-CANARY-404", "19240505",
            age_given=False),
    Patient("p5", "CANARYOLDEST^ADA", None, "RSCH-CANARY-505", "19200115"),
)


@dataclass
class Instance:
    """One synthetic instance and what the answer key needs to know about it."""

    dataset: Dataset
    meta: FileMetaDataset
    patient: Patient
    site: str
    kind: str
    study_date: str
    references: list[str] = field(default_factory=list)
    """Original SOP Instance UIDs this instance references."""


class UidSource:
    """Distinct, deterministic original UIDs (PS3.5 compliant)."""

    def __init__(self, root: str = "1.2.826.0.1.3680043.9.7134.") -> None:
        self.root = root
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.root}{self.n}"


def code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _meta(ds: Dataset, source_ae: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ds.SOPClassUID)
    meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.9.7134.0.1")
    meta.SourceApplicationEntityTitle = source_ae
    meta.SendingApplicationEntityTitle = "CANARYSEND"
    return meta


def plant_patient_and_study(
    ds: Dataset, patient: Patient, vendor: Vendor, study: dict[str, str], uid: UidSource
) -> None:
    """Patient, study, equipment and request attributes, all carrying canaries (T9)."""
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = patient.name
    ds.PatientID = patient.nhs if patient.nhs and vendor.site == "SITE_A" else patient.local_id
    ds.IssuerOfPatientID = "NHS" if ds.PatientID == patient.nhs else vendor.issuer
    ds.PatientBirthDate = patient.birth
    if patient.age_given:
        ds.PatientAge = study["age"]
    ds.PatientSex = "F"
    ds.EthnicGroup = "A"
    ds.PatientWeight = "64"
    ds.OtherPatientIDs = [patient.local_id, "HOSP-CANARY-9"]
    ds.OtherPatientNames = "CANARYBIRTH^JANETTA"
    if patient.nhs:
        other = Dataset()
        other.PatientID = patient.nhs
        other.IssuerOfPatientID = "NHS"
        other.TypeOfPatientID = "TEXT"
        ds.OtherPatientIDsSequence = Sequence([other])
    ds.PatientAddress = ADDRESS
    ds.PatientMotherBirthName = "CANARYMUM^MAUD"
    ds.MedicalRecordLocator = "LOC-CANARY-8"
    ds.PatientTelephoneNumbers = PHONE
    ds.PatientComments = COMMENT
    ds.PatientSpeciesDescription = "CANARY species text"

    ds.StudyInstanceUID = study["uid"]
    ds.StudyDate = study["date"]
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC-CANARY-77"
    ds.StudyID = "STUDYCANARY1"
    ds.StudyDescription = "Screening Mammography"
    ds.ReferringPhysicianName = "CANARYREFER^ALICE^^DR"
    ds.ReferringPhysicianAddress = ADDRESS
    ds.ReferringPhysicianTelephoneNumbers = PHONE
    ds.PhysiciansOfRecord = "CANARYRECORD^ERIN"
    ds.NameOfPhysiciansReadingStudy = ["CANARYREAD^CAROL", "CANARYREAD^DAN"]
    ds.RequestingPhysician = "CANARYREQ^FRED"
    ds.AdmissionID = "ADM-CANARY-3"
    ds.CurrentPatientLocation = "Canary Ward 9"
    ds.ScheduledProcedureStepID = "SPS-CANARY-1"
    ds.PerformedProcedureStepID = "PPS-CANARY-2"
    ds.RequestedProcedureID = "RP-CANARY-3"
    ds.PerformedProcedureStepDescription = "Canary clinic afternoon list"
    ds.PerformedProcedureStepStartDate = study["date"]
    ds.TimezoneOffsetFromUTC = "+0100"
    request = Dataset()
    request.RequestedProcedureID = "RP-CANARY-3"
    request.ScheduledProcedureStepID = "SPS-CANARY-1"
    request.AccessionNumber = "ACC-CANARY-77"
    request.RequestedProcedureDescription = "Referred by CANARYREFER for screening"
    request.ScheduledProcedureStepDescription = "Screening Mammography"
    request.ReasonForTheRequestedProcedure = "Mother CANARYMUM had breast cancer"
    request.ScheduledProtocolCodeSequence = Sequence([code("24623002", "SCT", "Screening")])
    ds.RequestAttributesSequence = Sequence([request])
    ref_study = Dataset()
    ref_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref_study.ReferencedSOPInstanceUID = study["uid"]
    ref_study.PatientName = patient.name
    ds.ReferencedStudySequence = Sequence([ref_study])
    ds.RetrieveAETitle = "CANARYAE2"
    ds.RetrieveURL = "https://pacs.canary.example/studies/" + study["uid"]

    ds.Manufacturer = vendor.manufacturer
    ds.ManufacturerModelName = vendor.model
    ds.SoftwareVersions = vendor.software
    ds.DeviceSerialNumber = f"SN-CANARY-{vendor.site}"
    ds.StationName = f"CANARY-{vendor.site}"
    ds.InstitutionName = "Canary Royal Infirmary"
    ds.InstitutionAddress = ADDRESS
    ds.InstitutionalDepartmentName = "Canary Breast Unit"
    ds.OperatorsName = "CANARYOPER^DAVE"
    ds.PerformingPhysicianName = "CANARYPERF^BOB"
    ds.ProtocolName = "CANARY personal protocol"
    ds.InstanceCreatorUID = uid()
    ds.InstanceCreationDate = study["date"]
    ds.InstanceCreationTime = "101501"


def plant_hidden(ds: Dataset, uid: UidSource) -> None:
    """Private groups, overlays, curves, signatures and trailing padding with canaries."""
    block = ds.private_block(0x0009, "CANARY MEDICAL SYSTEMS", create=True)
    block.add_new(0x01, "LO", "PRIV-CANARY-ID")
    block.add_new(0x02, "DA", "19580312")
    nested = Dataset()
    nested.PatientName = "CANARYNESTED^PRIV"
    block.add_new(0x03, "SQ", Sequence([nested]))
    ds.add_new(0x00291010, "OB", b"CSA CANARYFIELD 9434765919\x00")  # private, no creator
    ds.add_new(0x60000010, "US", 16)
    ds.add_new(0x60000011, "US", 16)
    ds.add_new(0x60000022, "LO", "Overlay by CANARYOPER")
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60001500, "LO", "CANARY label")
    ds.add_new(0x60003000, "OW", b"CANARYFIELD-OVERLAY-BITS")
    ds.add_new(0x60004000, "LT", "Overlay comments CANARYFIELD")
    ds.add_new(0x50000005, "US", 1)
    ds.add_new(0x50003000, "OW", b"CANARYCURVE")
    signature = Dataset()
    signature.DigitalSignatureUID = uid()
    signature.CertificateOfSigner = b"CN=CANARYSIGNER,O=Canary Royal Infirmary"
    signature.Signature = b"\x01\x02CANARY"
    ds.DigitalSignaturesSequence = Sequence([signature])
    ds.DataSetTrailingPadding = b"CANARYPADDING\x00\x00"


@dataclass
class Study:
    uid: str
    date: str
    age: str
    images: dict[str, tuple[str, str]] = field(default_factory=dict)
    """View name -> (series UID, SOP instance UID) of the FFDM images."""


def _common_image(ds: Dataset, uid: UidSource, frame_of_reference: str) -> None:
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PositionReferenceIndicator = ""
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 64
    ds.Columns = 52
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "2048"
    ds.WindowWidth = "4096"
    ds.WindowCenterWidthExplanation = "NORMAL"
    frames = int(ds.get("NumberOfFrames", 1))
    ds.PixelData = b"\x10\x02" * (64 * 52 * frames)  # 0x0210: within the 12 stored bits
    ds.RequestedProcedureDescription = "Screening Mammography Sparrow"
    ds.RescaleType = "US"


def make_mg(patient: Patient, vendor: Vendor, study: Study, view: str, uid: UidSource,
            frame_of_reference: str) -> Instance:
    """An FFDM For Presentation header (PS3.3 A.26) with every T9 canary."""
    laterality, position = view.split()
    ds = Dataset()
    ds.SOPClassUID = MG
    ds.SOPInstanceUID = uid()
    ds.Modality = "MG"
    ds.SeriesInstanceUID = uid()
    ds.SeriesNumber = "1"
    ds.InstanceNumber = "1"
    ds.SeriesDescription = view
    ds.SeriesDate = study.date
    ds.SeriesTime = "101600"
    ds.AcquisitionDate = study.date
    ds.AcquisitionTime = "101700"
    ds.AcquisitionDateTime = study.date + "101700.250000+0100"
    ds.ContentDate = study.date
    ds.ContentTime = "101700"
    ds.IrradiationEventUID = uid()
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality = laterality
    ds.ViewPosition = position
    ds.BodyPartExamined = "BREAST"
    ds.ViewCodeSequence = Sequence([code("399162004" if position == "CC" else "399368009",
                                         "SCT", position)])
    ds.AnatomicRegionSequence = Sequence([code("76752008", "SCT", "Breast")])
    ds.DetectorID = f"DET-CANARY-{vendor.site[-1]}"
    ds.DetectorType = "DIRECT"
    ds.KVP = "29"
    ds.ExposureInuAs = 80000
    ds.BodyPartThickness = "52"
    ds.CompressionForce = "110"
    ds.ImageComments = COMMENT
    ds.AcquisitionDeviceProcessingDescription = "CANARY processing for Mrs Canaryfield"
    ds.DerivationDescription = "L CC 10/02/16"
    ds.add_new(0x00089999, "LO", "R MLO 14 06 62")  # public, unknown to the dictionary
    ds.add_new(0x00089998, "CS", "SPARROW 10FEB16")
    source = Dataset()
    source.ReferencedSOPClassUID = MG_RAW
    source.ReferencedSOPInstanceUID = uid()
    source.OperatorsName = "CANARYOPER^NESTED"
    source.add_new(0x00111010, "LO", "nested private CANARY")
    source.add_new(0x00110010, "LO", "CANARY NESTED CREATOR")
    ds.SourceImageSequence = Sequence([source])
    _common_image(ds, uid, frame_of_reference)
    plant_patient_and_study(ds, patient, vendor, {"uid": study.uid, "date": study.date,
                                                  "age": study.age}, uid)
    plant_hidden(ds, uid)
    study.images[view] = (str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
    return Instance(ds, _meta(ds, "CANARYAE"), patient, vendor.site, "MG", study.date,
                    [str(source.ReferencedSOPInstanceUID)])


def make_bto(patient: Patient, vendor: Vendor, study: Study, uid: UidSource,
             frame_of_reference: str, frames: int = 3) -> Instance:
    """A Breast Tomosynthesis header (PS3.3 A.84) with functional groups."""
    ds = Dataset()
    ds.SOPClassUID = BTO
    ds.SOPInstanceUID = uid()
    ds.Modality = "MG"
    ds.SeriesInstanceUID = uid()
    ds.SeriesNumber = "5"
    ds.InstanceNumber = "1"
    ds.SeriesDescription = "R MLO Tomosynthesis"
    ds.ContentDate = study.date
    ds.ContentTime = "102000"
    ds.AcquisitionDateTime = study.date + "102000"
    ds.ImageType = ["DERIVED", "PRIMARY", "TOMOSYNTHESIS", "NONE"]
    ds.NumberOfFrames = frames
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ContentQualification = "PRODUCT"
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = ["0.1", "0.1"]
    measures.SliceThickness = "1"
    shared.PixelMeasuresSequence = Sequence([measures])
    anatomy = Dataset()
    anatomy.FrameLaterality = "R"
    anatomy.AnatomicRegionSequence = Sequence([code("76752008", "SCT", "Breast")])
    shared.FrameAnatomySequence = Sequence([anatomy])
    shared.add_new(0x00191010, "LO", "shared private CANARY")
    shared.add_new(0x00190010, "LO", "CANARY FG CREATOR")
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for n in range(frames):
        item = Dataset()
        content = Dataset()
        content.FrameAcquisitionDateTime = study.date + f"1020{n:02d}"
        content.FrameReferenceDateTime = study.date + f"1020{n:02d}"
        content.DimensionIndexValues = [1, n + 1]
        content.FrameComments = "frame of Mrs CANARYFIELD"
        item.FrameContentSequence = Sequence([content])
        position = Dataset()
        position.ImagePositionPatient = ["0", "0", str(n)]
        item.PlanePositionSequence = Sequence([position])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    organisation = Dataset()
    organisation.DimensionOrganizationUID = uid()
    ds.DimensionOrganizationSequence = Sequence([organisation])
    index = Dataset()
    index.DimensionOrganizationUID = organisation.DimensionOrganizationUID
    index.DimensionIndexPointer = 0x00209057
    index.DimensionDescriptionLabel = "Stack position"
    ds.DimensionIndexSequence = Sequence([index])
    contributing = Dataset()
    contributing.Manufacturer = vendor.manufacturer
    contributing.DeviceSerialNumber = f"SN-CANARY-{vendor.site}"
    contributing.StationName = f"CANARY-{vendor.site}"
    contributing.InstitutionName = "Canary Royal Infirmary"
    contributing.AcquisitionDateTime = study.date + "101900"
    ds.ContributingSourcesSequence = Sequence([contributing])
    _common_image(ds, uid, frame_of_reference)
    plant_patient_and_study(ds, patient, vendor, {"uid": study.uid, "date": study.date,
                                                  "age": study.age}, uid)
    plant_hidden(ds, uid)
    return Instance(ds, _meta(ds, "CANARYAE"), patient, vendor.site, "BTO", study.date)


def _content(value_type: str, relationship: str, concept: Dataset, **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([concept])
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def make_sr(patient: Patient, vendor: Vendor, study: Study, uid: UidSource) -> Instance:
    """A Mammography CAD SR header referencing the study's images, with text and names."""
    ds = Dataset()
    ds.SOPClassUID = SR
    ds.SOPInstanceUID = uid()
    ds.Modality = "SR"
    ds.SeriesInstanceUID = uid()
    ds.SeriesNumber = "90"
    ds.InstanceNumber = "1"
    ds.ContentDate = study.date
    ds.ContentTime = "103000"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([code("111036", "DCM", "Mammography CAD Report")])
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "4000"
    ds.ContentTemplateSequence = Sequence([template])
    verifier = Dataset()
    verifier.VerifyingObserverName = "CANARYVERIFY^GINA"
    verifier.VerifyingOrganization = "Canary Royal Infirmary"
    verifier.VerificationDateTime = study.date + "120000"
    verifier.VerifyingObserverIdentificationCodeSequence = Sequence(
        [code("RAD-CANARY-1", "99LOCAL", "CANARYVERIFY G")]
    )
    ds.VerifyingObserverSequence = Sequence([verifier])
    author = Dataset()
    author.ObserverType = "PSN"
    author.PersonName = "CANARYAUTHOR^KIM"
    ds.AuthorObserverSequence = Sequence([author])
    series_uid, sop_uid = next(iter(study.images.values()))
    image_ref = Dataset()
    image_ref.ReferencedSOPClassUID = MG
    image_ref.ReferencedSOPInstanceUID = sop_uid
    items = [
        _content("PNAME", "HAS OBS CONTEXT", code("121008", "DCM", "Person Observer Name"),
                 PersonName="CANARYOBS^HANK"),
        _content("UIDREF", "HAS OBS CONTEXT", code("121018", "DCM", "Procedure Study Instance UID"),
                 UID=study.uid),
        _content("DATE", "HAS OBS CONTEXT", code("111060", "DCM", "Study Date"), Date=study.date),
        _content("DATETIME", "HAS OBS CONTEXT", code("111526", "DCM", "DateTime Started"),
                 DateTime=study.date + "101500"),
        _content("TEXT", "CONTAINS", code("121106", "DCM", "Comment"), TextValue=COMMENT),
        _content("IMAGE", "CONTAINS", code("111026", "DCM", "Image"),
                 ReferencedSOPSequence=Sequence([image_ref])),
    ]
    finding = _content("CONTAINER", "CONTAINS", code("111059", "DCM", "Single Image Finding"),
                       ContinuityOfContent="SEPARATE")
    for text in VOCABULARY_PHI:
        items.append(_content("TEXT", "CONTAINS", code("121106", "DCM", "Comment"),
                              TextValue=text))
    items.append(_content("CODE", "CONTAINS",
                          code("SPW1", "99RSCH", "Read by Sparrow 14 06 62"),
                          ConceptCodeSequence=Sequence(
                              [code("L-10/02/16", "99RSCH", "Recall Heather Sparrow")])))
    items.append(_content("CODE", "CONTAINS", code("121071", "DCM", "Finding"),
                          ConceptCodeSequence=Sequence(
                              [code("4010232137", "SCT", "Mass 10.02.2016")])))
    finding.ContentSequence = Sequence([
        _content("TEXT", "HAS PROPERTIES", code("112039", "DCM", "Tracking Identifier"),
                 TextValue="Lesion 1"),
        _content("TEXT", "HAS PROPERTIES", code("121106", "DCM", "Comment"),
                 TextValue="seen by Dr CANARYREAD on 12/03/2019"),
        _content("PNAME", "HAS OBS CONTEXT", code("121008", "DCM", "Person Observer Name"),
                 PersonName="CANARYNESTED^OBS"),
    ])
    items.append(finding)
    ds.ContentSequence = Sequence(items)
    evidence_sop = Dataset()
    evidence_sop.ReferencedSOPClassUID = MG
    evidence_sop.ReferencedSOPInstanceUID = sop_uid
    evidence_series = Dataset()
    evidence_series.SeriesInstanceUID = series_uid
    evidence_series.ReferencedSOPSequence = Sequence([evidence_sop])
    evidence = Dataset()
    evidence.StudyInstanceUID = study.uid
    evidence.ReferencedSeriesSequence = Sequence([evidence_series])
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])
    plant_patient_and_study(ds, patient, vendor, {"uid": study.uid, "date": study.date,
                                                  "age": study.age}, uid)
    plant_hidden(ds, uid)
    return Instance(ds, _meta(ds, "CANARYAE"), patient, vendor.site, "SR", study.date,
                    [sop_uid])


def make_gsps(patient: Patient, vendor: Vendor, study: Study, uid: UidSource) -> Instance:
    """A Grayscale Softcopy Presentation State annotating one of the study's images."""
    ds = Dataset()
    ds.SOPClassUID = GSPS
    ds.SOPInstanceUID = uid()
    ds.Modality = "PR"
    ds.SeriesInstanceUID = uid()
    ds.SeriesNumber = "91"
    ds.InstanceNumber = "1"
    ds.ContentLabel = "SPARROW_140662"
    ds.ContentDescription = "Marks by CANARYREAD for Mrs Canaryfield"
    ds.ContentCreatorName = "CANARYCREATOR^IVY"
    ds.PresentationCreationDate = study.date
    ds.PresentationCreationTime = "110000"
    series_uid, sop_uid = list(study.images.values())[-1]
    image = Dataset()
    image.ReferencedSOPClassUID = MG
    image.ReferencedSOPInstanceUID = sop_uid
    series = Dataset()
    series.SeriesInstanceUID = series_uid
    series.ReferencedImageSequence = Sequence([image])
    ds.ReferencedSeriesSequence = Sequence([series])
    layer = Dataset()
    layer.GraphicLayer = "HEATHER SPARROW"
    layer.GraphicLayerDescription = "R MLO 10/02/16"
    layer.GraphicLayerOrder = 1
    ds.GraphicLayerSequence = Sequence([layer])
    text = Dataset()
    text.UnformattedTextValue = "Jane CANARYFIELD 9434765919"
    text.AnchorPoint = [10.0, 10.0]
    text.AnchorPointAnnotationUnits = "PIXEL"
    text.AnchorPointVisibility = "Y"
    dated = Dataset()
    dated.UnformattedTextValue = "R MLO 10.02.2016"
    dated.BoundingBoxTopLeftHandCorner = [1.0, 1.0]
    dated.BoundingBoxBottomRightHandCorner = [30.0, 8.0]
    dated.BoundingBoxAnnotationUnits = "PIXEL"
    dated.BoundingBoxTextHorizontalJustification = "LEFT"
    graphic = Dataset()
    graphic.GraphicAnnotationUnits = "PIXEL"
    graphic.GraphicDimensions = 2
    graphic.NumberOfGraphicPoints = 2
    graphic.GraphicData = [1.0, 1.0, 20.0, 20.0]
    graphic.GraphicType = "POLYLINE"
    annotation = Dataset()
    annotation.GraphicLayer = "HEATHER SPARROW"
    annotation.ReferencedImageSequence = Sequence([image])
    annotation.TextObjectSequence = Sequence([text, dated])
    annotation.GraphicObjectSequence = Sequence([graphic])
    ds.GraphicAnnotationSequence = Sequence([annotation])
    ds.PresentationLUTShape = "IDENTITY"
    plant_patient_and_study(ds, patient, vendor, {"uid": study.uid, "date": study.date,
                                                  "age": study.age}, uid)
    plant_hidden(ds, uid)
    return Instance(ds, _meta(ds, "CANARYAE"), patient, vendor.site, "GSPS", study.date,
                    [sop_uid])


def make_sc(patient: Patient, vendor: Vendor, study: Study, uid: UidSource,
            burned_in: str | None) -> Instance:
    """A Secondary Capture header; ``burned_in`` None leaves BurnedInAnnotation out."""
    ds = Dataset()
    ds.SOPClassUID = SC
    ds.SOPInstanceUID = uid()
    ds.Modality = "OT"
    ds.SeriesInstanceUID = uid()
    ds.SeriesNumber = "99"
    ds.InstanceNumber = "1"
    ds.ConversionType = "WSD"
    ds.SeriesDescription = "Screening 10FEB16"
    ds.WindowCenterWidthExplanation = "Screening 2016-02-10"
    ds.SecondaryCaptureDeviceManufacturer = vendor.manufacturer
    ds.DateOfSecondaryCapture = study.date
    ds.ContentDate = study.date
    _common_image(ds, uid, uid())
    if burned_in is None:
        del ds.BurnedInAnnotation
    else:
        ds.BurnedInAnnotation = burned_in
    plant_patient_and_study(ds, patient, vendor, {"uid": study.uid, "date": study.date,
                                                  "age": study.age}, uid)
    plant_hidden(ds, uid)
    return Instance(ds, _meta(ds, "CANARYAE"), patient, vendor.site, "SC", study.date)


def age_at(birth: str, on: str) -> str:
    b = dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
    d = dt.date(int(on[:4]), int(on[4:6]), int(on[6:]))
    return f"{d.year - b.year - ((d.month, d.day) < (b.month, b.day)):03d}Y"


def build_corpus() -> list[Instance]:
    """The T9 corpus: 3 vendors, 3 patients at their sites plus p1 again at site B.

    Each (patient, site) pair has two episodes 1096 days apart with 4 FFDM views, 1 DBT
    stack, 1 CAD SR, 1 GSPS and 1 clean SC: 6 pairs x 2 x 8 = 96 instances.
    """
    uid = UidSource()
    instances: list[Instance] = []
    pairs = [(PATIENTS[0], VENDORS[0]), (PATIENTS[1], VENDORS[1]), (PATIENTS[2], VENDORS[2]),
             (PATIENTS[0], VENDORS[1]), (PATIENTS[3], VENDORS[2]), (PATIENTS[4], VENDORS[0])]
    for patient, vendor in pairs:
        first = dt.date(2015, 3, 2) if vendor.site != "SITE_B" else dt.date(2014, 11, 20)
        for episode in range(2):
            day = first + dt.timedelta(days=1096 * episode)
            date_text = day.strftime("%Y%m%d")
            study = Study(uid(), date_text, age_at(patient.birth, date_text))
            frame_of_reference = uid()
            for view in ("L CC", "R CC", "L MLO", "R MLO"):
                instances.append(make_mg(patient, vendor, study, view, uid, frame_of_reference))
            instances.append(make_bto(patient, vendor, study, uid, frame_of_reference))
            instances.append(make_sr(patient, vendor, study, uid))
            instances.append(make_gsps(patient, vendor, study, uid))
            instances.append(make_sc(patient, vendor, study, uid, "NO"))
    return instances
