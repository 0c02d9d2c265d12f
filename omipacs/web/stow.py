"""STOW-RS (PS3.18 §10.5): multipart/related uploads through the one ingest pipeline.

The request body is parsed as it arrives by a bounded streaming parser: each part is
spooled to disk and ingested before the next is read, so a 1.5 GB tomosynthesis part
costs one copy buffer of memory. Limits are enforced before reading (Content-Length)
and while reading (parts, part size, headers).

Response codes (PS3.18 Table 10.5.3-1, robustness.md T4): 200 all stored, 202 some
failed, 409 none stored, 400 malformed request, 413 too large, 415 wrong media type,
204 for an empty multipart body.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, request
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from omipacs.dicom.peek import peek_identity
from omipacs.errors import (
    DimseStatus,
    Forbidden,
    OmipacsError,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.ingest.result import IngestOutcome
from omipacs.web.context import cohort_id, dicomweb_base, services
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
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_uid
    return item


def _store(study: str | None) -> Response:
    if cohort_id() is not None:
        raise Forbidden("a cohort's DICOMweb root is read-only")
    boundary = _check_request()
    svc = services()
    http = svc.settings.http
    base = dicomweb_base()
    origin = IngestOrigin(
        OriginKind.STOW,
        ae_title="STOW",
        host=request.remote_addr or "",
        deidentify=http.stow_deidentify,
        expected_study_uid=study,
    )
    stored: list[Dataset] = []
    failed: list[Dataset] = []
    conflict = False
    parts = iter_parts(
        request.stream,
        boundary,
        spool_dir=svc.spool.dir,
        max_parts=http.max_parts,
        max_part_bytes=svc.settings.storage.max_instance_bytes,
        max_total_bytes=http.max_request_bytes,
    )
    for part in parts:
        sop_class, sop_uid, _ = peek_identity(part.path)
        ctype = part.content_type
        if ctype is not None and ctype.essence != "application/dicom":
            part.discard()
            item = _ref(sop_class, sop_uid)
            item.FailureReason = int(DimseStatus.CANNOT_UNDERSTAND)
            failed.append(item)
            continue
        try:
            result = svc.pipeline.ingest_spooled(part.path, origin)
        except OmipacsError as exc:
            item = _ref(sop_class, sop_uid)
            item.FailureReason = int(exc.dimse_status)
            failed.append(item)
            conflict = conflict or exc.http_status == 409
            continue
        except Exception:
            log.exception("unexpected error storing a STOW-RS part")
            item = _ref(sop_class, sop_uid)
            item.FailureReason = int(DimseStatus.PROCESSING_FAILURE)
            failed.append(item)
            continue
        if result.outcome is IngestOutcome.QUARANTINED:
            item = _ref(result.sop_class_uid, sop_uid)
            item.WarningReason = 0xB000  # coercion of data elements: held for review
            stored.append(item)
            continue
        item = _ref(result.sop_class_uid, result.sop_instance_uid)
        item.RetrieveURL = (
            f"{base}/studies/{result.study_instance_uid}/series/"
            f"{result.series_instance_uid}/instances/{result.sop_instance_uid}"
        )
        stored.append(item)
    if not stored and not failed:
        return Response(status=204)
    doc = Dataset()
    if study is not None:
        doc.RetrieveURL = f"{base}/studies/{study}"
    doc.ReferencedSOPSequence = Sequence(stored)
    if failed:
        doc.FailedSOPSequence = Sequence(failed)
    if not failed:
        status = 200
    elif stored:
        status = 202
    else:
        status = 409
    body: dict[str, Any] = doc.to_json_dict()
    return Response(json.dumps(body), status=status, content_type=DICOM_JSON)


@bp.post("/studies")
def store() -> Response:
    return _store(None)


@bp.post("/studies/<study>")
def store_in_study(study: str) -> Response:
    return _store(study)
