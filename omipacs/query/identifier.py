"""C-FIND identifiers (PS3.4 C.4.1) as the same typed query QIDO-RS parameters become.

A C-FIND request names a Query/Retrieve level and carries a data set whose elements
are the keys: an element with a value is a matching key, an empty one a return key.
This module turns that data set into a :class:`~omipacs.query.params.QidoQuery` through
:func:`~omipacs.query.params.key_filter`, the function QIDO-RS parameters go through,
so a key matches the same rows whichever door it came through: UID lists, ``*`` and
``?`` wild cards, date and time ranges, person names without regard to case, the
mammography attributes at image level. :func:`find` then pages through
:func:`~omipacs.query.search.search` and turns each DICOM JSON match back into a data set
holding exactly the keys asked for.

Where C-FIND and QIDO-RS differ, each follows its own standard:

- An attribute the archive does not hold is an *unsupported optional key*: C-FIND
  returns it with no value and does not match on it (PS3.4 C.2.2.1.3), where QIDO-RS
  refuses an unknown parameter (a misspelt parameter would silently widen a search).
- The response carries the unique key of each level from the model's top down to the
  queried one (PS3.4 C.4.1.2.2.1), besides the keys requested.
- Unique keys of the levels above need not be given: a SERIES query without a
  StudyInstanceUID searches every study, as QIDO-RS's ``/series`` does.
- The number of matches is capped; past the cap :class:`~omipacs.errors.TooManyMatches`
  (0xA700, with a comment saying so) ends the answer, after the first matches were sent.

Values in the index are the archive's de-identified ones, so every response carries the
pseudonymous Patient ID, name and UIDs, never an identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from sqlalchemy.orm import Session

from omipacs.errors import InvalidQuery, TooManyMatches
from omipacs.index.visibility import Visibility
from omipacs.query.attributes import BY_KEYWORD, Attribute, Level, UnknownAttribute, rank, resolve
from omipacs.query.params import MAX_PARAMETERS, Filter, QidoQuery, key_filter
from omipacs.query.search import search

Model = Literal["patient", "study"]
"""The information model: Patient Root or Study Root."""

#: QueryRetrieveLevel values (PS3.4 C.6) and the query service's levels.
QR_LEVELS: dict[str, Level] = {
    "PATIENT": "patient",
    "STUDY": "study",
    "SERIES": "series",
    "IMAGE": "instance",
}
#: The unique key of each level (PS3.4 C.6.1.1, C.6.2.1).
UNIQUE_KEYS: dict[Level, str] = {
    "patient": "PatientID",
    "study": "StudyInstanceUID",
    "series": "SeriesInstanceUID",
    "instance": "SOPInstanceUID",
}
#: Elements of an identifier that are not keys.
_CONTROL = frozenset(
    {
        0x00080005,  # SpecificCharacterSet
        0x00080052,  # QueryRetrieveLevel
        0x00080053,  # QueryRetrieveView
        0x00080201,  # TimezoneOffsetFromUTC
        0x00080054,  # RetrieveAETitle: filled in by the adapter, which knows its AE title
    }
)
_TOP: dict[Model, Level] = {"patient": "patient", "study": "study"}


@dataclass(frozen=True)
class FindRequest:
    """A C-FIND identifier, validated.

    Attributes
    ----------
    query
        The search, in the form QIDO-RS parameters are parsed into.
    qr_level
        The QueryRetrieveLevel as the peer wrote it (echoed in every response).
    unsupported
        Tags the peer asked for that the archive holds no value for; returned empty.
    retrieve_ae_title
        The peer asked for RetrieveAETitle (0008,0054).
    """

    query: QidoQuery
    qr_level: str
    unsupported: tuple[int, ...] = ()
    retrieve_ae_title: bool = False


def level_of(identifier: Dataset, model: Model) -> tuple[str, Level]:
    """The QueryRetrieveLevel of ``identifier``, checked against the model."""
    raw = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    level = QR_LEVELS.get(raw)
    if level is None:
        raise InvalidQuery("QueryRetrieveLevel must be PATIENT, STUDY, SERIES or IMAGE")
    if rank(level) < rank(_TOP[model]):
        raise InvalidQuery("the Study Root model has no PATIENT level")
    return raw, level


def _text(elem: DataElement) -> str:
    """An element's value in the QIDO-RS text form (values joined by ``\\``)."""
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, bytes):
        raise InvalidQuery(f"{elem.keyword or 'a key'}: value is not text")
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join("" if v is None else str(v) for v in value)
    return str(value)


def _name(tag: int) -> str:
    return keyword_for_tag(tag) or f"{tag:08X}"


def _keys(ds: Dataset, prefix: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], str]]:
    """(tag path, value) of every key; a sequence item's elements as paths into it."""
    for elem in ds:
        tag = int(elem.tag)
        if not prefix and (tag in _CONTROL or elem.tag.group == 0x0002):
            continue
        path = (*prefix, tag)
        if elem.VR == "SQ":
            items = list(elem.value or [])
            if len(items) > 1:
                raise InvalidQuery(f"{_name(tag)}: a sequence key has at most one item")
            inner = list(_keys(items[0], path)) if items else []
            matching = [(p, v) for p, v in inner if v != ""]
            # An empty sequence, or one whose item only names return keys, asks for the
            # sequence; values inside it are matching keys on its attributes.
            yield from matching or [(path, "")]
            continue
        yield path, _text(elem)


