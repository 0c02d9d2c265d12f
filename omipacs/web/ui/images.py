"""Thumbnails for the dashboard, with the expert marks drawn.

The same retrieval and rendering as WADO-RS ``/thumbnail?annotation=marks``
(:func:`omipacs.web.wado.render_response`): located under the request's visibility
(a researcher's through their licence's root, see :mod:`omipacs.web.ui.licence`), marks
drawn only when the caller may see marks.
"""

from __future__ import annotations

from flask import Response, request, url_for

from omipacs.access.policy import Action
from omipacs.annotations.study_images import StudyImage
from omipacs.errors import BadRequest
from omipacs.retrieve.locate import locate
from omipacs.web.context import restriction, services
from omipacs.web.ui import licence
from omipacs.web.ui.blueprint import page
from omipacs.web.wado import render_response


@page("/images/<study>/<series>/<instance>/thumbnail", Action.READ_IMAGES)
def thumbnail(study: str, series: str, instance: str) -> Response:
    """The image's thumbnail (of ``?frame=N`` for a stack: its marked slice)."""
    frame = request.args.get("frame")
    if frame is not None and not (frame.isdigit() and 0 < len(frame) <= 6):
        raise BadRequest("frame must be a frame number")
    with services().sessions() as session:
        (loc,) = locate(session, study, series, instance, with_frames=True,
                        restrict=restriction())
    response = render_response(loc, int(frame) if frame else None, thumbnail=True, marks=True)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def thumbnail_url(image: StudyImage) -> str:
    """The dashboard URL of ``image``'s marked thumbnail (under the current licence)."""
    args = dict(licence.query())
    if image.marked_frame:
        args["frame"] = image.marked_frame
    return url_for("ui.thumbnail", study=image.study_uid, series=image.series_uid,
                   instance=image.sop_uid, **args)
