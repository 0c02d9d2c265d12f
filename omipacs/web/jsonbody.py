"""JSON request bodies, bounded before they are parsed.

Every JSON body the web layer accepts is read through :func:`read_json`: at most
``[http] max_json_bytes`` are read (a larger ``Content-Length`` is refused before any
byte is), the text must be UTF-8 (RFC 8259 §8.1), and its nesting depth is measured on
the raw text before ``json.loads`` sees it. A body nested 100,000 levels deep would
otherwise exhaust the parser's recursion (a 500), and any code walking the parsed value
after it; no record the archive accepts is deeper than a few levels.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import numpy as np
from flask import Request

from omipacs.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

MAX_DEPTH: Final = 64
"""Deepest nesting of arrays and objects accepted."""

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` in JSON ``text`` (brackets in strings ignored).

    Linear in the text and done by regular expressions and numpy, so a hostile body
    costs little more than reading it. Unbalanced brackets are left to the parser.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps, dtype=np.int32).max())


def read_json(request: Request, max_bytes: int) -> Any:
    """The request's JSON body, or a 4xx with the reason it was refused."""
    if not request.is_json:
        raise UnsupportedMediaType("expected application/json")
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise PayloadTooLarge(f"JSON body larger than {max_bytes} bytes")
    data = request.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"JSON body larger than {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("JSON body is not UTF-8") from None
    if nesting_depth(text) > MAX_DEPTH:
        raise BadRequest(f"JSON body nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest("request body is not valid JSON") from None
