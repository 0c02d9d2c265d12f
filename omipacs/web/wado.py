"""WADO-RS (PS3.18 §10.4): instances, metadata, frames, bulk data, rendered, thumbnails.

Views resolve everything (index lookups, Accept negotiation, parameter parsing) before
returning, then stream from the blob store; a response never holds a whole study.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request

from omipacs.access.scopes import Scope
from omipacs.annotations.draw import marks_requested, render_marked
from omipacs.blobs.base import BlobStore
from omipacs.dicom.pixels import decode_cost, decode_frame, decode_slot
from omipacs.dicom.xml import native_xml
from omipacs.errors import BadRequest, NotAcceptable, NotFound, RangeNotSatisfiable
from omipacs.retrieve import frames as frame_io
from omipacs.retrieve.locate import InstanceLocation, locate
from omipacs.retrieve.metadata import instance_url, iter_metadata, metadata_json
from omipacs.retrieve.render import (
    Viewport,
    Window,
    parse_quality_param,
    parse_viewport_param,
    parse_window_param,
    render_stored_frame,
)
from omipacs.retrieve.transcode import transcode_frame, transcode_instance
from omipacs.web import negotiate
from omipacs.web.body import FileRange, Piece, SegmentedBody, assemble
from omipacs.web.context import decision, dicomweb_base, headers_cache, restriction, services
from omipacs.web.multipart import PART_END, MultipartWriter

bp = Blueprint("wado", __name__)

DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
DICOM_XML_PART = "application/dicom+xml; charset=utf-8"


def _locate(
    study: str, series: str | None = None, instance: str | None = None, *, with_frames: bool = False
) -> list[InstanceLocation]:
    svc = services()
    restrict = restriction()
    with svc.sessions() as session:
        return locate(session, study, series, instance, with_frames=with_frames, restrict=restrict)


# --- instances --------------------------------------------------------------------------


def _blob_piece(blobs: BlobStore, key: str, offset: int, length: int) -> Piece:
    """A byte range of a stored blob: a file range when the blob is a local file (so the
    server can send it from the page cache), else a stream from the store."""
    path = blobs.local_path(key)
    if path is not None:
        return FileRange(path, offset, length)
    return frame_io.iter_ranges(blobs, key, [(offset, length)])


def _instance_piece(blobs: BlobStore, loc: InstanceLocation, target: str | None) -> Piece:
    """One instance's bytes: straight from the blob, or transcoded as it streams."""
    if target is None or loc.transfer_syntax == target:
        return _blob_piece(blobs, loc.blob_key, 0, loc.size)
    return _transcoded(blobs, loc, target)


def _transcoded(blobs: BlobStore, loc: InstanceLocation, target: str) -> Iterator[bytes]:
    # A generator takes everything it needs as arguments: it runs after the view has
    # returned, outside Flask's request context.
    with blobs.open(loc.blob_key) as source:
        yield from transcode_instance(source, target)


def _respond(
    pieces: list[Piece], *, headers: dict[str, str] | None = None, **kwargs: Any
) -> Response:
    """A response over ``pieces``; with a Content-Length whenever the size is known."""
    body = assemble(pieces)
    if isinstance(body, SegmentedBody):
        headers = {**(headers or {}), "Content-Length": str(body.length)}
        return Response(body, headers=headers, direct_passthrough=True, **kwargs)
    return Response(body, headers=headers, **kwargs)


def _instances_response(locations: list[InstanceLocation]) -> Response:
    blobs = services().blobs
    target, multipart = negotiate.choose_instance_syntax(
        request.headers.get("Accept"),
        {loc.transfer_syntax for loc in locations},
        count=len(locations),
    )
    if not multipart:
        (loc,) = locations
        syntax = target or loc.transfer_syntax
        content_type = f"application/dicom; transfer-syntax={syntax}"
        if target is None or target == loc.transfer_syntax:
            return _stored_instance(blobs, loc, content_type)
        return _respond([_instance_piece(blobs, loc, target)], content_type=content_type)
    writer = MultipartWriter()
    pieces: list[Piece] = []
    for loc in locations:
        syntax = target or loc.transfer_syntax
        pieces += [
            writer.part_head(f"application/dicom; transfer-syntax={syntax}"),
            _instance_piece(blobs, loc, target),
            PART_END,
        ]
    pieces.append(writer.close())
    params = {"transfer-syntax": target} if target else {}
    return _respond(pieces, content_type=writer.content_type("application/dicom", params))


