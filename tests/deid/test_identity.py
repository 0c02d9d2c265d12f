"""The identity map: keyed hash to client ID, apart from the index."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from omipacs.config import DatabaseSettings, DeidSettings, Settings, StorageSettings, load
from omipacs.deid.identity import IdentityMap, identity_path, identity_url
from omipacs.deid.keys import DeidKeys
from omipacs.deid.pseudonyms import ClientPseudonym, client_pseudonym, study_key
from omipacs.errors import ConfigurationError, OmipacsError
from tests.pg import create_database

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


def test_a_repeat_sighting_takes_no_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The objects of one woman arriving in the same second are recorded once: the
    others only read, so they never queue for the map's write lock."""
    monkeypatch.setattr("omipacs.deid.identity._now", lambda: "2026-01-02T03:04:05+00:00")
    client = client_pseudonym(KEYS, "9434765919", "", "")
    path = tmp_path / "identity.sqlite"
    with IdentityMap(path) as identity:
        identity.record(client, "SITE_A")
        blocker = sqlite3.connect(path, timeout=0)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        try:
            done = threading.Event()
            thread = threading.Thread(
                target=lambda: (identity.record(client, "SITE_A"), done.set()), daemon=True
            )
            thread.start()
            assert done.wait(timeout=10)
        finally:
            blocker.rollback()
            blocker.close()
        # A new site is still written.
        identity.record(client, "SITE_B")
        record = identity.lookup(client.key_hash)
        assert record is not None and record.sites == ("SITE_A", "SITE_B")


def test_unbound_lists_only_keys_without_a_client(tmp_path: Path) -> None:
    client = client_pseudonym(KEYS, "9434765919", "", "")
    bound, free = (study_key(KEYS, "SITE_A", "accession", a) for a in ("A1", "A2"))
    with IdentityMap(tmp_path / "identity.sqlite") as identity:
        identity.bind_study([bound], client)
        assert identity.unbound([bound, free]) == [free]
        assert identity.unbound([]) == []


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


def test_default_url_is_the_sqlite_file_and_never_the_index(tmp_path: Path) -> None:
    settings = Settings(storage=StorageSettings(root=tmp_path))
    assert identity_url(settings) == f"sqlite:///{tmp_path / 'identity.sqlite'}"
    index = "postgresql+psycopg://omipacs@db.internal:5432/omipacs"
    shared = dataclasses.replace(
        settings,
        database=DatabaseSettings(url=index),
        deid=DeidSettings(identity_url="postgresql+psycopg://id@db.internal:5432/identity"),
    )
    assert identity_url(shared).endswith("/identity")
    same = dataclasses.replace(shared, deid=DeidSettings(
        identity_url="postgresql+psycopg://other@db.internal/omipacs"))
    with pytest.raises(ConfigurationError, match="research index"):
        identity_url(same)
    loaded = load(None, {"OMIPACS_DEID_IDENTITY_URL": "postgresql://db/identity"})
    assert loaded.deid.identity_url == "postgresql://db/identity"


RACE_STUDIES = 150

#: One racing process (a machine): waits for the start file, then binds every study
#: (seen by both for the first time, each with its own candidate client) and records
#: the same clients, and prints the client each study ended up with.
RACE = """
import json, os, sys, time
from omipacs.deid.identity import IdentityMap
from omipacs.deid.keys import DeidKeys
from omipacs.deid.pseudonyms import client_pseudonym, study_key
url, who, start, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
keys = DeidKeys.from_secret(bytes(range(1, 33)))
identity = IdentityMap(url)
mine = [client_pseudonym(keys, None, f"SITE_{who}|", f"L{i}") for i in range(n)]
shared = [client_pseudonym(keys, None, "SITE_A|", f"W{i}") for i in range(n)]
deadline = time.monotonic() + 60
while not os.path.exists(start) and time.monotonic() < deadline:
    time.sleep(0.001)
bound = []
for i in range(n):
    study = [study_key(keys, "SITE_A", "uid", f"1.2.{i}"),
             study_key(keys, "SITE_A", "accession", f"A{i}")]
    bound.append(sorted(c.client_id for c in identity.bind_study(study, mine[i])))
    identity.record(shared[i], f"SITE_{who}")
identity.close()
print(json.dumps(bound))
"""


def test_two_processes_racing_on_postgresql_agree(postgres: str, tmp_path: Path) -> None:
    """Two machines' first sight of the same studies and clients: one answer each."""
    url = create_database(postgres)
    start = tmp_path / "start"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, url, str(who), str(start), str(RACE_STUDIES)],
            stdout=subprocess.PIPE, text=True,
        )
        for who in (1, 2)
    ]
    time.sleep(3)  # both import and connect (and race to create the schema) first
    start.touch()
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert len(outs[0]) == len(outs[1]) == RACE_STUDIES
    # Every study got one client, the same one in both processes, whoever won.
    assert all(len(b) == 1 for b in outs[0]) and outs[0] == outs[1]
    with IdentityMap(url) as identity:
        assert len(identity) == RACE_STUDIES
        record = identity.lookup(client_pseudonym(KEYS, None, "SITE_A|", "W0").key_hash)
        assert record is not None and record.sites == ("SITE_1", "SITE_2")
        assert identity.study_clients(
            [study_key(KEYS, "SITE_A", "accession", "A7")]
        ) == identity.study_clients([study_key(KEYS, "SITE_A", "uid", "1.2.7")])


def test_postgresql_map_records_and_refuses_collisions(postgres: str) -> None:
    with IdentityMap(create_database(postgres)) as identity:
        client = client_pseudonym(KEYS, "9434765919", "", "")
        identity.record(client, "SITE_B")
        identity.record(client, "SITE_A")
        record = identity.lookup_client(client.client_id)
        assert record is not None and record.sites == ("SITE_A", "SITE_B") and record.linked
        identity.record(ClientPseudonym("OPTMAAAAAAAAAAAA", True, "aa" * 32), "S")
        with pytest.raises(OmipacsError, match="collision"):
            identity.record(ClientPseudonym("OPTMAAAAAAAAAAAA", True, "bb" * 32), "S")
