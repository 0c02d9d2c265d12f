"""The tombstone's keyed hashes and the checks a release and ingest make with them."""

from __future__ import annotations

import secrets
from datetime import datetime

from omipacs.deid.keys import DeidKeys
from omipacs.deid.pseudonyms import client_pseudonym
from omipacs.deid.tombstones import (
    client_key,
    is_withdrawn,
    is_withdrawn_source,
    source_key,
)
from omipacs.index.db import make_engine, make_sessionmaker, upgrade
from omipacs.index.models import Withdrawal


def test_hashes_are_keyed_and_distinct() -> None:
    keys = DeidKeys.from_secret(secrets.token_bytes(32))
    other = DeidKeys.from_secret(secrets.token_bytes(32))
    client = client_pseudonym(keys, "9434765919", "", "")
    assert client_key(keys, client.client_id) == client_key(keys, client.client_id)
    assert client_key(keys, client.client_id) != client_key(other, client.client_id)
    assert len(client_key(keys, client.client_id)) == 64
    # Neither hash equals the identity map's key nor contains the ID.
    assert source_key(keys, client.key_hash) != client.key_hash
    assert client.client_id not in client_key(keys, client.client_id)
    assert source_key(keys, client.key_hash) != client_key(keys, client.key_hash)


def test_is_withdrawn(db_url: str) -> None:
    keys = DeidKeys.from_secret(secrets.token_bytes(32))
    gone = client_pseudonym(keys, "9434765919", "", "")
    stays = client_pseudonym(keys, None, "SITE|", "H123")
    engine = make_engine(db_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine, write=True)
    with sessions.begin() as session:
        session.add(Withdrawal(client_hash=client_key(keys, gone.client_id),
                               source_hash=source_key(keys, gone.key_hash),
                               withdrawn_at=datetime(2026, 12, 7)))
    with sessions() as session:
        assert is_withdrawn(session, gone.client_id, keys)
        assert not is_withdrawn(session, stays.client_id, keys)
        assert is_withdrawn_source(session, "", gone.key_hash, keys)
        assert is_withdrawn_source(session, gone.client_id, "", keys)
        assert not is_withdrawn_source(session, stays.client_id, stays.key_hash, keys)
    engine.dispose()
