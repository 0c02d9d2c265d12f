"""Errors to DIMSE status data sets: the one place the mapping happens."""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset

from omipacs.errors import DimseStatus, OmipacsError

log = logging.getLogger(__name__)


def status(code: int, comment: str = "") -> Dataset:
    """A status data set; ErrorComment (LO) is cut to 64 characters."""
    ds = Dataset()
    ds.Status = int(code)
    if comment:
        ds.ErrorComment = comment[:64]
    return ds


def from_exception(exc: BaseException) -> Dataset:
    """Map any exception to a status; unexpected ones are logged and stay generic."""
    if isinstance(exc, OmipacsError):
        return status(exc.dimse_status, exc.reason)
    log.exception("unexpected error while handling a DIMSE request", exc_info=exc)
    return status(DimseStatus.PROCESSING_FAILURE, "processing failure")
