"""C-FIND identifiers become the query QIDO-RS parameters become (no sockets here)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from omipacs.errors import InvalidQuery, TooManyMatches
from omipacs.index.models import Study
from omipacs.index.visibility import Visibility
from omipacs.query.identifier import find, parse_identifier, parse_retrieve
from omipacs.query.params import Equals, parse_qido
from tests.query.archive import Archive, uid


def _ident(level: str, **keys: object) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key, value in keys.items():
        setattr(ds, key, value)
    return ds


def test_same_filters_as_qido() -> None:
    ident = _ident(
        "STUDY",
        PatientName="ng*",
        StudyDate="20200101-20201231",
        StudyInstanceUID=["1.2.3", "1.2.4"],
        AccessionNumber="",
    )
    found = parse_identifier(ident, "study").query
    qido = parse_qido(
        [
            ("PatientName", "ng*"),
            ("StudyDate", "20200101-20201231"),
            ("StudyInstanceUID", "1.2.3\\1.2.4"),
        ],
        "study",
    )
    assert set(found.filters) == set(qido.filters)
    assert len(found.filters) == 3  # the empty AccessionNumber is a return key only
    keywords = {a.keyword for a in found.fields}
    assert keywords == {"PatientName", "StudyDate", "StudyInstanceUID", "AccessionNumber"}


def test_sequence_keys_unsupported_keys_and_unique_keys() -> None:
    item = Dataset()
    item.CodeValue = "399162004"
    ident = _ident("IMAGE", ViewCodeSequence=[item], StudyComments="", PatientID="P1")
    request = parse_identifier(ident, "patient")
    (view, patient) = sorted(request.query.filters, key=lambda f: f.top.tag, reverse=True)
    assert view.attribute.keyword == "CodeValue" and view.terms == (Equals("399162004"),)
    assert patient.attribute.keyword == "PatientID"
    assert request.unsupported == (0x00324000,)
    assert {a.keyword for a in request.query.fields} >= {
        "PatientID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "ViewCodeSequence",
    }


@pytest.mark.parametrize(
    ("ident", "model"),
    [
        (_ident("PATIENT"), "study"),
        (_ident("FRAME"), "study"),
        (_ident("STUDY", StudyDate="2020"), "study"),
        (_ident("STUDY", SOPInstanceUID="1.2.3"), "study"),
        (_ident("STUDY", StudyInstanceUID="1.2.x"), "study"),
    ],
)
def test_bad_identifiers(ident: Dataset, model: str) -> None:
    with pytest.raises(InvalidQuery):
        parse_identifier(ident, model)  # type: ignore[arg-type]


def test_retrieve_identifier_needs_the_level_unique_key() -> None:
    query = parse_retrieve(
        _ident("SERIES", StudyInstanceUID="1.2", SeriesInstanceUID="1.3\\1.4"), "study"
    )
    assert query.level == "instance"
    assert [f.uids for f in query.filters] == [("1.2",), ("1.3", "1.4")]
    with pytest.raises(InvalidQuery):
        parse_retrieve(_ident("SERIES", StudyInstanceUID="1.2"), "study")
    with pytest.raises(InvalidQuery):
        parse_retrieve(_ident("PATIENT", PatientID="P*"), "patient")


def test_patient_level_search_and_restriction(archive: Archive) -> None:
    request = parse_identifier(_ident("PATIENT", PatientID="", PatientName=""), "patient")
    sessions = archive.services.sessions
    everyone = [ds.PatientID for ds in find(sessions, request, ae_title="A", max_results=10)]
    assert everyone == sorted(["P001", "' OR 1=1--", "X_1", "XA1"])
    # A restriction on studies shows only the patients of visible studies.
    visible = Visibility(study=Study.study_instance_uid.in_([uid("1"), uid("4")]))
    restricted = find(sessions, request, ae_title="A", max_results=10, restrict=visible)
    assert [ds.PatientID for ds in restricted] == ["P001", "XA1"]


def test_find_stops_at_the_limit(archive: Archive) -> None:
    request = parse_identifier(_ident("IMAGE", SOPInstanceUID=""), "study", page=3)
    sent = []
    with pytest.raises(TooManyMatches, match="more than 4 matches"):
        for ds in find(archive.services.sessions, request, ae_title="A", max_results=4):
            sent.append(ds.SOPInstanceUID)
    assert len(sent) == 4
    assert len(list(find(archive.services.sessions, request, ae_title="A", max_results=10))) == 10
