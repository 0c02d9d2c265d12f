"""Media types and Accept headers as DICOMweb viewers send them (PS3.18 §8.7, RFC 9110)."""

from __future__ import annotations

import pytest

from omipacs.errors import BadRequest
from omipacs.web.media import (
    MediaRange,
    MediaType,
    format_media_type,
    parse_accept,
    parse_content_type,
    quality,
)


@pytest.mark.parametrize(
    ("value", "essence", "params"),
    [
        (
            'multipart/related; type="application/dicom"',
            "multipart/related",
            {"type": "application/dicom"},
        ),
        (
            "multipart/related; type=application/dicom; transfer-syntax=*",
            "multipart/related",
            {"type": "application/dicom", "transfer-syntax": "*"},
        ),
        (
            'multipart/related;type="application/octet-stream";transfer-syntax=1.2.840.10008.1.2.1',
            "multipart/related",
            {"type": "application/octet-stream", "transfer-syntax": "1.2.840.10008.1.2.1"},
        ),
        ("application/dicom+json", "application/dicom+json", {}),
        ("  Application/DICOM+JSON  ", "application/dicom+json", {}),
        (
            'Multipart/Related; Type="application/dicom"; BOUNDARY=AbC-123',
            "multipart/related",
            {"type": "application/dicom", "boundary": "AbC-123"},
        ),
        (
            'multipart/related; boundary="a \\"quoted\\" \\\\ b"',
            "multipart/related",
            {"boundary": 'a "quoted" \\ b'},
        ),
        (
            'multipart/related; type="application/dicom; transfer-syntax=1.2"',
            "multipart/related",
            {"type": "application/dicom; transfer-syntax=1.2"},
        ),
        ("application/dicom;", "application/dicom", {}),
        ("application/json ; ; charset = utf-8 ;", "application/json", {"charset": "utf-8"}),
        (
            "multipart/related; boundary=DICOM DATA BOUNDARY",
            "multipart/related",
            {"boundary": "DICOM DATA BOUNDARY"},
        ),
        ("multipart/related; boundary=a,b", "multipart/related", {"boundary": "a,b"}),
        ('text/plain; charset=""', "text/plain", {"charset": ""}),
    ],
)
def test_parse_content_type(value: str, essence: str, params: dict[str, str]) -> None:
    media = parse_content_type(value)
    assert media.essence == essence
    assert media.params == params


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "application",
        "application/",
        "/dicom",
        "application/dicom; type",
        "application/dicom; type=",
        'application/dicom; x="unterminated',
        "application/dicom; x=1; X=2",
        "application/dicom; =x",
        "application/dicom extra",
        "*/*",
        "image/*",
        "application/dicom, application/json",
    ],
)
def test_parse_content_type_rejects(value: str) -> None:
    with pytest.raises(BadRequest, match="malformed media type"):
        parse_content_type(value)


@pytest.mark.parametrize(
    "value",
    [
        'multipart/related; type="application/dicom"; boundary="a b"',
        "application/dicom+json",
        'multipart/related; type="application/dicom; x=\\"y\\""; boundary=abc',
    ],
)
def test_media_type_string_round_trips(value: str) -> None:
    media = parse_content_type(value)
    assert parse_content_type(str(media)) == media


def test_media_type_normalises_and_hashes() -> None:
    media = MediaType("Multipart", "Related", {"Type": "application/dicom"})
    assert media.essence == "multipart/related"
    assert media.param("TYPE") == "application/dicom"
    assert media.param("boundary") is None
    assert media.param_is("type", "Application/DICOM")
    assert not media.param_is("type", "application/octet-stream")
    assert not media.param_is("boundary", "x")
    assert len({media, parse_content_type('multipart/related; type="application/dicom"')}) == 1


def test_format_media_type_quotes_only_when_needed() -> None:
    text = format_media_type(
        "multipart/related",
        {"type": "application/dicom", "transfer-syntax": "1.2.840.10008.1.2.1", "boundary": "b"},
    )
    assert text == (
        'multipart/related; type="application/dicom"; '
        "transfer-syntax=1.2.840.10008.1.2.1; boundary=b"
    )