def _resolve(tags: tuple[int, ...]) -> tuple[Attribute, ...] | None:
    try:
        return resolve(".".join(_name(t) for t in tags))
    except (UnknownAttribute, ValueError):
        return None


def parse_identifier(identifier: Dataset, model: Model, *, page: int = 100) -> FindRequest:
    """Translate a C-FIND identifier into a :class:`FindRequest`.

    Parameters
    ----------
    identifier
        The request's data set (pynetdicom decodes it with its Specific Character Set).
    model
        ``"patient"`` for Patient Root, ``"study"`` for Study Root.
    page
        Matches read per database query.

    Raises
    ------
    InvalidQuery
        For a missing or wrong QueryRetrieveLevel, or a key whose value cannot be
        matched (a malformed UID, date or range, a key below the queried level with a
        value): the peer gets 0xA900 with the reason.
    """
    qr_level, level = level_of(identifier, model)
    filters: list[Filter] = []
    fields: dict[int, Attribute] = {}
    unsupported: list[int] = []
    count = 0
    for tags, value in _keys(identifier):
        count += 1
        if count > MAX_PARAMETERS:
            raise InvalidQuery(f"more than {MAX_PARAMETERS} keys")
        path = _resolve(tags)
        name = ".".join(_name(t) for t in tags)
        if path is None or (value == "" and not path[0].returnable_at(level)):
            if len(tags) == 1 and tags[0] not in unsupported:
                unsupported.append(tags[0])
            continue
        if value != "":
            filters.append(key_filter(name, path, value, level))
        if path[0].returnable_at(level):
            fields.setdefault(path[0].tag, path[0])
    top = _TOP[model]
    for lvl in (lv for lv in UNIQUE_KEYS if rank(top) <= rank(lv) <= rank(level)):
        unique = BY_KEYWORD[UNIQUE_KEYS[lvl]]
        fields.setdefault(unique.tag, unique)
    query = QidoQuery(
        level=level,
        filters=tuple(f for f in filters if not f.is_universal),
        fields=tuple(sorted(fields.values(), key=lambda a: a.tag)),
        limit=page,
    )
    return FindRequest(
        query=query,
        qr_level=qr_level,
        unsupported=tuple(unsupported),
        retrieve_ae_title="RetrieveAETitle" in identifier,
    )


def response(request: FindRequest, match: dict[str, Any], *, ae_title: str) -> Dataset:
    """The C-FIND response identifier for one DICOM JSON match."""
    ds = Dataset.from_json(match)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = request.qr_level
    if request.retrieve_ae_title:
        ds.RetrieveAETitle = ae_title
    for tag in request.unsupported:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue  # a private or unknown tag: nothing sensible to echo
        ds.add(DataElement(tag, vr, None))
    return ds


def find(
    sessions: Callable[[], AbstractContextManager[Session]],
    request: FindRequest,
    *,
    ae_title: str,
    max_results: int,
    restrict: Visibility | None = None,
) -> Iterator[Dataset]:
    """Every match of ``request`` as a response identifier, a page at a time.

    A generator: the adapter stops iterating when the peer cancels, and no page beyond
    the one being sent is read. Raises :class:`TooManyMatches` after ``max_results``
    matches if more exist.
    """
    query = request.query
    sent = 0
    while True:
        with sessions() as session:
            result = search(session, query, restrict=restrict)
        for item in result.items:
            if sent >= max_results:
                raise TooManyMatches(
                    f"more than {max_results} matches: the first {max_results} were "
                    "sent; narrow the query"
                )
            sent += 1
            yield response(request, item, ae_title=ae_title)
        if not result.truncated:
            return
        query = dataclasses.replace(query, offset=query.offset + query.limit)


def parse_retrieve(identifier: Dataset, model: Model) -> QidoQuery:
    """The instances a C-MOVE or C-GET identifier names, as an instance-level query.

    PS3.4 C.4.2.2.1: the identifier holds the unique keys from the model's top down to
    the QueryRetrieveLevel, the last one possibly a list (``\\``-separated UIDs); other
    keys are ignored. The query is run by
    :func:`omipacs.retrieve.locate.locate_matching` under the same restriction a C-FIND
    gets.
    """
    _, level = level_of(identifier, model)
    filters: list[Filter] = []
    top = _TOP[model]
    for lvl in (lv for lv in UNIQUE_KEYS if rank(top) <= rank(lv) <= rank(level)):
        keyword = UNIQUE_KEYS[lvl]
        elem = identifier.get(keyword)
        value = "" if elem is None else _text(identifier[keyword])
        if value == "" or "*" in value or "?" in value:
            if lvl == level:
                raise InvalidQuery(f"{keyword} must name what to retrieve")
            continue
        filters.append(key_filter(keyword, (BY_KEYWORD[keyword],), value, "instance"))
    return QidoQuery(level="instance", filters=tuple(filters), limit=1)
