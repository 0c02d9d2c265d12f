"""C-STORE sub-operations that send stored files byte for byte.

pynetdicom's C-MOVE and C-GET service classes take the instances to send as
``Dataset`` objects yielded by the handler and pass each to
``Association.send_c_store``; a ``Dataset`` would be re-encoded, and a 1.5 GB
tomosynthesis object decoded into memory first. ``send_c_store`` itself can send a
*file* without decoding it (``_config.STORE_SEND_CHUNKED_DATASET``: the data set bytes
after the File Meta Information, a PDU at a time), which is what the archive wants: the
peer gets exactly the bytes that were acknowledged.

So a handler yields a :class:`StoredInstance`, a ``Dataset`` holding only the two UIDs
pynetdicom reads (for its failed-instance list) and the instance's location, and
:func:`install` wraps ``Association.send_c_store`` so that such a data set is sent as
its stored file. This relies on two pynetdicom internals (pynetdicom is pinned in
pyproject.toml), checked when the SCP starts and by the byte-for-byte C-MOVE and C-GET
tests in ``tests/dimse/test_qr.py``: the service classes call
``assoc.send_c_store(dataset, ...)`` with the yielded object, and a path argument is
streamed from the file when chunked sending is on.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import _config
from pynetdicom.association import Association

from omipacs.blobs.base import BlobStore
from omipacs.blobs.spool import Spool
from omipacs.retrieve.files import local_file
from omipacs.retrieve.locate import InstanceLocation


class StoredInstance(Dataset):
    """A stored instance as a handler yields it: UIDs in memory, bytes on disk."""

    def __init__(self, blobs: BlobStore, spool: Spool, location: InstanceLocation) -> None:
        super().__init__()
        self.SOPClassUID = location.sop_class_uid
        self.SOPInstanceUID = location.sop_uid
        self._omipacs_source = (blobs, spool, location)

    @property
    def location(self) -> InstanceLocation:
        """Where the instance's bytes are."""
        location: InstanceLocation = self._omipacs_source[2]
        return location


_original_send_c_store = Association.send_c_store
_installed = False
#: Most P-DATA PDUs of one association waiting to be written to its socket.
MAX_QUEUED_PDUS = 8


def _bound_send_queue(assoc: Association) -> None:
    """Make the association's sender wait while its outgoing PDUs pile up.

    pynetdicom queues every PDU of a message on an unbounded queue that the DUL thread
    drains to the socket; reading a file is faster than a peer receives it, so a 1.5 GB
    object sent to a slow peer would sit in memory. The wrapped ``send_pdu`` returns
    only when at most :data:`MAX_QUEUED_PDUS` are waiting (or the DUL has stopped), which
    bounds the memory of one sub-operation to a few PDUs.
    """
    dul = assoc.dul
    if getattr(dul, "_omipacs_bounded", False):
        return
    send_pdu = dul.send_pdu

    def bounded(primitive: Any) -> None:
        send_pdu(primitive)
        while (
            dul.to_provider_queue.qsize() > MAX_QUEUED_PDUS
            and dul.is_alive()
            and not dul._kill_thread
        ):
            time.sleep(0.0005)

    dul.send_pdu = bounded  # type: ignore[method-assign]
    setattr(dul, "_omipacs_bounded", True)  # noqa: B010 - a marker pynetdicom does not type


def _send_c_store(self: Association, dataset: Any, *args: Any, **kwargs: Any) -> Dataset:
    if isinstance(dataset, StoredInstance):
        _bound_send_queue(self)
        blobs, spool, location = dataset._omipacs_source
        with local_file(blobs, spool, location.blob_key) as path:
            status: Dataset = _original_send_c_store(self, path, *args, **kwargs)
            return status
    result: Dataset = _original_send_c_store(self, dataset, *args, **kwargs)
    return result


def _check_pynetdicom() -> None:
    """Fail loudly at start if pynetdicom no longer works the way this module relies on."""
    from pynetdicom.service_class import QueryRetrieveServiceClass

    for name in ("_get_scp", "_move_scp"):
        source = inspect.getsource(getattr(QueryRetrieveServiceClass, name))
        if ".send_c_store(" not in source or "isinstance(dataset, Dataset)" not in source:
            raise RuntimeError(
                f"pynetdicom's QueryRetrieveServiceClass.{name} changed: check how it sends "
                "C-STORE sub-operations before serving C-MOVE and C-GET"
            )
    if "STORE_SEND_CHUNKED_DATASET" not in inspect.getsource(Association.send_c_store):
        raise RuntimeError("pynetdicom's send_c_store no longer streams files")
    from pynetdicom.dul import DULServiceProvider

    if "to_provider_queue.put" not in inspect.getsource(DULServiceProvider.send_pdu):
        raise RuntimeError("pynetdicom's DUL no longer queues PDUs on to_provider_queue")


def install() -> None:
    """Send stored files unchanged (idempotent)."""
    global _installed
    _config.STORE_SEND_CHUNKED_DATASET = True
    if _installed:
        return
    _check_pynetdicom()
    Association.send_c_store = _send_c_store  # type: ignore[method-assign]
    _installed = True
