"""Keyed pseudonyms: client IDs, date offsets, UIDs and device identifiers.

Every function here is a pure function of the keys and its input, so the same woman,
study or instance gets the same pseudonym on every site, every re-send and every
re-ingest, and nothing has to be looked up to make one (docs/deidentification.md).

* Client ID: ``"OPTM" + base32(HMAC(K_client, NHS number))[:12]`` when the NHS number is
  valid (linked across sites); otherwise ``"UNLK" + base32(HMAC(K_client, issuer, local
  ID))[:12]`` and the client is flagged unlinked.
* Date offset: ``-(HMAC(K_date, client ID) % 3650 + 365)`` days, one offset per client,
  so every interval between that client's dates is exact.
* UID: ``"2.25." + int(HMAC(K_uid, uid)[:16])``, at most 44 characters (PS3.5 B.2).
* Device: ``"DEV" + base32(HMAC(K_device, value))[:12]``, 15 characters, fits SH and AE.

Dates are shifted by whole days, so a time of day (TM) never changes and a DT keeps its
time, fraction and UTC offset; nothing can cross midnight.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final

from omipacs.deid.keys import DeidKeys

LINKED_PREFIX: Final = "OPTM"
"""Prefix of a client ID derived from a valid NHS number."""
UNLINKED_PREFIX: Final = "UNLK"
"""Prefix of a client ID derived from a site-local identifier."""
DEVICE_PREFIX: Final = "DEV"
MIN_OFFSET_DAYS: Final = 365
OFFSET_RANGE_DAYS: Final = 3650


@dataclass(frozen=True)
class ClientPseudonym:
    """The pseudonymous identity of one client (a screened woman)."""

    client_id: str
    """16 characters: ``OPTM`` or ``UNLK`` and 12 base32 characters; the new Patient ID."""
    linked: bool
    """True when derived from a valid NHS number, so records from any site link."""
    key_hash: str = ""
    """Hex of the full keyed hash; the key of the identity map, never published."""

    def __repr__(self) -> str:
        return f"ClientPseudonym(client_id={self.client_id!r}, linked={self.linked})"


def _mac(key: bytes, *parts: str) -> bytes:
    # Length-prefixing the parts makes ("ab", "c") and ("a", "bc") different messages.
    message = b"".join(len(p.encode()).to_bytes(4, "big") + p.encode() for p in parts)
    return hmac.new(key, message, hashlib.sha256).digest()


def keyed_hex(keys: DeidKeys, label: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` under the client key, namespaced by ``label``, as hex.

    For keyed hashes that are looked up but never published (the withdrawal tombstone).
    """
    return _mac(keys.client_key, label, value).hex()


def _b32(digest: bytes, length: int) -> str:
    return base64.b32encode(digest).decode("ascii")[:length]


def client_pseudonym(
    keys: DeidKeys, nhs_number: str | None, issuer: str, local_id: str
) -> ClientPseudonym:
    """The client pseudonym for a patient.

    Parameters
    ----------
    keys
        The archive's keys.
    nhs_number
        A valid, normalised NHS number (see :func:`omipacs.deid.nhs.find_nhs_number`),
        or ``None``.
    issuer, local_id
        Used only without an NHS number: the namespace of the local identifier (the
        engine passes the sending site and the Issuer of Patient ID) and the identifier.
    """
    if nhs_number:
        digest = _mac(keys.client_key, "nhs", nhs_number)
        return ClientPseudonym(LINKED_PREFIX + _b32(digest, 12), True, digest.hex())
    digest = _mac(keys.client_key, "local", issuer, local_id)
    return ClientPseudonym(UNLINKED_PREFIX + _b32(digest, 12), False, digest.hex())


EPISODE_PREFIX: Final = "EP"


def episode_pseudonym(keys: DeidKeys, client_id: str, episode_id: str) -> str:
    """A keyed stand-in for a screening system's episode ID: ``EP`` + 12 base32.

    Episode IDs are made by the screening office and may embed the NHS number or a
    date; the pseudonym is the same for the same client and episode on every import.
    """
    return EPISODE_PREFIX + _b32(_mac(keys.client_key, "episode", client_id,
                                      episode_id.strip()), 12)


def study_key(keys: DeidKeys, site: str, kind: str, value: str) -> str:
    """The keyed hash naming a study in the identity map: ``kind`` is ``uid`` or ``accession``.

    Namespaced by the sending site, so one site's accession numbers never bind another
    site's studies.
    """
    return _mac(keys.client_key, "study", site, kind, value.strip(" \x00")).hex()


