"""Two releases of one licence begun at the same moment, on PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from omipacs.export import release as releases
from tests.export.archive import build
from tests.pg import create_database


@pytest.mark.parametrize("same_destination", [True, False])
def test_releases_begun_at_once_are_numbered_once(
    tmp_path: Path, postgres: str, same_destination: bool
) -> None:
    archive = build(tmp_path, create_database(postgres))
    services, licence = archive.services, archive.licences["full"]
    first_url = str(tmp_path / "out-a")
    second_url = first_url if same_destination else str(tmp_path / "out-b")
    begun = threading.Event()
    got: dict[str, tuple[int, int, bool]] = {}
    failed: list[BaseException] = []

    def first() -> None:
        try:
            with services.write_sessions.begin() as session:
                row, new = releases.begin(session, licence, first_url)
                got["first"] = (row.pk, row.number, new)
                begun.set()
                time.sleep(1.0)  # still uncommitted while the second one begins
        except BaseException as exc:  # reported below
            failed.append(exc)
            begun.set()

    def second() -> None:
        try:
            assert begun.wait(60)
            with services.write_sessions.begin() as session:
                row, new = releases.begin(session, licence, second_url)
                got["second"] = (row.pk, row.number, new)
        except BaseException as exc:
            failed.append(exc)

    try:
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
            assert not t.is_alive()
        assert not failed, failed
        pk, number, new = got["first"]
        assert (number, new) == (1, True)
        if same_destination:
            # The second waited for the first, then took it up to resume it.
            assert got["second"] == (pk, 1, False)
        else:
            assert got["second"][1:] == (2, True)
    finally:
        services.close()