def _ranges(value: str) -> list[str]:
    return [str(r) for r in parse_accept(value)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("*/*", ["*/*"]),
        ("application/dicom+json", ["application/dicom+json"]),
        ("image/jpeg;q=0.9", ["image/jpeg; q=0.9"]),
        (
            'multipart/related; type="application/dicom"',
            ['multipart/related; type="application/dicom"'],
        ),
        (
            "multipart/related; type=application/dicom; transfer-syntax=*",
            ['multipart/related; type="application/dicom"; transfer-syntax=*'],
        ),
        (
            'multipart/related;type="application/octet-stream";transfer-syntax=1.2.840.10008.1.2.1',
            [
                'multipart/related; type="application/octet-stream"; '
                "transfer-syntax=1.2.840.10008.1.2.1"
            ],
        ),
        (
            "image/jpeg;q=0.9, application/dicom+json, */*;q=0.1",
            ["application/dicom+json", "image/jpeg; q=0.9", "*/*; q=0.1"],
        ),
        # Equal weight: the more specific range first (RFC 9110 §12.5.1).
        (
            "*/*, image/*, image/png, image/png;level=1",
            ["image/png; level=1", "image/png", "image/*", "*/*"],
        ),
        # Equal weight and specificity: header order.
        ("image/png, image/jpeg, image/gif", ["image/png", "image/jpeg", "image/gif"]),
        # A comma inside a quoted-string does not split the list.
        (
            'multipart/related; type="application/dicom, x"; q=0.5, application/json',
            ["application/json", 'multipart/related; type="application/dicom, x"; q=0.5'],
        ),
        # Java's HttpURLConnection default, with a bare "*" and a q without its zero.
        (
            "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2",
            ["text/html", "image/gif", "image/jpeg", "*/*; q=0.2", "*/*; q=0.2"],
        ),
        (
            'multipart/related; type="application/dicom"; transfer-syntax=*; Q=0.5, '
            "application/dicom;q=0",
            [
                'multipart/related; type="application/dicom"; transfer-syntax=*; q=0.5',
                "application/dicom; q=0",
            ],
        ),
        ("image/png;q=1.000, image/jpeg;q=0.001", ["image/png", "image/jpeg; q=0.001"]),
        ("", []),
        (" , ,, ", []),
        ("image/png,", ["image/png"]),
    ],
)
def test_parse_accept(value: str, expected: list[str]) -> None:
    assert _ranges(value) == expected


def test_parse_accept_keeps_parameters_and_weight_apart() -> None:
    (media_range,) = parse_accept(
        'multipart/related; type="application/dicom"; transfer-syntax=*; q=0.5'
    )
    assert media_range == MediaRange(
        "multipart", "related", {"type": "application/dicom", "transfer-syntax": "*"}, q=0.5
    )
    assert media_range.specificity == (2, 2)


@pytest.mark.parametrize(
    "value",
    [
        "image/png;q=2",
        "image/png;q=1.5",
        "image/png;q=abc",
        "image/png;q=-1",
        "image/png;q=",
        "*/png",
        "image/png;; q",
        "image/png, /x",
        "image",
        'image/png; a="b',
        "image/png; a=1; a=2",
        "image/png image/jpeg",
    ],
)
def test_parse_accept_rejects(value: str) -> None:
    with pytest.raises(BadRequest, match="malformed Accept header"):
        parse_accept(value)


DICOM = MediaType("application", "dicom")
DICOM_PART = MediaType("multipart", "related", {"type": "Application/DICOM"})
DICOM_PART_TS = MediaType(
    "multipart", "related", {"type": "application/dicom", "transfer-syntax": "1.2.840.10008.1.2.1"}
)
OCTET_PART = MediaType("multipart", "related", {"type": "application/octet-stream"})


@pytest.mark.parametrize(
    ("accept", "media", "matches"),
    [
        ("*/*", DICOM, True),
        ("application/*", DICOM, True),
        ("image/*", DICOM, False),
        ("application/dicom", DICOM, True),
        ("application/dicom+json", DICOM, False),
        ("multipart/related", OCTET_PART, True),
        ("multipart/related; type=application/dicom", DICOM_PART, True),
        ("multipart/related; type=application/dicom", OCTET_PART, False),
        ("multipart/related; type=application/dicom; transfer-syntax=*", DICOM_PART, True),
        ("multipart/related; type=application/dicom; transfer-syntax=*", DICOM_PART_TS, True),
        (
            "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.1",
            DICOM_PART_TS,
            True,
        ),
        (
            "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50",
            DICOM_PART_TS,
            False,
        ),
        (
            "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.1",
            DICOM_PART,
            False,
        ),
    ],
)
def test_media_range_matches(accept: str, media: MediaType, matches: bool) -> None:
    (media_range,) = parse_accept(accept)
    assert media_range.matches(media) is matches


@pytest.mark.parametrize(
    ("accept", "media", "q"),
    [
        ("", DICOM, 1.0),
        ("image/png", DICOM, 0.0),
        ("*/*;q=0.3", DICOM, 0.3),
        ("application/*;q=0.5, */*;q=0.1", DICOM, 0.5),
        ("application/*, application/dicom;q=0", DICOM, 0.0),
        ("application/dicom;q=0, */*", MediaType("application", "dicom+json"), 1.0),
        (
            "multipart/related;q=0.2, multipart/related; type=application/dicom;q=0.8",
            DICOM_PART,
            0.8,
        ),
        (
            "multipart/related;q=0.2, multipart/related; type=application/dicom;q=0.8",
            OCTET_PART,
            0.2,
        ),
    ],
)
def test_quality_uses_most_specific_range(accept: str, media: MediaType, q: float) -> None:
    assert quality(parse_accept(accept), media) == q
