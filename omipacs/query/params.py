"""QIDO-RS request parameters (PS3.18 §8.3.4, §10.6.1) parsed into a typed, frozen query.

Everything a client sends is checked here, before any SQL is built: names must be
attributes the index holds, values must be valid for the attribute's VR, sizes are
capped. A bad parameter raises :class:`~omipacs.errors.InvalidQuery` (HTTP 400) with a
reason that names the parameter but never echoes its value (it may be a patient's
name).

Matching follows PS3.4 C.2.2.2:

- empty value, or ``*`` alone: universal matching (the attribute is only returned);
- UI: single value or UID list matching; values separated by ``\\`` or ``,``, each a
  valid UID (PS3.5 §9.1), at most :data:`MAX_LIST_VALUES`;
- text VRs (AE, AS, CS, LO, PN, SH): single value, or wild card matching with ``*``
  (any run of characters) and ``?`` (one character); nothing else is a wild card, so
  ``%`` and ``_`` match themselves. A ``\\``-separated list (and for CS a ``,``-separated
  one) matches if any of its values does, e.g. ``ModalitiesInStudy=MG\\SR``;
- DA and TM: single value or range matching (``a-b``, ``-b``, ``a-``); a TM value
  covers its own precision (``0830`` is 08:30:00 to 08:30:59.999999);
- IS, US and DS (an extension): a non-negative number, or a range of them.

``fuzzymatching=true`` makes PN matching of a value without wild cards match every
name in which each word of the value begins a name component (``fuzzymatching=true&
PatientName=jo sm`` finds ``SMITH^JOHN``). Person names are always matched without
regard to case (PS3.18 §8.3.4.1).

Parameters other than attributes: ``limit``, ``offset``, ``fuzzymatching`` and
``includefield``. ``_`` (a browser cache buster) and ``accept``/``charset`` (content
negotiation, PS3.18 §8.3.3, the web layer's business) are accepted and ignored.

Unknown parameters are handled one way, by what their name is:

- a top-level DICOM attribute (a data dictionary keyword, or any tag) the archive does
  not index, e.g. ``PatientWeight=70``: not matched, as PS3.4 C.2.2.1.3 treats an unsupported
  optional key, and named in the response's ``Warning: 299`` (so the wider answer is
  never silent); C-FIND answers the same key the same way;
- anything else (``orderby``, a misspelt keyword, a sequence path the archive does not
  hold): 400, naming the parameter, since no
  reading of it can be right and ignoring it would return wrong matches.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from omipacs.dicom.uids import is_valid_uid
from omipacs.errors import InvalidQuery
from omipacs.query.attributes import (
    ATTRIBUTES,
    BY_KEYWORD,
    DEFAULTS,
    LEVELS,
    Attribute,
    Level,
    UnknownAttribute,
    rank,
    resolve,
)

#: At most this many query parameters (a key repeated a thousand times is refused).
MAX_PARAMETERS = 100
#: Longest parameter name, in characters.
MAX_NAME_LENGTH = 256
#: Longest value of any parameter other than a UID list, in characters.
MAX_VALUE_LENGTH = 1024
#: Most values in one list (UID list matching, or a ``\\`` list of other values).
MAX_LIST_VALUES = 1000
#: Longest UID list: MAX_LIST_VALUES UIDs of 64 characters and their separators.
MAX_UID_LIST_LENGTH = MAX_LIST_VALUES * 65
#: Most attributes named by ``includefield`` parameters together.
MAX_INCLUDEFIELDS = 200
#: Offsets beyond this are clamped (no index is that big; keeps values inside int64).
MAX_OFFSET = 2**62

RESERVED = frozenset({"limit", "offset", "fuzzymatching", "includefield"})
IGNORED = frozenset({"_", "accept", "charset"})

_TEXT_VRS = frozenset({"AE", "AS", "CS", "LO", "PN", "SH", "LT", "ST", "UC", "UT"})
_NUMBER_VRS = frozenset({"IS", "US", "DS"})
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_INT_RE = re.compile(r"^[0-9]{1,12}$")
_NUMBER_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,12})?$")
_DA_RE = re.compile(r"^[0-9]{8}$")
_TM_RE = re.compile(r"^([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:\.([0-9]{1,6}))?)?)?$")
_DIGITS_RE = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class Equals:
    """Single value matching (PS3.4 C.2.2.2.1)."""

    value: str | int | float | date


@dataclass(frozen=True)
class Wildcard:
    """Wild card matching (PS3.4 C.2.2.2.4): ``*`` any run, ``?`` one character."""

    pattern: str


@dataclass(frozen=True)
class Between:
    """Range matching (PS3.4 C.2.2.2.5); either end may be open."""

    low: str | int | float | date | None
    high: str | int | float | date | None


Term = Equals | Wildcard | Between


@dataclass(frozen=True)
class Filter:
    """One matching key: the attribute path and the terms, any of which may match.

    ``terms`` is empty for universal matching (the key is only returned). ``uids`` is
    set for UID list matching so the SQL uses one ``IN``.
    """

    path: tuple[Attribute, ...]
    terms: tuple[Term, ...] = ()
    uids: tuple[str, ...] = ()

    @property
    def attribute(self) -> Attribute:
        """The attribute whose column is compared (the innermost of the path)."""
        return self.path[-1]

    @property
    def top(self) -> Attribute:
        """The top-level attribute returned for this key."""
        return self.path[0]

    @property
    def is_universal(self) -> bool:
        """True when the key only asks for the attribute to be returned."""
        return not self.terms and not self.uids


@dataclass(frozen=True)
class QidoQuery:
    """A validated QIDO-RS search, ready for :func:`omipacs.query.search.search`.

    Attributes
    ----------
    level
        What is searched for: studies, series or instances.
    study_uid, series_uid
        From the URL (``/studies/{study}/series``); ``None`` for relational searches.
    filters
        Matching keys, in the order given.
    fields
        Top-level attributes returned for each match, by tag.
    limit, offset
        The page; ``limit`` is already clamped to the server's maximum.
    fuzzymatching
        The client asked for fuzzy person name matching.
    limit_clamped
        The client asked for more results per page than the server returns.
    ignored_fields
        ``includefield`` names the archive holds no value for (DICOM attributes it does
        not index, or lower-level unique keys); the web layer may warn about them.
    """

    level: Level
    study_uid: str | None = None
    series_uid: str | None = None
    filters: tuple[Filter, ...] = ()
    fields: tuple[Attribute, ...] = ()
    limit: int = 100
    offset: int = 0
    fuzzymatching: bool = False
    limit_clamped: bool = False
    ignored_fields: tuple[str, ...] = field(default=())
    ignored_keys: tuple[str, ...] = field(default=())
    """Matching keys naming DICOM attributes the archive does not index: not matched
    (the search is wider than asked), and the web layer says so in a Warning."""


def _check_value(name: str, value: str, limit: int = MAX_VALUE_LENGTH) -> None:
    if len(value) > limit:
        raise InvalidQuery(f"{name}: value longer than {limit} characters")
    if _CONTROL_RE.search(value):
        raise InvalidQuery(f"{name}: value contains control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidQuery(f"{name}: value is not valid text") from None


def _count(name: str, value: str) -> int:
    if not _DIGITS_RE.match(value):
        raise InvalidQuery(f"{name} must be a non-negative integer")
    if len(value) > 30:
        return MAX_OFFSET
    return int(value)


def _bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise InvalidQuery(f"{name} must be true or false")
    return lowered == "true"


def _date(name: str, value: str) -> date:
    if not _DA_RE.match(value):
        raise InvalidQuery(f"{name}: a date must be YYYYMMDD")
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise InvalidQuery(f"{name}: not a valid date") from None


def _time_bounds(name: str, value: str) -> tuple[str, str]:
    """The first and last HHMMSS.FFFFFF strings a TM value of some precision covers."""
    m = _TM_RE.match(value)
    if not m:
        raise InvalidQuery(f"{name}: a time must be HH, HHMM, HHMMSS or HHMMSS.FFFFFF")
    hh, mm, ss, frac = m.groups()
    if int(hh) > 23 or (mm and int(mm) > 59) or (ss and int(ss) > 60):
        raise InvalidQuery(f"{name}: not a valid time")
    # Trailing zeros of the fraction are dropped from the lower bound, so that 141500.0
    # still matches a stored 141500 (the same instant, compared as text).
    kept = (frac or "").rstrip("0")
    low = hh + (mm or "00") + (ss or "00") + ("." + kept if kept else "")
    high = hh + (mm or "59") + (ss or "59") + "." + (frac or "").ljust(6, "9")
    return low, high


def _split_range(name: str, value: str) -> tuple[str, str] | None:
    if value.count("-") == 0:
        return None
    if value.count("-") > 1:
        raise InvalidQuery(f"{name}: a range has one '-'")
    low, high = value.split("-")
    if not low and not high:
        raise InvalidQuery(f"{name}: a range needs at least one end")
    return low, high


def _ordered(name: str, low: object, high: object) -> None:
    if low is not None and high is not None and low > high:  # type: ignore[operator]
        raise InvalidQuery(f"{name}: range ends are reversed")


def _date_term(name: str, value: str) -> Term:
    parts = _split_range(name, value)
    if parts is None:
        return Equals(_date(name, value))
    low = _date(name, parts[0]) if parts[0] else None
    high = _date(name, parts[1]) if parts[1] else None
    _ordered(name, low, high)
    return Between(low, high)


def _time_term(name: str, value: str) -> Term:
    parts = _split_range(name, value)
    if parts is None:
        return Between(*_time_bounds(name, value))
    low = _time_bounds(name, parts[0])[0] if parts[0] else None
    high = _time_bounds(name, parts[1])[1] if parts[1] else None
    _ordered(name, low, high)
    return Between(low, high)


def _number(name: str, value: str, vr: str) -> int | float:
    pattern = _NUMBER_RE if vr == "DS" else _INT_RE
    if not pattern.match(value):
        kind = "a non-negative decimal number" if vr == "DS" else "a non-negative integer"
        raise InvalidQuery(f"{name}: value must be {kind} or a range of them")
    number = float(value) if vr == "DS" else int(value)
    if not math.isfinite(number):  # pragma: no cover - the pattern bounds the magnitude
        raise InvalidQuery(f"{name}: value out of range")
    return number


def _number_term(name: str, value: str, vr: str) -> Term:
    parts = _split_range(name, value)
    if parts is None:
        return Equals(_number(name, value, vr))
    low = _number(name, parts[0], vr) if parts[0] else None
    high = _number(name, parts[1], vr) if parts[1] else None
    _ordered(name, low, high)
    return Between(low, high)


def _list(name: str, value: str, separators: str) -> list[str]:
    values = [value]
    for sep in separators:
        values = [part for v in values for part in v.split(sep)]
    values = [v for v in values if v != ""]
    if len(values) > MAX_LIST_VALUES:
        raise InvalidQuery(f"{name}: more than {MAX_LIST_VALUES} values")
    return values


def _filter(name: str, path: tuple[Attribute, ...], value: str) -> Filter:
    attr = path[-1]
    vr = attr.vr
    if vr == "UI":
        _check_value(name, value, MAX_UID_LIST_LENGTH)
    else:
        _check_value(name, value)
    if value == "" or (value.strip("*") == "" and vr in _TEXT_VRS):
        return Filter(path)
    if not attr.matchable:
        raise InvalidQuery(f"{name} is a return key only: leave its value empty")
    if vr == "SQ":
        raise InvalidQuery(f"{name}: match on an attribute inside the sequence (Seq.Attr=v)")
    if vr == "UI":
        uids = _list(name, value, "\\,")
        if not all(is_valid_uid(u) for u in uids):
            raise InvalidQuery(f"{name}: not a valid UID (digits and dots, at most 64)")
        return Filter(path, uids=tuple(dict.fromkeys(uids)))
    if vr == "DA":
        return Filter(path, (_date_term(name, value),))
    if vr == "TM":
        return Filter(path, (_time_term(name, value),))
    if vr in _NUMBER_VRS:
        return Filter(path, (_number_term(name, value, vr),))
    values = _list(name, value, "\\," if vr == "CS" else "\\")
    terms: list[Term] = []
    for v in values:
        if v.strip("*") == "":
            return Filter(path)  # one alternative matches everything
        terms.append(Wildcard(v) if ("*" in v or "?" in v) else Equals(v))
    return Filter(path, tuple(dict.fromkeys(terms)))


def key_filter(name: str, path: tuple[Attribute, ...], value: str, level: Level) -> Filter:
    """The matching key ``name`` (resolved to ``path``) with ``value``, at ``level``.

    The one place a key's value becomes matching terms, for QIDO-RS parameters and
    C-FIND identifiers alike (``value`` in the QIDO text form: ``\\`` between values).
    """
    if not path[0].usable_at(level):
        raise InvalidQuery(
            f"{name} is a {path[0].level}-level key: search /{path[0].level}"
            f"{'' if path[0].level == 'series' else 's'} for it"
        )
    return _filter(name, path, value)


def _resolve(name: str, *, what: str) -> tuple[Attribute, ...]:
    try:
        return resolve(name)
    except ValueError:
        raise InvalidQuery(f"{what}: not an attribute keyword, tag or sequence path") from None


def _validate_uid(name: str, uid: str | None) -> str | None:
    if uid is not None and not is_valid_uid(uid):
        raise InvalidQuery(f"{name} in the URL is not a valid UID")
    return uid


def _limit(raw: str | None, default_limit: int, max_limit: int) -> tuple[int, bool]:
    if raw is None:
        return min(default_limit, max_limit), False
    requested = _count("limit", raw)
    if requested == 0:  # "no limit" (as dcm4chee): the server's maximum
        return max_limit, False
    return min(requested, max_limit), requested > max_limit


def parse_qido(
    params: Sequence[tuple[str, str]],
    level: Level,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    default_limit: int = 100,
    max_limit: int = 1000,
) -> QidoQuery:
    """Parse QIDO-RS query parameters for a search at ``level``.

    Parameters
    ----------
    params
        The decoded query string as (name, value) pairs, repeats kept, in order.
    level
        ``"study"``, ``"series"`` or ``"instance"``: what the URL searches for.
    study_uid, series_uid
        The UIDs in the URL, if any (``/studies/{s}/series``, ``/studies/{s}/series/
        {se}/instances``); without them the search is relational (PS3.18 §10.6.1).
    default_limit, max_limit
        Results per page when the client gives no ``limit``, and the most it may ask
        for; a larger ``limit`` is clamped (PS3.18 §8.3.4.4 lets the server return
        fewer), and ``limit=0`` means the maximum.

    Raises
    ------
    InvalidQuery
        For any parameter that cannot be honoured (the HTTP 400 reason says which).
    """
    if level not in LEVELS:
        raise ValueError(f"unknown QIDO level {level!r}")
    if level == "study" and series_uid is not None:
        raise ValueError("a study search has no series in its URL")
    if not 0 < default_limit <= max_limit:
        raise ValueError("need 0 < default_limit <= max_limit")
    if len(params) > MAX_PARAMETERS:
        raise InvalidQuery(f"more than {MAX_PARAMETERS} query parameters")
    study_uid = _validate_uid("StudyInstanceUID", study_uid)
    series_uid = _validate_uid("SeriesInstanceUID", series_uid)

    controls: dict[str, str] = {}
    include: list[str] = []
    filters: list[Filter] = []
    unmatched: list[str] = []
    seen: set[tuple[int, ...]] = set()
    for name, value in params:
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidQuery("a query parameter name is too long")
        if name in IGNORED:
            continue
        if name == "includefield":
            _check_value(name, value)
            include.extend(v.strip() for v in value.split(",") if v.strip())
            if len(include) > MAX_INCLUDEFIELDS:
                raise InvalidQuery(f"includefield names more than {MAX_INCLUDEFIELDS} fields")
            continue
        if name in RESERVED:
            if name in controls:
                raise InvalidQuery(f"{name} is given more than once")
            _check_value(name, value)
            controls[name] = value
            continue
        try:
            path = _resolve(name, what="query parameter")
        except UnknownAttribute as unknown:
            if not unknown.dicom or "." in name:
                reason = (
                    "is not a path the archive can match"
                    if unknown.dicom
                    else "is not a query parameter or attribute keyword"
                )
                raise InvalidQuery(f"{name} {reason}") from None
            _check_value(name, value)
            unmatched.append(name)
            continue
        key = tuple(a.tag for a in path)
        if key in seen:
            raise InvalidQuery(f"{name} is given more than once")
        seen.add(key)
        filters.append(key_filter(name, path, value, level))

    limit, clamped = _limit(controls.get("limit"), default_limit, max_limit)
    offset = min(_count("offset", controls["offset"]), MAX_OFFSET) if "offset" in controls else 0
    fuzzy = (
        _bool("fuzzymatching", controls["fuzzymatching"]) if "fuzzymatching" in controls else False
    )
    fields, ignored = _fields(level, study_uid, series_uid, filters, include)
    return QidoQuery(
        level=level,
        study_uid=study_uid,
        series_uid=series_uid,
        filters=tuple(filters),
        fields=fields,
        limit=limit,
        offset=offset,
        fuzzymatching=fuzzy,
        limit_clamped=clamped,
        ignored_fields=tuple(ignored),
        ignored_keys=tuple(unmatched),
    )


def _fields(
    level: Level,
    study_uid: str | None,
    series_uid: str | None,
    filters: list[Filter],
    include: list[str],
) -> tuple[tuple[Attribute, ...], list[str]]:
    """Return attributes: the level's defaults, the higher levels' defaults for a
    relational search (PS3.18 §10.6.3.3), every matching key and every includefield."""
    chosen: dict[int, Attribute] = {}

    def add(attr: Attribute) -> None:
        chosen.setdefault(attr.tag, attr)

    for keyword in DEFAULTS[level]:
        add(BY_KEYWORD[keyword])
    if level != "study" and study_uid is None:
        for keyword in DEFAULTS["study"]:
            add(BY_KEYWORD[keyword])
    if level == "instance" and series_uid is None:
        for keyword in DEFAULTS["series"]:
            add(BY_KEYWORD[keyword])
    for f in filters:
        if f.top.returnable_at(level):
            add(f.top)
    ignored: list[str] = []
    for name in include:
        if name == "all":
            for attr in ATTRIBUTES:
                if rank(attr.level) <= rank(level):
                    add(attr)
            continue
        try:
            path = _resolve(name, what="includefield")
        except UnknownAttribute as unknown:
            if not unknown.dicom:
                raise InvalidQuery(
                    "includefield names something that is not a DICOM attribute"
                ) from None
            ignored.append(name)
            continue
        if path[0].returnable_at(level):
            add(path[0])
        else:
            ignored.append(name)
    return tuple(sorted(chosen.values(), key=lambda a: a.tag)), ignored
