"""Hand-written NBSS-style records for the clinical tests (synthetic, no real PHI)."""

from __future__ import annotations

import copy
from typing import Any

NHS_NUMBER = "9990000018"
"""Modulus-11 valid, from the 999 range the NHS reserves for test data."""
OTHER_NHS_NUMBERS = ("9990000026", "9990000034", "9990000042", "9990000050", "9990000069")
LOCAL_ID = "H1234567"


def full_record(nhs: str = NHS_NUMBER) -> dict[str, Any]:
    """A client with every event kind: a normal round, a recalled malignant round
    (screening, repeat screen, assessment, clinical, both biopsies, surgery) and a later
    interval cancer; lesions, density, image features, free text and a true year."""
    return copy.deepcopy({
        "NHSNumber": nhs,
        "Site": "SITE_A",
        "LocalID": LOCAL_ID,
        "IssuerOfPatientID": "PAS_SITE_A",
        "ClientID": "demd000001",
        "Classification": "Malignant",
        "Ethnicity": "A",
        "IMDDecile": 4,
        "HighRisk": "N",
        "MutationGenes": ["BRCA1"],
        "PatientName": "SMITH^Jane",
        "CaseNotes": "Seen by Dr Jones, lives at 1 Mill Lane",
        "1": {
            "EpisodeType": "F",
            "EpisodeAction": "RR",
            "EpisodeOpenedDate": "2012-05-14",
            "EpisodeClosedDate": "2012-05-28",
            "EpisodeIsClosed": "Y",
            "ActualEpisodeOpenedYear": 2012,
            "PatientAge": 52,
            "StudyList": ["1.2.826.0.1.3680043.9.3218.1.1.1"],
            "SCREENING": {
                "L": {"DateTaken": "2012-05-14", "Opinion": "RN",
                      "EquipmentMakeModel": "HOLOGIC Selenia Dimensions",
                      "AgeAtScreening": 52, "Readers": ["R101", "R202"]},
                "R": {"DateTaken": "2012-05-14", "Opinion": "RN",
                      "EquipmentMakeModel": "HOLOGIC Selenia Dimensions",
                      "AgeAtScreening": 52, "Readers": ["R101", "R202"]},
                "left_opinion": "ON", "right_opinion": "ON",
            },
        },
        "2": {
            "EpisodeType": "R",
            "EpisodeAction": "ST",
            "EpisodeOpenedDate": "20150511",
            "EpisodeClosedDate": "2015-07-20",
            "EpisodeIsClosed": "Y",
            "PatientAge": 55,
            "EpisodeEndPoint": ["SURG"],
            "ReferralSource": "SCR",
            "FreeTextReport": "long report text that must not survive the import",
            "SCREENING": {
                "L": {"DateTaken": "2015-05-11", "Opinion": "RS",
                      "EquipmentMakeModel": "HOLOGIC Selenia Dimensions", "AgeAtScreening": 55},
                "R": {"DateTaken": "2015-05-11", "Opinion": "RN",
                      "EquipmentMakeModel": "HOLOGIC Selenia Dimensions", "AgeAtScreening": 55},
                "left_opinion": "OS", "right_opinion": "ON",
            },
            "OTHERSCREENING": {
                "7": {"L": {"DateTaken": "2015-05-18", "Opinion": "RS"},
                      "left_opinion": "OS", "right_opinion": None},
            },
            "ASSESSMENT": {
                "left_opinion": "OS", "right_opinion": None, "dateperformed": "2015-05-26",
                "L": {"1": {"DatePerformed": "2015-05-26", "MammoOpinion": "R5",
                            "UssOpinion": "U5", "MammoSizeMm": "14"}},
            },
            "CLINICAL": {
                "left_opinion": "OS", "right_opinion": "ON",
                "L": {"1": {"DatePerformed": "2015-05-26", "Opinion": "P4"}},
            },
            "BIOPSYFINE": {
                "left_opinion": "OS", "right_opinion": None,
                "L": {"1": {"DatePerformed": "2015-05-26", "Opinion": "C4"}},
            },
            "BIOPSYWIDE": {
                "left_opinion": "OM", "right_opinion": None, "diagnosticsetoutcome": "M",
                "L": {"1": {"DatePerformed": "2015-06-02", "Opinion": "B5",
                            "InvasivePresent": "Y", "InvasiveComponents": "IDC",
                            "InvasiveType": "IN", "DiseaseGrade": "G3",
                            "InSituComponents": ["NID"], "DcisGrade": "NDH",
                            "MalignancyType": "b", "HER2ReceptorScore": "3+",
                            "HER2ReceptorStatus": "RP", "HormoneERScore": "8",
                            "HormoneERStatus": "RP", "HormonePRScore": "6",
                            "HormonePRStatus": "RP", "NeedleSpecimenType": "C",
                            "LocalisationType": "US", "SpecimenComment": "free text"}},
            },
            "SURGERY": {
                "left_opinion": "OM", "right_opinion": None, "dateperformed": "2015-07-06",
                "L": {"1": {"DatePerformed": "2015-07-06", "Opinion": "H5",
                            "InvasivePresent": "Y", "DiseaseGrade": "G3",
                            "WholeSizeOfTumour": 18.5, "SizeDuctalOnly": "4",
                            "AxillaryNodesNumberPositive": 2, "ExcisionMargins": "CLEAR",
                            "OtherGeneCodes": "TP53", "TreatmentProcedure": "WLE",
                            "DiseaseExtent": "L", "LymphNode": "POS",
                            "SurgeonName": "Mr Example"}},
            },
            "LESION": {
                "L": {"1": {"LesionDescription": "MC", "LesionPosition": "LB3",
                            "CystAspirated": "N", "LesionNotes": "patient anxious"}},
            },
        },
        "3": {
            "EpisodeType": "CI",
            "EpisodeAction": "ST",
            "EpisodeOpenedDate": "2017-02-01",
            "IntervalCancerDateOfDiagnosis": "2017-02-01",
            "CLINICAL": {"left_opinion": None, "right_opinion": "OS",
                         "dateperformed": "2017-02-01"},
            "SURGERY": {
                "left_opinion": None, "right_opinion": "OM",
                "R": {"2": {"DatePerformed": "2017-03-01", "Opinion": "H5",
                            "MalignancyType": "a", "InvasivePresent": "N",
                            "DcisGrade": "NDI", "WholeSizeOfTumour": "9"}},
            },
            "INTERVALCANCER": {"R": {"2": {"DatePerformed": "2017-02-01"}}},
        },
        "DENSITY": [
            {"SOPInstanceUID": "1.2.826.0.1.3680043.9.3218.1.1.1.5", "Side": "L",
             "Date": "2012-05-14", "VolumetricBreastDensity": 7.9,
             "FibroglandularTissueVolume": 61.2, "BreastVolume": 775.0,
             "VolparaDensityGrade": "c"},
            {"Side": "R", "VolumetricBreastDensity": "8.3", "VolparaDensityGrade": 3},
        ],
        "IMAGEFEATURES": [
            {"SOPInstanceUID": "1.2.826.0.1.3680043.9.3218.1.1.1.5", "Feature": "Blur",
             "Value": "mild", "Source": "QA"},
            {"StudyInstanceUID": "1.2.826.0.1.3680043.9.3218.1.1.1", "Side": "L",
             "Feature": "microcalcifications", "Value": "present"},
        ],
    })


def minimal_record(nhs: str = NHS_NUMBER, opinion: str = "ON",
                   day: str = "2016-01-11") -> dict[str, Any]:
    """One routine screen."""
    return {
        "NHSNumber": nhs,
        "1": {
            "EpisodeType": "R",
            "EpisodeOpenedDate": day,
            "SCREENING": {"L": {"DateTaken": day}, "R": {"DateTaken": day},
                          "left_opinion": opinion, "right_opinion": "ON"},
        },
    }
