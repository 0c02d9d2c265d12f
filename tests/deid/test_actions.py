"""Values written by the operations, by VR."""

from __future__ import annotations

import pytest
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence

from omipacs.deid import actions


@pytest.mark.parametrize(
    ("vr", "expected"),
    [("PN", "ANONYMOUS"), ("LO", "ANONYMIZED"), ("SH", "ANONYMIZED"), ("CS", "ANONYMIZED"),
     ("UT", "ANONYMIZED"), ("DS", "0"), ("IS", "0"), ("OB", None), ("SQ", None)],
)
def test_dummy_value(vr: str, expected: str | None) -> None:
    assert actions.dummy_value(vr) == expected


def test_dummies_fit_the_shortest_vr() -> None:
    assert len(actions.DUMMY_TEXT) <= 16 and actions.DUMMY_TEXT.isupper()


@pytest.mark.parametrize(("vr", "empty"), [("DA", ""), ("PN", ""), ("US", None), ("OB", None)])
def test_empty_element(vr: str, empty: object) -> None:
    elem = actions.empty_element(DataElement(0x00100030, vr, None))
    assert elem.value == empty


def test_empty_sequence() -> None:
    elem = actions.empty_element(DataElement(0x0040A088, "SQ", Sequence()))
    assert elem.VR == "SQ" and len(elem.value) == 0


def test_map_values_keeps_multiplicity_and_empties() -> None:
    elem = DataElement(0x00081155, "UI", ["1.2", "1.3"])
    mapped = actions.map_values(elem, lambda v: v + ".9")
    assert list(mapped.value) == ["1.2.9", "1.3.9"]
    single = actions.map_values(DataElement(0x00080020, "DA", "20200101"), lambda v: "20200102")
    assert single.value == "20200102"
    assert actions.map_values(DataElement(0x00080020, "DA", ""), lambda v: "20200102").value == ""
