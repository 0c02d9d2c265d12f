"""STOW-RS (PS3.18 §10.5): multipart/related uploads through the one ingest pipeline.

The request body is parsed as it arrives by a bounded streaming parser: each part is
spooled to disk and ingested before the next is read, so a 1.5 GB tomosynthesis part
costs one copy buffer of memory. Limits are enforced before reading (Content-Length)
and while reading (parts, part size, headers).

Response codes (PS3.18 Table 10.5.3-1): 200 all stored, 202 some
stored and some failed (even when the body breaks after a part was stored), 409 none
stored, 507 none stored for lack of space, 400 malformed request before any part was
stored, 413 too large, 415 wrong media type, 204 for an empty multipart body. Each
failure's FailureReason and UIDs come from the pipeline's error (omipacs/errors.py), so
a part is parsed once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, request
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from omipacs.errors import (
    InvalidInstance,
    OmipacsError,
    OutOfResources,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from omipacs.ingest.origin import stow_origin
from omipacs.ingest.result import IngestOutcome
from omipacs.web.context import dicomweb_base, services
from omipacs.web.media import parse_content_type
from omipacs.web.multipart import boundary_from_content_type, iter_parts

log = logging.getLogger(__name__)
bp = Blueprint("stow", __name__)

DICOM_JSON = "application/dicom+json"


def _check_request() -> str:
    """Media type, encoding and size checks; returns the boundary."""
    http = services().settings.http
    length = request.content_length
    if length is not None and length > http.max_request_bytes:
        raise PayloadTooLarge(f"request body over the {http.max_request_bytes}-byte limit")
    if request.headers.get("Content-Encoding", "identity").lower() != "identity":
        raise UnsupportedMediaType("compressed request bodies are not accepted")
    media = parse_content_type(request.headers.get("Content-Type", ""))
    if media.essence != "multipart/related":
        raise UnsupportedMediaType('expected multipart/related; type="application/dicom"')
    part_type = (media.param("type") or "application/dicom").lower()
    if part_type != "application/dicom":
        raise UnsupportedMediaType("only application/dicom parts are accepted")
    return boundary_from_content_type(media)


def _ref(sop_class: str, sop_uid: str) -> Dataset:
    item = Dataset()
    if sop_class:
        item.ReferencedSOPClassUID = sop_class
    if sop_uid:
        item.ReferencedSOPInstanceUID = sop_uid
    return item


def _failure(exc: OmipacsError) -> Dataset:
    """A FailedSOPSequence item: the instance the error names, and its FailureReason."""
    item = _ref(exc.sop_class_uid, exc.sop_instance_uid)
    item.FailureReason = int(exc.dimse_status)
    return item


def _status(stored: int, failures: list[OmipacsError]) -> int:
    """The response code of PS3.18 Table 10.5.3-1 for what happened to the parts.

    Anything stored with anything failed is 202, whatever the failures were (a framing
    error after some parts were stored included). With nothing stored: 507 if storage
    ran out, else 409 (the failures are per instance, listed in the body).
    """
    if not failures:
        return 200
    if stored:
        return 202
    if any(isinstance(f, OutOfResources) for f in failures):
        return OutOfResources.http_status
    return 409


def _store(study: str | None) -> Response:
    boundary = _check_request()
    svc = services()
    http = svc.settings.http
    base = dicomweb_base()
    try:
        # Refused before a byte of the body is read, so a full disk costs nothing.
        svc.pipeline.check_space(request.content_length or 0)
    except OutOfResources as exc:
        return _response(study, base, [], [exc])
    origin = stow_origin(
        deidentify=http.stow_deidentify, host=request.remote_addr or "", expected_study_uid=study
    )
    stored: list[Dataset] = []
    studies: set[str] = set()
    failures: list[OmipacsError] = []
    parts = iter_parts(
        request.stream,
        boundary,
        spool_dir=svc.spool.dir,
        max_parts=http.max_parts,
        max_part_bytes=svc.settings.storage.max_instance_bytes,
        max_total_bytes=http.max_request_bytes,
    )
    while True:
        try:
            part = next(parts)
        except StopIteration:
            break
        except OmipacsError as exc:
            if not stored:
                raise
            # The body broke after earlier parts were handled: they stand (PS3.18 202).
            failures.append(exc)
            break
        try:
            ctype = part.content_type
            if ctype is not None and ctype.essence != "application/dicom":
                part.discard()
                raise InvalidInstance("part is not application/dicom")
            result = svc.pipeline.ingest_spooled(part.path, origin)
        except OmipacsError as exc:
            failures.append(exc)
            continue
        except Exception:
            log.exception("unexpected error storing a STOW-RS part")
            failures.append(OmipacsError("processing failure"))
            continue
        if result.outcome is IngestOutcome.QUARANTINED:
            # Received and held for review: not retrievable yet, so no RetrieveURL.
            stored.append(_ref(result.sop_class_uid, result.received_sop_instance_uid))
            continue
        item = _ref(result.sop_class_uid, result.sop_instance_uid)
        studies.add(result.study_instance_uid)
        item.RetrieveURL = (
            f"{base}/studies/{result.study_instance_uid}/series/"
            f"{result.series_instance_uid}/instances/{result.sop_instance_uid}"
        )
        stored.append(item)
    # The study's URL heads the response (PS3.18 10.5.3): the one in the request URL, or
    # the one study every stored instance joined. Instances of several studies each
    # carry their own RetrieveURL and the response has no single study to name.
    if study is None and len(studies) == 1:
        study = next(iter(studies))
    return _response(study, base, stored, failures)


def _response(
    study: str | None, base: str, stored: list[Dataset], failures: list[OmipacsError]
) -> Response:
    """The STOW-RS response document (PS3.18 §10.5.3.2) and its status code."""
    if not stored and not failures:
        return Response(status=204)
    doc = Dataset()
    if study is not None:
        doc.RetrieveURL = f"{base}/studies/{study}"
    doc.ReferencedSOPSequence = Sequence(stored)
    if failures:
        doc.FailedSOPSequence = Sequence(_failure(f) for f in failures)
    body: dict[str, Any] = doc.to_json_dict()
    return Response(
        json.dumps(body), status=_status(len(stored), failures), content_type=DICOM_JSON
    )


@bp.post("/studies")
def store() -> Response:
    return _store(None)


@bp.post("/studies/<study>")
def store_in_study(study: str) -> Response:
    return _store(study)
