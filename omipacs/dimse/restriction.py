"""What a DIMSE peer may see: Query/Retrieve through the one access check.

C-FIND, C-MOVE and C-GET all ask :func:`dimse_restriction` for the visibility every
match must meet, the same :class:`~omipacs.index.visibility.Visibility` QIDO-RS and
WADO-RS apply: it is ANDed into the query service's ``WHERE``, so no key can reach
past it.

A peer with ``[[dimse.peers]] licence = N`` is a researcher's workstation under that
licence: :func:`omipacs.access.policy.authorize` gives it the licence's members within
its data scopes, and refuses it (0x0124, not authorized) while the licence is not in
force. A peer on the allow-list without a licence sees the whole archive, as an
archive-side tool (a curator's workstation, a site's own PACS fetching back its
studies).
"""

from __future__ import annotations

from omipacs.access.authenticate import utcnow
from omipacs.access.models import Licence
from omipacs.access.policy import Action, LicenceGrant, Principal, Role, Root, authorize, in_force
from omipacs.access.scopes import parse_scopes
from omipacs.config import Peer
from omipacs.errors import OmipacsError, Unauthorized
from omipacs.index.visibility import Visibility
from omipacs.services import Services


def peer_of(services: Services, calling_ae: str) -> Peer | None:
    return next((p for p in services.settings.dimse.peers if p.ae_title == calling_ae), None)


def _principal(services: Services, peer: Peer) -> Principal:
    """The peer as the access check sees it: a researcher holding its licence (if in
    force), or a curator."""
    if not peer.licence:
        return Principal(email=f"ae:{peer.ae_title}", role=Role.CURATOR)
    grants: tuple[LicenceGrant, ...] = ()
    with services.sessions() as session:
        row = session.get(Licence, peer.licence)
        today = utcnow().date()
        if row is not None and in_force(row.state, row.starts, row.ends, today):
            grants = (LicenceGrant(row.pk, row.cohort_pk, parse_scopes(row.scopes)),)
    return Principal(
        email=f"ae:{peer.ae_title}",
        role=Role.RESEARCHER,
        bound_licence=peer.licence,
        licences=grants,
    )


def dimse_restriction(services: Services, calling_ae: str) -> Visibility | None:
    """The visibility for ``calling_ae`` (None: everything).

    The handlers audit each request with its outcome (a refusal here included).

    Raises
    ------
    Unauthorized
        The peer's licence is not in force (or does not exist).
    """
    peer = peer_of(services, calling_ae) or Peer(ae_title=calling_ae)
    principal = _principal(services, peer)
    root = Root("licence", peer.licence) if peer.licence else Root()
    with services.sessions() as session:
        try:
            decision = authorize(session, principal, Action.READ_IMAGES, root)
        except OmipacsError as exc:
            reason = f"{calling_ae} may not query or retrieve: {exc.reason}"
            raise Unauthorized(reason) from None
    return decision.visibility
