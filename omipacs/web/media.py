"""Media types and Accept headers, parsed the way DICOMweb viewers actually send them.

STOW-RS bodies are typed by their ``Content-Type`` (PS3.18 §8.6: ``multipart/related``
with a ``type`` and a ``boundary`` parameter) and WADO-RS answers are chosen from the
``Accept`` header (PS3.18 §8.7, RFC 9110 §12.5.1), which may carry ``transfer-syntax``
and ``q`` parameters. The grammar is RFC 9110 §8.3.1 (``type "/" subtype *(";"
parameter)``, a value being a token or a quoted-string), read leniently where real
clients stray from it and strictly where a mistake would change the meaning:

- unquoted values may hold characters outside ``token`` (``type=application/dicom``
  is common, though ``/`` needs quoting);
- empty parameters (``;;``, a trailing ``;``) and empty list elements are skipped, as
  RFC 9110 §5.6.1 allows for lists;
- a bare ``*`` in Accept is read as ``*/*`` (Java's ``HttpURLConnection`` sends it);
- a parameter named twice, a missing ``/``, an unterminated quoted-string or a
  quality that is not a number in [0, 1] raise :class:`~omipacs.errors.BadRequest`,
  because any reading of them would be a guess.

This module has no web framework in it, so the STOW and WADO code can be tested alone.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field

from omipacs.errors import BadRequest

__all__ = [
    "MediaRange",
    "MediaType",
    "format_media_type",
    "parse_accept",
    "parse_content_type",
    "quality",
]

_TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
"""RFC 9110 §5.6.2 token characters."""

_OWS = " \t"
_QVALUE = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)")


def _is_token(value: str) -> bool:
    return bool(value) and all(c in _TCHAR for c in value)


def _quote(value: str) -> str:
    """A parameter value as a token when it is one, else as a quoted-string."""
    if _is_token(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@dataclass(frozen=True)
class MediaType:
    """A media type such as ``multipart/related; type="application/dicom"``.

    Type, subtype and parameter names are case-insensitive (RFC 9110 §8.3.1) and are
    kept in lower case. Parameter values keep their case: ``boundary`` is
    case-sensitive (RFC 2046 §5.1.1); compare others with :meth:`param_is`.
    """

    type: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", self.type.lower())
        object.__setattr__(self, "subtype", self.subtype.lower())
        object.__setattr__(self, "params", {k.lower(): v for k, v in self.params.items()})

    def __hash__(self) -> int:
        return hash((self.type, self.subtype, tuple(sorted(self.params.items()))))

    def __str__(self) -> str:
        parts = [self.essence]
        parts.extend(f"{name}={_quote(value)}" for name, value in self.params.items())
        return "; ".join(parts)

    @property
    def essence(self) -> str:
        """``type/subtype`` without parameters."""
        return f"{self.type}/{self.subtype}"

    def param(self, name: str) -> str | None:
        """The value of parameter ``name`` (any case), or None when absent."""
        return self.params.get(name.lower())

    def param_is(self, name: str, value: str) -> bool:
        """Whether parameter ``name`` equals ``value``, ignoring case.

        Right for media-type valued parameters such as ``type`` and for UIDs; wrong for
        ``boundary``, which is compared exactly.
        """
        mine = self.param(name)
        return mine is not None and mine.lower() == value.lower()


@dataclass(frozen=True)
class MediaRange(MediaType):
    """One element of an Accept header: a media type, perhaps with wildcards, and a weight.

    ``q`` is the RFC 9110 §12.4.2 quality; 0 means "not acceptable". It is not kept in
    :attr:`params`; every other parameter is (DICOMweb puts ``transfer-syntax`` and
    ``charset`` there).
    """

    q: float = 1.0

    def __hash__(self) -> int:
        return hash((super().__hash__(), self.q))

    def __str__(self) -> str:
        base = super().__str__()
        return base if self.q == 1.0 else f"{base}; q={self.q:g}"

    @property
    def specificity(self) -> tuple[int, int]:
        """How specific the range is: (0 ``*/*``, 1 ``type/*``, 2 full type; parameters).

        RFC 9110 §12.5.1: the most specific matching range decides a type's quality.
        """
        if self.type == "*":
            level = 0
        elif self.subtype == "*":
            level = 1
        else:
            level = 2
        return (level, len(self.params))

    def matches(self, media_type: MediaType) -> bool:
        """Whether ``media_type`` falls in this range.

        Wildcards match any type or subtype. Each parameter of the range must be present
        in ``media_type`` with the same value, ignoring case, except that the value
        ``*`` matches any value or none (PS3.18 uses ``transfer-syntax=*``).
        """
        if self.type != "*" and self.type != media_type.type:
            return False
        if self.subtype != "*" and self.subtype != media_type.subtype:
            return False
        for name, value in self.params.items():
            if value == "*":
                continue
            if not media_type.param_is(name, value):
                return False
        return True


def quality(ranges: list[MediaRange], media_type: MediaType) -> float:
    """The quality an Accept header gives ``media_type`` (RFC 9110 §12.5.1).

    The most specific matching range decides, so ``image/*;q=1, image/png;q=0`` refuses
    PNG. An empty header accepts everything (quality 1); a type no range matches gets 0.
    """
    if not ranges:
        return 1.0
    best: MediaRange | None = None
    for candidate in ranges:
        if candidate.matches(media_type) and (
            best is None or candidate.specificity > best.specificity
        ):
            best = candidate
    return 0.0 if best is None else best.q


class _Scanner:
    """A cursor over one header value; the parse functions below drive it."""

    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.pos = 0
        self.what = what

    def fail(self, problem: str) -> BadRequest:
        return BadRequest(f"malformed {self.what}: {problem}")

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ows(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _OWS:
            self.pos += 1

    def token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TCHAR:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted_string(self) -> str:
        """Read a quoted-string (RFC 9110 §5.6.4), the cursor being on its opening quote."""
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif c == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(c)
                self.pos += 1
        raise self.fail("unterminated quoted-string")

    def bare_value(self, stops: str) -> str:
        """An unquoted value: everything up to a stop character, trailing space dropped."""
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in stops:
            self.pos += 1
        return self.text[start : self.pos].rstrip(_OWS)

    def media_type(self, *, in_list: bool) -> tuple[str, str, dict[str, str]]:
        """Read ``type/subtype`` and its parameters; stop at the end (or a list comma)."""
        self.skip_ows()
        type_ = self.token()
        if not type_:
            raise self.fail("expected a media type")
        if self.peek() == "/":
            self.pos += 1
            subtype = self.token()
            if not subtype:
                raise self.fail(f"no subtype after {type_!r}/")
        elif in_list and type_ == "*":
            subtype = "*"
        else:
            raise self.fail(f"expected '/' after {type_!r}")
        params = self.parameters(in_list=in_list)
        return type_.lower(), subtype.lower(), params

    def parameters(self, *, in_list: bool) -> dict[str, str]:
        stops = ";," if in_list else ";"
        params: dict[str, str] = {}
        while True:
            self.skip_ows()
            if self.at_end() or (in_list and self.peek() == ","):
                return params
            if self.peek() != ";":
                raise self.fail(f"unexpected {self.peek()!r} at position {self.pos}")
            self.pos += 1
            self.skip_ows()
            if self.at_end() or self.peek() in stops:
                continue  # an empty parameter: "a/b;;c=d" or a trailing ";"
            name = self.token().lower()
            if not name:
                raise self.fail(f"bad parameter name at position {self.pos}")
            self.skip_ows()
            if self.peek() != "=":
                raise self.fail(f"parameter {name!r} has no value")
            self.pos += 1
            self.skip_ows()
            if self.peek() == '"':
                value = self.quoted_string()
            else:
                value = self.bare_value(stops)
                if not value:
                    raise self.fail(f"parameter {name!r} has an empty value")
            if name in params:
                raise self.fail(f"parameter {name!r} given twice")
            params[name] = value


def parse_content_type(value: str) -> MediaType:
    """Parse a ``Content-Type`` value into a :class:`MediaType`.

    Parameters
    ----------
    value
        The header value, e.g. ``multipart/related; type="application/dicom";
        boundary=abc``.

    Raises
    ------
    BadRequest
        When the value is empty, has a wildcard (a body has one concrete type), or does
        not follow the grammar in the module docstring.
    """
    scanner = _Scanner(value, "media type")
    type_, subtype, params = scanner.media_type(in_list=False)
    if "*" in (type_, subtype):
        raise scanner.fail("a Content-Type cannot contain a wildcard")
    return MediaType(type_, subtype, params)


def parse_accept(value: str) -> list[MediaRange]:
    """Parse an ``Accept`` value into media ranges, most preferred first.

    Order: higher ``q`` first, then more specific ranges, then the order of the header
    (the sort is stable). Ranges with ``q=0`` are kept, at the end, because they refuse a
    type that a wider range would allow; use :func:`quality` to apply them. An empty
    header gives an empty list, which RFC 9110 §12.5.1 reads as "anything".

    Raises
    ------
    BadRequest
        On a malformed range, ``*/subtype``, or a ``q`` that is not a number in [0, 1].
    """
    scanner = _Scanner(value, "Accept header")
    ranges: list[MediaRange] = []
    while True:
        scanner.skip_ows()
        if scanner.at_end():
            break
        if scanner.peek() == ",":
            scanner.pos += 1
            continue
        type_, subtype, params = scanner.media_type(in_list=True)
        if type_ == "*" and subtype != "*":
            raise scanner.fail(f"'*/{subtype}' is not a media range")
        q = 1.0
        if "q" in params:
            raw = params.pop("q")
            if not _QVALUE.fullmatch(raw) or not 0.0 <= float(raw) <= 1.0:
                raise scanner.fail(f"quality {raw!r} is not a number between 0 and 1")
            q = float(raw)
        ranges.append(MediaRange(type_, subtype, params, q=q))
    ranges.sort(key=lambda r: (-r.q, tuple(-n for n in r.specificity)))
    return ranges


def format_media_type(essence: str, params: Mapping[str, str] | None = None) -> str:
    """``essence`` plus parameters, quoting each value only when it is not a token."""
    type_, _, subtype = essence.partition("/")
    return str(MediaType(type_, subtype, dict(params or {})))