def _stored_instance(blobs: BlobStore, loc: InstanceLocation, content_type: str) -> Response:
    """One instance as stored: the same bytes every time, so a strong ETag (its SHA-256)
    lets clients revalidate (304) and resume an interrupted download of a large DBT
    object with a byte range (206), ``If-Range`` guarding against a changed object."""
    etag = loc.sha256
    headers = {"ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
    if request.if_none_match.contains_weak(etag) or request.if_none_match.star_tag:
        return Response(status=304, headers=headers)
    bounds = None
    if_range = request.if_range
    if (if_range.etag is None and if_range.date is None) or if_range.etag == etag:
        bounds = _byte_range(loc.size)
    if bounds is None:
        return _respond(
            [_blob_piece(blobs, loc.blob_key, 0, loc.size)],
            headers=headers,
            content_type=content_type,
        )
    start, end = bounds
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{loc.size}"
    return _respond(
        [_blob_piece(blobs, loc.blob_key, start, end - start)],
        status=206,
        headers=headers,
        content_type=content_type,
    )


@bp.get("/studies/<study>")
def retrieve_study(study: str) -> Response:
    return _instances_response(_locate(study))


@bp.get("/studies/<study>/series/<series>")
def retrieve_series(study: str, series: str) -> Response:
    return _instances_response(_locate(study, series))


@bp.get("/studies/<study>/series/<series>/instances/<instance>")
def retrieve_instance(study: str, series: str, instance: str) -> Response:
    return _instances_response(_locate(study, series, instance))


# --- metadata ---------------------------------------------------------------------------


def _metadata_response(locations: list[InstanceLocation]) -> Response:
    svc = services()
    if negotiate.wants_xml_metadata(request.headers.get("Accept")):
        # PS3.18 §10.4.1.1.2: XML metadata is one PS3.19 document per instance, each a part.
        writer = MultipartWriter()
        with svc.sessions() as session:
            chunks = [
                chunk
                for doc in iter_metadata(session, locations, dicomweb_base())
                for chunk in writer.iter_bytes_part(native_xml(doc), DICOM_XML_PART)
            ]
        chunks.append(writer.close())
        body = b"".join(chunks)
        content_type = writer.content_type(DICOM_XML)
    else:
        with svc.sessions() as session:
            body = metadata_json(session, locations, dicomweb_base())
        content_type = DICOM_JSON
    # The ETag is the body's own hash: a viewer revalidating a large DBT series' metadata
    # gets a 304 instead of the JSON again, and no change can leave a stale tag behind.
    # (The multipart boundary is random, so XML bodies only revalidate within a body.)
    response = Response(body, content_type=content_type)
    response.set_etag(hashlib.sha256(body).hexdigest())
    response.make_conditional(request)  # 304 when If-None-Match has the tag
    return response


@bp.get("/studies/<study>/metadata")
def study_metadata(study: str) -> Response:
    return _metadata_response(_locate(study))


@bp.get("/studies/<study>/series/<series>/metadata")
def series_metadata(study: str, series: str) -> Response:
    return _metadata_response(_locate(study, series))


@bp.get("/studies/<study>/series/<series>/instances/<instance>/metadata")
def instance_metadata(study: str, series: str, instance: str) -> Response:
    return _metadata_response(_locate(study, series, instance))


# --- frames -----------------------------------------------------------------------------


@bp.get("/studies/<study>/series/<series>/instances/<instance>/frames/<frame_list>")
def frames(study: str, series: str, instance: str, frame_list: str) -> Response:
    (loc,) = _locate(study, series, instance, with_frames=True)
    if loc.pixel is None:
        raise NotFound("this instance has no pixel data")
    numbers = frame_io.parse_frame_list(frame_list, loc.number_of_frames)
    choice = negotiate.choose_frame_syntax(
        request.headers.get("Accept"), loc.transfer_syntax, count=len(numbers)
    )
    svc = services()
    header = headers_cache().get(svc.blobs, loc) if choice.target else None

    def frame_bytes(n: int) -> bytes:
        data = frame_io.read_frame(svc.blobs, loc, n)
        if choice.target is None:
            return data
        assert header is not None
        return transcode_frame(header, data, loc.transfer_syntax, choice.target)

    # Convert the first frame now: a refusal must be a 406, not a cut-off stream.
    first = frame_bytes(numbers[0])
    if not choice.multipart:
        return Response(first, content_type=choice.media_type)
    writer = MultipartWriter()
    part_type = choice.media_type.split(";", 1)[0]
    # Each part names the frame it holds (PS3.18 §8.7.3.5.4: Content-Location per part).
    frames_url = f"{instance_url(dicomweb_base(), loc)}/frames"

    def body() -> Iterator[bytes]:
        for i, n in enumerate(numbers):
            data = first if i == 0 else frame_bytes(n)
            location = {"Content-Location": f"{frames_url}/{n}"}
            yield from writer.iter_bytes_part(data, choice.media_type, location)
        yield writer.close()

    syntax = choice.target or loc.transfer_syntax
    return Response(
        (body()),
        content_type=writer.content_type(part_type, {"transfer-syntax": syntax}),
    )


# --- bulk data --------------------------------------------------------------------------


def _byte_range(size: int) -> tuple[int, int] | None:
    rng = request.range
    if rng is None:
        return None
    if rng.units != "bytes" or len(rng.ranges) != 1:
        raise BadRequest("only a single byte range is supported")
    bounds = rng.range_for_length(size)
    if bounds is None:
        raise RangeNotSatisfiable(f"requested range is not satisfiable (size {size})")
    return bounds


@bp.get("/studies/<study>/series/<series>/instances/<instance>/bulkdata/<path:tag_path>")
def bulkdata(study: str, series: str, instance: str, tag_path: str) -> Response:
    (loc,) = _locate(study, series, instance, with_frames=True)
    svc = services()
    pixel = loc.pixel or {}
    is_pixel = tag_path.upper() == f"{pixel.get('tag', 0):08X}" and pixel
    if is_pixel:
        if pixel.get("value"):
            offset, size = pixel["value"]
        else:  # encapsulated: the element's value (Basic Offset Table item and fragments)
            offset = pixel["element"][0] + 12
            size = pixel["element"][1] - 12 - 8
        syntax = loc.transfer_syntax
        fetch = None
    else:
        data = frame_io.read_bulk_element(svc.blobs, loc, tag_path.upper(), headers_cache())
        offset, size, syntax, fetch = 0, len(data), "1.2.840.10008.1.2.1", data
    bounds = _byte_range(size)
    start, end = bounds if bounds else (0, size)
    accept = request.headers.get("Accept")
    multipart = "multipart/related" in (accept or "multipart/related")
    media = "application/octet-stream"
    status = 206 if bounds else 200
    headers: dict[str, str] = {}
    if bounds:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    piece: Piece = (
        fetch[start:end]
        if fetch is not None
        else _blob_piece(svc.blobs, loc.blob_key, offset + start, end - start)
    )
    if not multipart:
        negotiate.wants(accept, media)
        return _respond([piece], status=status, content_type=media, headers=headers)
    writer = MultipartWriter()
    part_type = f"{media}; transfer-syntax={syntax}" if is_pixel else media
    part_headers = {
        **headers,
        "Content-Location": f"{instance_url(dicomweb_base(), loc)}/bulkdata/{tag_path}",
    }
    pieces = [writer.part_head(part_type, part_headers), piece, PART_END, writer.close()]
    return _respond(pieces, status=status, headers=headers, content_type=writer.content_type(media))


# --- rendered and thumbnails -------------------------------------------------------------


def render_response(
    loc: InstanceLocation, frame: int | None, *, thumbnail: bool, marks: bool | None = None
) -> Response:
    """A rendered picture of ``loc`` (``/rendered``, ``/thumbnail``, the dashboard's
    images), with the marks drawn when ``marks`` (default: when the request asks) and
    the caller may see marks."""
    if marks is None:
        marks = marks_requested(request.args)
    if loc.pixel is None:
        raise NotAcceptable("this instance has no pixel data to render")
    media = negotiate.wants(
        request.headers.get("Accept") or request.args.get("accept"),
        "image/jpeg",
        "image/png",
        "image/gif",
    )
    window = parse_window_param(request.args["window"]) if "window" in request.args else None
    viewport = (
        parse_viewport_param(request.args["viewport"]) if "viewport" in request.args else None
    )
    quality = parse_quality_param(request.args["quality"]) if "quality" in request.args else None
    if frame is None:
        # A stack's picture is its middle slice; a 2D image has one frame.
        frame = (loc.number_of_frames + 1) // 2 if thumbnail else 1
    if not 1 <= frame <= loc.number_of_frames:
        raise NotFound(f"frame {frame} does not exist")
    return _render_decoded(loc, frame, media, window, viewport, quality, thumbnail, marks)


def _render_decoded(
    loc: InstanceLocation,
    frame: int,
    media: str,
    window: Window | None,
    viewport: Viewport | None,
    quality: int | None,
    thumbnail: bool,
    marks: bool,
) -> Response:
    svc = services()
    header = headers_cache().get(svc.blobs, loc)
    if marks and decision().has(Scope.MARKS):
        # Draw the expert marks over the picture (marks can change: do not cache);
        # without the marks scope they do not exist for the caller. The decoded frame
        # and its rendering count as one decode.
        with decode_slot(decode_cost(header, loc.transfer_syntax)), svc.sessions() as session:
            data = frame_io.read_frame(svc.blobs, loc, frame)
            pixels = decode_frame(header, data, loc.transfer_syntax)
            del data
            image = render_marked(
                session,
                header,
                pixels,
                sop_uid=loc.sop_uid,
                frame=frame,
                media_type=media,
                window=window,
                viewport=viewport,
                quality=quality,
                thumbnail=thumbnail,
            )
        return Response(image, content_type=media, headers={"Cache-Control": "private, no-cache"})
    # Decoded no finer than the picture needs (a thumbnail of a JPEG 2000 frame decodes
    # a fraction of its pixels), under a decode slot that reserves what that costs.
    image = render_stored_frame(
        header,
        frame_io.read_frame(svc.blobs, loc, frame),
        loc.transfer_syntax,
        media_type=media,
        window=window,
        viewport=viewport,
        quality=quality,
        thumbnail=thumbnail,
        frame_index=frame - 1,
    )
    return Response(image, content_type=media, headers={"Cache-Control": "private, max-age=3600"})


def _single_frame(value: str) -> int:
    if not value.isdigit() or len(value) > 9:
        raise BadRequest("frame number must be a positive integer")
    return int(value)


def _representative(locations: list[InstanceLocation]) -> InstanceLocation:
    with_pixels = [loc for loc in locations if loc.pixel is not None]
    if not with_pixels:
        raise NotFound("nothing to render")
    return with_pixels[len(with_pixels) // 2]


@bp.get("/studies/<study>/series/<series>/instances/<instance>/rendered")
def rendered_instance(study: str, series: str, instance: str) -> Response:
    (loc,) = _locate(study, series, instance, with_frames=True)
    return render_response(loc, None, thumbnail=False)


@bp.get("/studies/<study>/series/<series>/instances/<instance>/frames/<frame>/rendered")
def rendered_frame(study: str, series: str, instance: str, frame: str) -> Response:
    (loc,) = _locate(study, series, instance, with_frames=True)
    return render_response(loc, _single_frame(frame), thumbnail=False)


@bp.get("/studies/<study>/series/<series>/rendered")
def rendered_series(study: str, series: str) -> Response:
    loc = _representative(_locate(study, series, with_frames=True))
    return render_response(loc, None, thumbnail=False)


@bp.get("/studies/<study>/thumbnail")
def thumbnail_study(study: str) -> Response:
    return render_response(_representative(_locate(study, with_frames=True)), None, thumbnail=True)


@bp.get("/studies/<study>/series/<series>/thumbnail")
def thumbnail_series(study: str, series: str) -> Response:
    loc = _representative(_locate(study, series, with_frames=True))
    return render_response(loc, None, thumbnail=True)


@bp.get("/studies/<study>/series/<series>/instances/<instance>/thumbnail")
def thumbnail_instance(study: str, series: str, instance: str) -> Response:
    (loc,) = _locate(study, series, instance, with_frames=True)
    return render_response(loc, None, thumbnail=True)


@bp.get("/studies/<study>/series/<series>/instances/<instance>/frames/<frame>/thumbnail")
def thumbnail_frame(study: str, series: str, instance: str, frame: str) -> Response:
    (loc,) = _locate(study, series, instance, with_frames=True)
    return render_response(loc, _single_frame(frame), thumbnail=True)
