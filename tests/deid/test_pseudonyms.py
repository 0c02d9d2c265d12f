"""Client IDs, date offsets, date shifting, UID remapping and device pseudonyms."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from omipacs.deid.keys import DeidKeys
from omipacs.deid.pseudonyms import (
    age_string,
    client_pseudonym,
    date_offset_days,
    device_pseudonym,
    parse_da,
    remap_uid,
    shift_date,
    shift_datetime,
    shift_time,
)

KEYS = DeidKeys.from_secret(bytes(range(1, 33)))
OTHER_KEYS = DeidKeys.from_secret(bytes(range(2, 34)))


def test_linked_client_ignores_site_and_local_id() -> None:
    a = client_pseudonym(KEYS, "9434765919", "SITE_A|RSCH", "RSCH1")
    b = client_pseudonym(KEYS, "9434765919", "SITE_B|FHFT", "F99")
    assert a == b
    assert a.linked and re.fullmatch(r"OPTM[A-Z2-7]{12}", a.client_id)
    assert len(a.key_hash) == 64


def test_unlinked_client_is_stable_and_namespaced() -> None:
    a = client_pseudonym(KEYS, None, "SITE_A|RSCH", "12345")
    assert a == client_pseudonym(KEYS, None, "SITE_A|RSCH", "12345")
    assert not a.linked and re.fullmatch(r"UNLK[A-Z2-7]{12}", a.client_id)
    assert a != client_pseudonym(KEYS, None, "SITE_B|RSCH", "12345")
    assert a != client_pseudonym(KEYS, None, "SITE_A|RSCH1", "2345")  # no concatenation clash


def test_pseudonyms_depend_on_the_key() -> None:
    assert client_pseudonym(KEYS, "9434765919", "", "") != client_pseudonym(
        OTHER_KEYS, "9434765919", "", "")
    assert remap_uid(KEYS, "1.2.3") != remap_uid(OTHER_KEYS, "1.2.3")


def test_repr_hides_the_key_hash() -> None:
    assert "key_hash" not in repr(client_pseudonym(KEYS, "9434765919", "", ""))


def test_offsets_are_in_range_and_vary_between_clients() -> None:
    offsets = [date_offset_days(KEYS, client_pseudonym(KEYS, None, "S", str(n)).client_id)
               for n in range(200)]
    assert all(-4014 <= o <= -365 for o in offsets)
    assert len(set(offsets)) > 180
    assert date_offset_days(KEYS, "OPTMAAAAAAAAAAAA") == date_offset_days(KEYS, "OPTMAAAAAAAAAAAA")


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20200301", -1, "20200229"),
        ("20190415", -1096, "20160414"),
        ("2019.04.15", -1, "20190414"),
        ("", -10, ""),
        (" 20200101 ", -1, "20191231"),
    ],
)
def test_shift_date(value: str, days: int, expected: str) -> None:
    assert shift_date(value, days) == expected


@pytest.mark.parametrize("value", ["2020013", "20201301", "20200230", "yesterday", "00010101"])
def test_shift_date_rejects_non_dates(value: str) -> None:
    with pytest.raises(ValueError):
        shift_date(value, -400)


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20200301", -1, "20200229"),
        ("202003011230", -1, "202002291230"),
        ("20200301123045.123456+0100", -1, "20200229123045.123456+0100"),
        ("20200301-0500", -1, "20200229-0500"),
        ("202003", -1, "202002"),  # month precision kept
        ("2020", -1, "2019"),  # year precision kept
        ("", -1, ""),
    ],
)
def test_shift_datetime(value: str, days: int, expected: str) -> None:
    assert shift_datetime(value, days) == expected


@pytest.mark.parametrize("value", ["2020010", "2020+0100x", "20200101123045.1234567", "x"])
def test_shift_datetime_rejects_non_datetimes(value: str) -> None:
    with pytest.raises(ValueError):
        shift_datetime(value, -1)


def test_time_is_unchanged_by_a_whole_day_shift() -> None:
    assert shift_time("235959.999999", -1000) == "235959.999999"


def test_intervals_are_exact_under_one_offset() -> None:
    offset = date_offset_days(KEYS, "OPTMABCDEFGHIJKL")
    first, second = shift_date("20150302", offset), shift_date("20180301", offset)
    a = dt.datetime.strptime(first, "%Y%m%d")
    b = dt.datetime.strptime(second, "%Y%m%d")
    assert (b - a).days == 1095


def test_remap_uid_is_deterministic_valid_and_collision_free() -> None:
    uids = [f"1.2.826.0.1.3680043.9.7134.{n}" for n in range(10_000)]
    mapped = [remap_uid(KEYS, u) for u in uids]
    assert len(set(mapped)) == len(uids)
    pattern = re.compile(r"^2\.25\.(0|[1-9][0-9]*)$")
    assert all(len(m) <= 64 and pattern.match(m) for m in mapped)
    assert max(len(m) for m in mapped) <= 44
    assert remap_uid(KEYS, uids[0]) == mapped[0]
    assert remap_uid(KEYS, uids[0] + "\x00") == mapped[0]  # padding ignored


def test_device_pseudonym_fits_sh_and_ae() -> None:
    value = device_pseudonym(KEYS, "SN-81234567")
    assert re.fullmatch(r"DEV[A-Z2-7]{12}", value)
    assert device_pseudonym(KEYS, " SN-81234567 ") == value
    assert device_pseudonym(KEYS, "SN-81234568") != value


@pytest.mark.parametrize(
    ("birth", "on", "expected"),
    [
        ((1958, 3, 12), (2019, 3, 11), "060Y"),
        ((1958, 3, 12), (2019, 3, 12), "061Y"),
        ((2019, 1, 10), (2019, 3, 9), "001M"),
        ((2019, 3, 1), (2019, 3, 20), "002W"),
        ((2019, 3, 1), (2019, 3, 4), "003D"),
        ((2019, 3, 1), (2018, 3, 4), None),
    ],
)
def test_age_string(birth: tuple[int, int, int], on: tuple[int, int, int],
                    expected: str | None) -> None:
    assert age_string(dt.date(*birth), dt.date(*on)) == expected


def test_parse_da() -> None:
    assert parse_da("19580312") == dt.date(1958, 3, 12)
    assert parse_da("19580230") is None
    assert parse_da("") is None
