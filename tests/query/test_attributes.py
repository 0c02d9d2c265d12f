"""The attribute table agrees with the DICOM data dictionary and with the index."""

from __future__ import annotations

import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag

from omipacs.query.attributes import (
    ALIASES,
    ATTRIBUTES,
    BY_KEYWORD,
    DEFAULTS,
    Attribute,
    UnknownAttribute,
    leaves,
    resolve,
)


@pytest.mark.parametrize("attr", ATTRIBUTES, ids=[a.keyword for a in ATTRIBUTES])
def test_keyword_tag_and_vr_match_the_dictionary(attr: Attribute) -> None:
    for path in leaves(attr):
        for a in path:
            assert keyword_for_tag(a.tag) == a.keyword
            assert a.vr in dictionary_VR(a.tag).split(" or ")


def test_every_attribute_has_a_value_source() -> None:
    for attr in ATTRIBUTES:
        sources = [attr.column, attr.count, attr.constant, attr.items or None]
        assert sum(s is not None for s in sources) == 1, attr.keyword


def test_defaults_and_aliases_resolve() -> None:
    for keywords in DEFAULTS.values():
        assert all(k in BY_KEYWORD for k in keywords)
    for alias in ALIASES:
        assert resolve(alias)[-1].column is not None


@pytest.mark.parametrize(
    ("name", "dicom"),
    [("PatientWeight", True), ("00091001", True), ("Foo", False), ("ViewCodeSequence.Foo", False)],
)
def test_unknown_attributes(name: str, dicom: bool) -> None:
    with pytest.raises(UnknownAttribute) as info:
        resolve(name)
    assert info.value.dicom is dicom


@pytest.mark.parametrize("name", ["../", "", "a b", "Patient-ID", "0010002", "A.B.C.D.E"])
def test_malformed_names(name: str) -> None:
    with pytest.raises(ValueError):
        resolve(name)


def test_both_lateralities_read_one_column() -> None:
    assert BY_KEYWORD["ImageLaterality"].column is BY_KEYWORD["FrameLaterality"].column


@pytest.mark.parametrize(
    ("keyword", "level", "usable", "returnable"),
    [
        ("Modality", "study", True, True),
        ("SeriesInstanceUID", "study", False, False),
        ("SeriesInstanceUID", "instance", True, True),
        ("ViewCodeSequence", "series", True, False),
        ("NumberOfSeriesRelatedInstances", "study", False, False),
        ("ModalitiesInStudy", "instance", True, True),
    ],
)
def test_levels(keyword: str, level: str, usable: bool, returnable: bool) -> None:
    attr = BY_KEYWORD[keyword]
    assert attr.usable_at(level) is usable  # type: ignore[arg-type]
    assert attr.returnable_at(level) is returnable  # type: ignore[arg-type]
