"""The identity map: keyed hash to client ID, apart from the index."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from omipacs.config import DeidSettings, Settings, StorageSettings
from omipacs.deid.identity import IdentityMap, identity_path
from omipacs.deid.keys import DeidKeys
from omipacs.deid.pseudonyms import ClientPseudonym, client_pseudonym, study_key
from omipacs.errors import OmipacsError

KEYS = DeidKeys.from_secret(bytes(range(1, 33)))


def test_record_and_lookup(tmp_path: Path) -> None:
    client = client_pseudonym(KEYS, "9434765919", "", "")
    with IdentityMap(tmp_path / "identity.sqlite") as identity:
        identity.record(client, "SITE_B")
        identity.record(client, "SITE_A")
        identity.record(client, "SITE_A")
        record = identity.lookup(client.key_hash)
        assert record is not None
        assert (record.client_id, record.linked, record.sites) == (
            client.client_id, True, ("SITE_A", "SITE_B"))
        assert record.first_seen <= record.last_seen
        assert identity.lookup_client(client.client_id) == record
        assert identity.lookup("0" * 64) is None
        assert len(identity) == 1


def test_the_file_is_private_and_reopened(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "identity.sqlite"
    client = client_pseudonym(KEYS, None, "SITE_A|X", "1")
    with IdentityMap(path) as identity:
        identity.record(client, "SITE_A")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with IdentityMap(path) as identity:
        record = identity.lookup(client.key_hash)
        assert record is not None and not record.linked


def test_concurrent_records(tmp_path: Path) -> None:
    identity = IdentityMap(tmp_path / "identity.sqlite")
    clients = [client_pseudonym(KEYS, None, "S", str(n)) for n in range(50)]
    errors: list[BaseException] = []

    def work(site: str) -> None:
        try:
            for client in clients:
                identity.record(client, site)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"SITE_{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(identity) == 50
    record = identity.lookup(clients[0].key_hash)
    assert record is not None and len(record.sites) == 4
    identity.close()


def test_collision_is_refused(tmp_path: Path) -> None:
    with IdentityMap(tmp_path / "identity.sqlite") as identity:
        identity.record(ClientPseudonym("OPTMAAAAAAAAAAAA", True, "aa" * 32), "S")
        with pytest.raises(OmipacsError, match="collision"):
            identity.record(ClientPseudonym("OPTMAAAAAAAAAAAA", True, "bb" * 32), "S")


def test_default_path_is_under_the_storage_root(tmp_path: Path) -> None:
    settings = Settings(storage=StorageSettings(root=tmp_path))
    assert identity_path(settings) == tmp_path / "identity.sqlite"
    other = Settings(storage=StorageSettings(root=tmp_path),
                     deid=DeidSettings(identity_db=tmp_path / "x.sqlite"))
    assert identity_path(other) == tmp_path / "x.sqlite"


def test_a_study_is_bound_to_its_first_client_only(tmp_path: Path) -> None:
    first = client_pseudonym(KEYS, "9434765919", "", "")
    second = client_pseudonym(KEYS, "4010232137", "", "")
    study = study_key(KEYS, "SITE_A", "uid", "1.2.3")
    with IdentityMap(tmp_path / "identity.sqlite") as identity:
        assert identity.study_clients([study]) == set()
        assert identity.bind_study([study], first) == {first}
        assert identity.bind_study([study], second) == {first}
        assert identity.study_clients([study]) == {first}
    # Namespaced by site: the same UID from another site is another key.
    assert study_key(KEYS, "SITE_B", "uid", "1.2.3") != study
    assert study_key(KEYS, "SITE_A", "accession", "1.2.3") != study


def test_concurrent_binds_agree(tmp_path: Path) -> None:
    clients = [client_pseudonym(KEYS, None, "SITE_A|", f"H{n}") for n in range(8)]
    study = study_key(KEYS, "SITE_A", "uid", "1.2.3.4")
    results: list[set[ClientPseudonym]] = []
    with IdentityMap(tmp_path / "identity.sqlite") as identity:
        threads = [threading.Thread(target=lambda c=c: results.append(
            identity.bind_study([study], c))) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert len(results) == 8 and len({frozenset(r) for r in results}) == 1
