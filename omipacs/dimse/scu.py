"""The C-STORE SCU: push stored instances to an allow-listed peer (``omipacs send``).

The peer must be on the ``[[dimse.peers]]`` allow-list with a ``host`` and ``port``,
the same condition a C-MOVE destination meets, so the archive only ever calls peers an
administrator named. Instances are sent as stored (:mod:`omipacs.dimse.stored`), one
presentation context per SOP class offering each stored transfer syntax; an instance
whose syntax the peer refuses counts as failed, it is never converted silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pynetdicom import AE

from omipacs.config import Peer, Settings
from omipacs.dimse import guard, stored
from omipacs.dimse.qr import MAX_CONTEXTS, storage_contexts
from omipacs.errors import ConfigurationError, DimseStatus, OmipacsError
from omipacs.retrieve.locate import InstanceLocation
from omipacs.services import Services

log = logging.getLogger(__name__)


class PeerUnreachable(OmipacsError):
    """The peer refused or did not answer the association request."""


@dataclass
class SendReport:
    """What happened to each instance sent."""

    completed: list[str] = field(default_factory=list)
    warning: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """SOP Instance UID to the reason (peer status or local error)."""


def destination(settings: Settings, ae_title: str) -> Peer:
    """The allow-listed peer ``ae_title`` with a host and port, or a clear refusal."""
    for peer in settings.dimse.peers:
        if peer.ae_title == ae_title:
            if not (peer.host and peer.port):
                raise ConfigurationError(
                    f"peer {ae_title} needs host and port in [[dimse.peers]] to be sent to"
                )
            return peer
    raise ConfigurationError(f"{ae_title} is not in the [[dimse.peers]] allow-list")


def send(
    services: Services,
    peer: Peer,
    locations: Sequence[InstanceLocation],
    *,
    progress: Callable[[InstanceLocation], None] | None = None,
) -> SendReport:
    """C-STORE every instance of ``locations`` to ``peer`` over one association."""
    report = SendReport()
    if not locations:
        return report
    contexts = storage_contexts(locations)
    if len(contexts) > MAX_CONTEXTS:
        raise OmipacsError(f"more than {MAX_CONTEXTS} SOP classes in one send")
    guard.install()
    stored.install()
    dimse = services.settings.dimse
    ae = AE(ae_title=dimse.ae_title)
    ae.acse_timeout = dimse.acse_timeout
    ae.dimse_timeout = dimse.dimse_timeout
    ae.network_timeout = dimse.network_timeout
    ae.maximum_pdu_size = dimse.max_pdu_size
    assoc = ae.associate(peer.host, peer.port, contexts=contexts, ae_title=peer.ae_title)
    if not assoc.is_established:
        raise PeerUnreachable(f"{peer.ae_title} at {peer.host}:{peer.port} did not accept")
    try:
        for loc in locations:
            try:
                status = assoc.send_c_store(
                    stored.StoredInstance(services.blobs, services.spool, loc)
                )
            except ValueError as exc:  # no accepted context for the class and syntax
                report.failed[loc.sop_uid] = str(exc)[:200]
                continue
            code = int(getattr(status, "Status", -1))
            if code == DimseStatus.SUCCESS:
                report.completed.append(loc.sop_uid)
            elif 0xB000 <= code <= 0xBFFF:
                report.warning.append(loc.sop_uid)
            else:
                report.failed[loc.sop_uid] = (
                    f"status 0x{code:04X}" if code >= 0 else "no response from the peer"
                )
            if progress is not None:
                progress(loc)
            if not assoc.is_established:
                break
    finally:
        if assoc.is_established:
            assoc.release()
    for loc in locations:
        done = loc.sop_uid in report.completed or loc.sop_uid in report.warning
        if not done and loc.sop_uid not in report.failed:
            report.failed[loc.sop_uid] = "association ended before it was sent"
    log.info(
        "sent to %s: %d completed, %d warning, %d failed",
        peer.ae_title,
        len(report.completed),
        len(report.warning),
        len(report.failed),
    )
    return report
