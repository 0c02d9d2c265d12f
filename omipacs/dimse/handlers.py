"""pynetdicom event handlers: thin adapters from DIMSE to the archive's services."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from omipacs.config import DimseSettings, Peer
from omipacs.dimse import tls
from omipacs.dimse.status import from_exception, status
from omipacs.errors import DimseStatus
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.ingest.residue import discard_partial
from omipacs.services import Services

log = logging.getLogger(__name__)

# A-ASSOCIATE-RJ reasons (PS3.8 §9.3.4): result 1 = permanent, source 1 = service user.
_RJ_PERMANENT, _RJ_USER = 0x01, 0x01
_CALLING_AE_NOT_RECOGNISED, _CALLED_AE_NOT_RECOGNISED = 0x03, 0x07


def find_peer(settings: DimseSettings, ae_title: str, host: str) -> Peer | None:
    """The allow-list entry matching a calling AE title (and host, if pinned)."""
    for peer in settings.peers:
        if peer.ae_title == ae_title and (not peer.host or peer.host == host):
            return peer
    if settings.allow_any_peer:
        return Peer(ae_title=ae_title)
    return None


def _reject(assoc: Any, diagnostic: int) -> None:
    # As pynetdicom's own ACSE rejection: send A-ASSOCIATE-RJ, then end the association
    # so negotiation does not go on (EVT_REQUESTED runs in the association's thread).
    assoc.acse.send_reject(_RJ_PERMANENT, _RJ_USER, diagnostic)
    assoc.is_rejected = True
    assoc.kill()


def handle_requested(event: Any, settings: DimseSettings) -> None:
    """EVT_REQUESTED: reject associations from peers not on the allow-list."""
    assoc = event.assoc
    calling = str(assoc.requestor.primitive.calling_ae_title).strip()
    called = str(assoc.requestor.primitive.called_ae_title).strip()
    host = str(assoc.requestor.address)
    if settings.require_called_ae_title and called != settings.ae_title:
        log.warning(
            "rejecting association from %s@%s: called AE %r is not ours", calling, host, called
        )
        _reject(assoc, _CALLED_AE_NOT_RECOGNISED)
        return
    peer = find_peer(settings, calling, host)
    if peer is None:
        log.warning("rejecting association from %s@%s: not on the allow-list", calling, host)
        _reject(assoc, _CALLING_AE_NOT_RECOGNISED)
        return
    if not tls.certificate_matches(peer, assoc):
        log.warning("rejecting association from %s@%s: client certificate is not the peer's",
                    calling, host)
        _reject(assoc, _CALLING_AE_NOT_RECOGNISED)


def handle_echo(event: Any) -> int:
    """C-ECHO: the association was accepted, so we are reachable and willing."""
    return int(DimseStatus.SUCCESS)


def handle_closed(event: Any, services: Services) -> None:
    """EVT_CONN_CLOSE: delete the spooled data set of a C-STORE that never completed.

    pynetdicom writes a C-STORE data set to a spool file as its P-DATA arrive and keeps
    the half-written file on its DIMSE message object when the peer aborts or the
    connection drops; nothing would delete it, and it is identifiable. The attributes
    read here are pynetdicom's own (``DIMSEServiceProvider.message``,
    ``DIMSEMessage._data_set_file`` / ``_data_set_path``, pynetdicom 3.0, pinned);
    tests/ingest/test_residue.py fails loudly if they change.
    """
    message = getattr(getattr(event.assoc, "dimse", None), "message", None)
    handle = getattr(message, "_data_set_file", None)
    if handle is not None:
        try:
            handle.close()
        except OSError:
            pass
    discard_partial(services.spool, getattr(message, "_data_set_path", None))


def handle_store(event: Any, services: Services) -> Dataset:
    """C-STORE: the data set was spooled to disk by pynetdicom; ingest that file."""
    settings = services.settings.dimse
    calling = str(event.assoc.requestor.ae_title).strip()
    host = str(event.assoc.requestor.address)
    peer = find_peer(settings, calling, host)
    if peer is None:  # pragma: no cover - the association would have been rejected
        return status(DimseStatus.NOT_AUTHORIZED, "calling AE title not allowed")
    req = event.request
    origin = IngestOrigin(
        kind=OriginKind.DIMSE,
        ae_title=calling,
        host=host,
        deidentify=peer.deidentify,
        patient_id_is_nhs_number=peer.patient_id_is_nhs_number,
        expected_sop_class_uid=str(req.AffectedSOPClassUID),
        expected_sop_instance_uid=str(req.AffectedSOPInstanceUID),
    )
    try:
        result = services.pipeline.ingest_spooled(Path(event.dataset_path), origin)
    except Exception as exc:
        return from_exception(exc)
    log.info("C-STORE from %s: %s %s", calling, result.outcome.value, result.sop_instance_uid)
    return status(result.outcome.dimse_status)
