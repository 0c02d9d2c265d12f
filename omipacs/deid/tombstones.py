"""Keyed hashes that name a withdrawn client, and the checks that use them.

Both hashes are HMAC-SHA256 under the client sub-key of the archive's de-identification
secret (:class:`~omipacs.deid.keys.DeidKeys`), each with its own label, so they match no
other hash the archive makes (the identity map's, the client ID's):

* :func:`client_key` of the pseudonymous client ID: a release compares it with the
  clients it delivered before, to list the withdrawn ones;
* :func:`source_key` of her source identity, i.e. the identity map's key (itself the
  keyed hash of her NHS number, or of site and local ID): ingest recognises a later
  send for her from any site before it de-identifies or records anything.

The checks accept the keys as services hold them (``services.extras["deid.keys"]``) or
the settings to load them from.
"""

from __future__ import annotations

import logging

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from omipacs.config import Settings
from omipacs.deid.keys import DeidKeys, load_keys
from omipacs.deid.pseudonyms import ClientPseudonym, keyed_hex
from omipacs.errors import Withdrawn
from omipacs.index.models import Withdrawal

log = logging.getLogger(__name__)


def _keys(settings_or_key: DeidKeys | Settings) -> DeidKeys:
    if isinstance(settings_or_key, DeidKeys):
        return settings_or_key
    return load_keys(settings_or_key.deid)


def client_key(settings_or_key: DeidKeys | Settings, client_id: str) -> str:
    """The tombstone's keyed hash of a pseudonymous client ID (64 hex digits)."""
    return keyed_hex(_keys(settings_or_key), "withdrawn-client", client_id.strip())


def source_key(settings_or_key: DeidKeys | Settings, identity_key_hash: str) -> str:
    """The tombstone's keyed hash of a source identity (the identity map's key)."""
    return keyed_hex(_keys(settings_or_key), "withdrawn-source", identity_key_hash)


def is_withdrawn(session: Session, client_id: str, key: DeidKeys | Settings) -> bool:
    """Whether the client with this pseudonymous ID has withdrawn."""
    found = session.scalar(
        select(Withdrawal.pk).where(Withdrawal.client_hash == client_key(key, client_id))
    )
    return found is not None


def is_withdrawn_source(
    session: Session, client_id: str, identity_key_hash: str, key: DeidKeys | Settings
) -> bool:
    """Whether an incoming instance's client (by source identity or ID) has withdrawn."""
    keys = _keys(key)
    conditions = [Withdrawal.client_hash == client_key(keys, client_id)]
    if identity_key_hash:
        conditions.append(Withdrawal.source_hash == source_key(keys, identity_key_hash))
    return session.scalar(select(Withdrawal.pk).where(or_(*conditions)).limit(1)) is not None


WITHDRAWN_REASON = (
    "the client of this instance has withdrawn from the archive (data opt-out); "
    "nothing of hers is accepted"
)
"""The reason every door gives (DIMSE Error Comment, STOW-RS, import): it names nobody."""


class Tombstones:
    """The ingest pipeline's and de-identification's check against the tombstone.

    Parameters
    ----------
    keys
        The archive's de-identification keys.
    sessions
        Sessions for the check made before de-identification records anything.
    """

    def __init__(self, keys: DeidKeys, sessions: sessionmaker[Session] | None = None) -> None:
        self.keys = keys
        self.sessions = sessions

    def refuse(self, session: Session, client_id: str, identity_key_hash: str = "") -> None:
        """Raise :class:`~omipacs.errors.Withdrawn` if the client has withdrawn.

        Logged without any identifier (not even the pseudonymous one).
        """
        if is_withdrawn_source(session, client_id, identity_key_hash, self.keys):
            log.warning("refused data for a withdrawn client")
            raise Withdrawn(WITHDRAWN_REASON)

    def refuse_client(self, client: ClientPseudonym) -> None:
        """:meth:`refuse` in a session of its own (de-identification, before the
        identity map or any study binding is written)."""
        if self.sessions is None:
            return
        with self.sessions() as session:
            self.refuse(session, client.client_id, client.key_hash)
