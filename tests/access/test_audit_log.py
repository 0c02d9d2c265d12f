"""The audit log's two copies: the JSON-lines file at once, the index in batches.

Request threads only append; the writer thread wakes on its own schedule (or when asked
by ``flush`` and ``close``). These tests hold it to that: nothing recorded is lost or
reordered, ``flush`` returns only when every earlier event is in the index, many
threads recording at once leave whole lines, and a token's use is noted.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from omipacs.access import admin
from omipacs.access.audit import AuditLog, AuditRecord, query_events
from omipacs.access.models import Token
from omipacs.services import Services

T0 = datetime(2026, 3, 1, 9, 0, 0)


def _event(i: int, user: str = "r1@lab.example") -> AuditRecord:
    return AuditRecord(
        at=T0 + timedelta(milliseconds=i, microseconds=i % 7), user_email=user,
        token_prefix="omi_abcdefgh", licence_pk=None, remote="127.0.0.1", door="http",
        action="read-images",
        resource=f"archive GET /dicom-web/studies/1.2.{i}", outcome="allowed", status=200,
        bytes_sent=i,
    )


def _log(services: Services, tmp_path: Path, batch_seconds: float) -> AuditLog:
    return AuditLog(services.write_sessions, tmp_path / "trail.jsonl",
                    batch_seconds=batch_seconds)


def test_flush_waits_for_every_earlier_event_in_order(
    any_db_services: Services, tmp_path: Path
) -> None:
    # A writer that would otherwise sleep for a minute: flush must wake it.
    log = _log(any_db_services, tmp_path, batch_seconds=60)
    try:
        for i in range(1234):  # more than one insert batch
            log.record(_event(i))
        log.flush(timeout=30)
        with any_db_services.sessions() as s:
            got = query_events(s, user="r1@lab.example", limit=5000)
        assert [e.bytes_sent for e in got] == list(range(1234))
        # Every field reads back as recorded (times to the microsecond, on both databases).
        assert got == [_event(i) for i in range(1234)]
        lines = (tmp_path / "trail.jsonl").read_text().splitlines()
        assert [json.loads(line)["bytes_sent"] for line in lines] == list(range(1234))
    finally:
        log.close()


def test_events_reach_the_index_within_the_batch_time_unasked(
    any_db_services: Services, tmp_path: Path
) -> None:
    log = _log(any_db_services, tmp_path, batch_seconds=0.2)
    try:
        log.record(_event(1))
        found: list[AuditRecord] = []
        deadline = time.monotonic() + 30  # far beyond the 0.2 s batch time
        while not found and time.monotonic() < deadline:
            time.sleep(0.1)
            with any_db_services.sessions() as s:
                found = query_events(s, user="r1@lab.example")
        assert [e.bytes_sent for e in found] == [1]
    finally:
        log.close()


def test_close_writes_what_is_queued(any_db_services: Services, tmp_path: Path) -> None:
    log = _log(any_db_services, tmp_path, batch_seconds=60)
    for i in range(10):
        log.record(_event(i))
    log.close()
    with any_db_services.sessions() as s:
        assert len(query_events(s, user="r1@lab.example")) == 10


def test_concurrent_threads_leave_whole_lines_and_every_row(
    any_db_services: Services, tmp_path: Path
) -> None:
    log = _log(any_db_services, tmp_path, batch_seconds=0.05)

    def many(t: int) -> None:
        for i in range(200):
            log.record(_event(t * 1000 + i, user=f"t{t}@lab.example"))

    try:
        threads = [threading.Thread(target=many, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        log.flush(timeout=30)
        lines = (tmp_path / "trail.jsonl").read_text().splitlines()
        assert len(lines) == 1600
        assert {json.loads(line)["bytes_sent"] for line in lines} == {
            t * 1000 + i for t in range(8) for i in range(200)
        }
        with any_db_services.sessions() as s:
            for t in range(8):
                mine = query_events(s, user=f"t{t}@lab.example", limit=1000)
                # Each thread's events keep their order in the index too.
                assert [e.bytes_sent for e in mine] == [t * 1000 + i for i in range(200)]
    finally:
        log.close()


def test_a_tokens_last_use_is_noted(any_db_services: Services, tmp_path: Path) -> None:
    with any_db_services.write_sessions.begin() as s:
        admin.add_user(s, "c@a.example", "curator")
        token_pk = admin.create_token(s, "c@a.example")[1].id
    log = _log(any_db_services, tmp_path, batch_seconds=60)
    try:
        log.record(_event(5), token_id=token_pk)
        log.flush(timeout=30)
        with any_db_services.sessions() as s:
            used = s.scalar(select(Token.last_used_at).where(Token.pk == token_pk))
        assert used == _event(5).at
    finally:
        log.close()
