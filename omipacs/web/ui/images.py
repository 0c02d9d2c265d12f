"""Thumbnails for the dashboard, with the expert marks drawn.

The same retrieval and rendering as WADO-RS ``/thumbnail?annotation=marks``
(:func:`omipacs.web.wado.render_response`): located under the request's visibility
(a researcher's through their licence's root, see :mod:`omipacs.web.ui.licence`), marks
drawn only when the caller may see marks.
"""

from __future__ import annotations

from flask import Response, url_for

from omipacs.access.policy import Action
from omipacs.annotations.study_images import StudyImage
from omipacs.retrieve.locate import locate
from omipacs.web.context import restriction, services
from omipacs.web.ui import licence
from omipacs.web.ui.blueprint import page
from omipacs.web.wado import render_response


@page("/images/<study>/<series>/<instance>/thumbnail", Action.READ_IMAGES)
def thumbnail(study: str, series: str, instance: str) -> Response:
    with services().sessions() as session:
        (loc,) = locate(session, study, series, instance, with_frames=True,
                        restrict=restriction())
    response = render_response(loc, None, thumbnail=True, marks=True)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def thumbnail_url(image: StudyImage) -> str:
    """The dashboard URL of ``image``'s marked thumbnail (under the current licence)."""
    return url_for("ui.thumbnail", study=image.study_uid, series=image.series_uid,
                   instance=image.sop_uid, **licence.query())
