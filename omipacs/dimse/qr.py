"""Query/Retrieve SCP handlers (PS3.4 Annex C): C-FIND, C-MOVE, C-GET.

Thin adapters: each handler reads the peer's identifier, asks core code for the
answer (:mod:`omipacs.query.identifier` translates it into the query QIDO-RS uses,
:func:`omipacs.retrieve.locate.locate_matching` finds the stored instances), and
yields what pynetdicom sends. Every handler applies :func:`dimse_restriction` for the
calling AE, the single seam for access control, and records one audit event per
request. Errors become statuses through :func:`omipacs.dimse.status.from_exception`,
the one mapping.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from omipacs.access.audit import AuditRecord
from omipacs.access.authenticate import utcnow
from omipacs.config import DimseSettings, Peer
from omipacs.dimse.restriction import dimse_restriction, peer_of
from omipacs.dimse.status import from_exception, status
from omipacs.dimse.stored import StoredInstance
from omipacs.errors import DimseStatus
from omipacs.query.identifier import Model, find, parse_identifier, parse_retrieve
from omipacs.retrieve.locate import InstanceLocation, locate_matching
from omipacs.services import Services

log = logging.getLogger(__name__)

#: The information models served, by SOP class UID.
FIND_MODELS: dict[str, Model] = {
    PatientRootQueryRetrieveInformationModelFind: "patient",
    StudyRootQueryRetrieveInformationModelFind: "study",
}
MOVE_MODELS: dict[str, Model] = {
    PatientRootQueryRetrieveInformationModelMove: "patient",
    StudyRootQueryRetrieveInformationModelMove: "study",
}
GET_MODELS: dict[str, Model] = {
    PatientRootQueryRetrieveInformationModelGet: "patient",
    StudyRootQueryRetrieveInformationModelGet: "study",
}
#: Most C-STORE sub-operations one C-MOVE or C-GET may have (the counts are US).
MAX_SUB_OPERATIONS = 65535
#: pynetdicom's limit on presentation contexts in one association request.
MAX_CONTEXTS = 128


def _calling(event: Any) -> str:
    return str(event.assoc.requestor.ae_title).strip()


def _audit(
    services: Services,
    event: Any,
    action: str,
    resource: str,
    status: Any,
    reason: str = "",
) -> None:
    """One audit event per Q/R request (door ``dimse``), as the HTTP doors record theirs.

    The resource names only the level and pseudonymous UIDs, never a key's value (a
    name pattern could identify someone).
    """
    if services.audit is None:
        return
    code = int(status.Status) if hasattr(status, "Status") else int(status)
    comment = str(getattr(status, "ErrorComment", "") or "")
    peer = peer_of(services, _calling(event))
    services.audit.record(
        AuditRecord(
            at=utcnow(),
            user_email=f"ae:{_calling(event)}",
            token_prefix="",
            licence_pk=(peer.licence or None) if peer else None,
            remote=str(event.assoc.requestor.address)[:64],
            door="dimse",
            action=action,
            resource=resource,
            outcome="allowed" if code in (0, 0xFE00, 0xB000) else "denied",
            reason=(reason or comment)[:128],
            status=code,
        )
    )


def _studies(locations: Sequence[InstanceLocation]) -> str:
    return "studies " + ",".join(sorted({loc.study_uid for loc in locations}))


def move_destination(settings: DimseSettings, ae_title: str) -> Peer | None:
    """The allow-listed peer a C-MOVE may send to (it needs a host and a port)."""
    for peer in settings.peers:
        if peer.ae_title == ae_title and peer.host and peer.port:
            return peer
    return None


def storage_contexts(locations: Sequence[InstanceLocation]) -> list[PresentationContext]:
    """Presentation contexts to send ``locations`` as stored: one per SOP class, with
    every transfer syntax its instances are stored in."""
    syntaxes: dict[str, list[str]] = defaultdict(list)
    for loc in locations:
        if loc.transfer_syntax not in syntaxes[loc.sop_class_uid]:
            syntaxes[loc.sop_class_uid].append(loc.transfer_syntax)
    return [build_context(sop, ts) for sop, ts in sorted(syntaxes.items())]


def handle_find(event: Any, services: Services) -> Iterator[tuple[Any, Any]]:
    """C-FIND: pending responses a page at a time; C-CANCEL stops between matches."""
    calling = _calling(event)
    settings = services.settings.dimse
    model = FIND_MODELS[str(event.context.abstract_syntax)]
    try:
        request = parse_identifier(event.identifier, model)
        matches = find(
            services.sessions,
            request,
            ae_title=settings.ae_title,
            max_results=settings.max_find_results,
            restrict=dimse_restriction(services, calling),
        )
        sent = 0
        for match in matches:
            if event.is_cancelled:
                log.info("C-FIND from %s cancelled after %d matches", calling, sent)
                _audit(services, event, "c-find", request.qr_level, DimseStatus.CANCEL)
                yield int(DimseStatus.CANCEL), None
                return
            sent += 1
            yield int(DimseStatus.PENDING), match
    except Exception as exc:
        failure = from_exception(exc)
        _audit(services, event, "c-find", "", failure)
        yield failure, None
        return
    log.info("C-FIND from %s at %s level: %d matches", calling, request.qr_level, sent)
    _audit(services, event, "c-find", request.qr_level, DimseStatus.SUCCESS, f"{sent} matches")
    yield int(DimseStatus.SUCCESS), None


def _select(
    event: Any, services: Services, models: dict[str, Model]
) -> list[InstanceLocation]:
    model = models[str(event.context.abstract_syntax)]
    query = parse_retrieve(event.identifier, model)
    restrict = dimse_restriction(services, _calling(event))
    with services.sessions() as session:
        return locate_matching(session, query, restrict=restrict)


def _send(
    event: Any, services: Services, locations: Sequence[InstanceLocation]
) -> Iterator[tuple[Any, Any]]:
    for loc in locations:
        if event.is_cancelled:
            yield int(DimseStatus.CANCEL), None
            return
        yield int(DimseStatus.PENDING), StoredInstance(services.blobs, services.spool, loc)


def handle_move(event: Any, services: Services) -> Iterator[Any]:
    """C-MOVE: only to allow-listed peers with a port; 0xA801 for any other AE."""
    calling = _calling(event)
    destination = str(event.move_destination).strip()
    peer = move_destination(services.settings.dimse, destination)
    if peer is None:
        log.warning("C-MOVE from %s to unknown destination refused", calling)
        _audit(services, event, "c-move", "", DimseStatus.MOVE_DESTINATION_UNKNOWN, "destination")
        yield None, None  # pynetdicom answers 0xA801 Move Destination Unknown
        return
    try:
        locations = _select(event, services, MOVE_MODELS)
        failure = None
    except Exception as exc:
        locations, failure = [], from_exception(exc)
    contexts = storage_contexts(locations)
    if len(contexts) > MAX_CONTEXTS:
        failure = status(DimseStatus.SUB_OPERATIONS_REFUSED, "too many SOP classes at once")
    if failure is not None:  # pynetdicom still associates: offer just Verification
        contexts = [build_context(Verification)]
    yield peer.host, peer.port, {"contexts": contexts}
    if failure is not None:
        _audit(services, event, "c-move", "", failure)
        yield 1
        yield failure, None
        return
    log.info("C-MOVE from %s to %s: %d instances", calling, destination, len(locations))
    _audit(
        services,
        event,
        "c-move",
        _studies(locations),
        DimseStatus.SUCCESS,
        f"{len(locations)} instances to {destination}",
    )
    yield len(locations)
    yield from _send(event, services, locations)


def handle_get(event: Any, services: Services) -> Iterator[Any]:
    """C-GET: the instances are sent back over the peer's own association, on the
    storage contexts it offered with the SCP role."""
    calling = _calling(event)
    try:
        locations = _select(event, services, GET_MODELS)
    except Exception as exc:
        failure = from_exception(exc)
        _audit(services, event, "c-get", "", failure)
        yield 1
        yield failure, None
        return
    log.info("C-GET from %s: %d instances", calling, len(locations))
    _audit(
        services,
        event,
        "c-get",
        _studies(locations),
        DimseStatus.SUCCESS,
        f"{len(locations)} instances",
    )
    yield len(locations)
    yield from _send(event, services, locations)