def date_offset_days(keys: DeidKeys, client_id: str) -> int:
    """Days to add to every date of ``client_id``: between -4014 and -365 inclusive."""
    value = int.from_bytes(_mac(keys.date_key, client_id)[:8], "big")
    return -(value % OFFSET_RANGE_DAYS + MIN_OFFSET_DAYS)


def remap_uid(keys: DeidKeys, uid: str) -> str:
    """The deterministic ``2.25`` UID for ``uid`` (trailing padding ignored).

    A 128-bit integer has at most 39 digits, so the result is at most 44 characters and,
    like every ``2.25`` UID, has no leading zero in its last component (PS3.5 9.1).
    """
    digest = hmac.new(keys.uid_key, uid.strip(" \x00").encode("ascii", "replace"),
                      hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def device_pseudonym(keys: DeidKeys, value: str) -> str:
    """A keyed 15-character stand-in for a device serial number or station name."""
    return DEVICE_PREFIX + _b32(_mac(keys.device_key, value.strip()), 12)


# -- dates -----------------------------------------------------------------------------

_DA: Final = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")
_DT: Final = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?([+-]\d{4})?$"
)


def shift_date(value: str, days: int) -> str:
    """Shift a DA value (``YYYYMMDD``; the ACR-NEMA ``YYYY.MM.DD`` is read too).

    An empty value stays empty.

    Raises
    ------
    ValueError
        The value is not a date; the engine then removes the element.
    """
    text = value.strip()
    if not text:
        return ""
    match = _DA.match(text)
    if match is None:
        raise ValueError("not a DA value")
    year, month, day = (int(g) for g in match.groups())
    try:
        shifted = dt.date(year, month, day) + dt.timedelta(days=days)
    except OverflowError:
        raise ValueError("shifted DA out of range") from None
    return f"{shifted.year:04d}{shifted.month:02d}{shifted.day:02d}"


def shift_datetime(value: str, days: int) -> str:
    """Shift the date part of a DT value, keeping precision, time and UTC offset.

    ``YYYYMMDD...`` is shifted exactly. A DT with only a year or a year and month is
    shifted from the first day of that period and written back at the same precision,
    so intervals at that precision remain as close as the precision allows.

    Raises
    ------
    ValueError
        The value is not a DT.
    """
    text = value.strip()
    if not text:
        return ""
    match = _DT.match(text)
    if match is None:
        raise ValueError("not a DT value")
    year_s, month_s, day_s, rest, offset = match.groups()
    if day_s is None and rest:
        raise ValueError("not a DT value")
    try:
        start = dt.date(int(year_s), int(month_s or 1), int(day_s or 1))
        date = start + dt.timedelta(days=days)
    except OverflowError:
        raise ValueError("shifted DT out of range") from None
    out = f"{date.year:04d}"
    if month_s is not None:
        out += f"{date.month:02d}"
    if day_s is not None:
        out += f"{date.day:02d}"
    return out + (rest or "") + (offset or "")


def shift_time(value: str, days: int) -> str:
    """A TM value under a whole-day shift: unchanged, by design (see the module notes)."""
    del days
    return value


def age_string(birth: dt.date, on: dt.date) -> str | None:
    """The DICOM AS value (PS3.5 Table 6.2-1) for a person born on ``birth``, at ``on``.

    Years when at least one, else months, weeks or days; ``None`` if ``on`` precedes
    ``birth`` or the age exceeds 999 years.
    """
    if on < birth:
        return None
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    if years >= 1:
        return f"{years:03d}Y" if years <= 999 else None
    months = (on.year - birth.year) * 12 + on.month - birth.month - (on.day < birth.day)
    if months >= 1:
        return f"{months:03d}M"
    days = (on - birth).days
    return f"{days // 7:03d}W" if days >= 7 else f"{days:03d}D"


OLDEST_AGE: Final = 89
"""Ages above this are aggregated (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)(i)(C))."""


def aggregate_age(value: str, oldest: int = OLDEST_AGE) -> str:
    """An AS value with every age over ``oldest`` years given as ``oldest + 1`` years.

    So ``093Y`` becomes ``090Y`` by default: the rare very old woman is one of a group,
    not herself. Ages in days, weeks or months are always younger. A value that is not
    an age is returned unchanged (the profile decides about it).
    """
    text = value.strip()
    if len(text) == 4 and text[:3].isdigit() and text[3] == "Y" and int(text[:3]) > oldest:
        return f"{oldest + 1:03d}Y"
    return value


def parse_da(value: str) -> dt.date | None:
    """A DA value as a date, or ``None`` if it is not one."""
    match = _DA.match(value.strip())
    if match is None:
        return None
    try:
        return dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        return None
