"""Decode slots bound the whole server: every HTTP worker shares them."""

from __future__ import annotations

import dataclasses
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
import requests

from omipacs.config import RetrieveSettings, Settings
from tests.conftest import start_server
from tests.ingest import doors
from tests.retrieve.builders import largest_accepted_frame

pytestmark = pytest.mark.slow

_SLOT_LINE = re.compile(r"decode slot (taken|released) by process (\d+)(?: \((.*)\))?")


def test_two_http_workers_render_large_frames_one_after_the_other(
    settings: Settings, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        settings, retrieve=RetrieveSettings(max_concurrent_decodes=1, decode_wait_seconds=60.0)
    )
    server = start_server(settings, tmp_path, "--http-workers", "2", "--verbose")
    try:
        big = tmp_path / "big.dcm"
        big.write_bytes(largest_accepted_frame())  # 8192 x 8192: 64 MiB decoded
        assert doors.c_store(server.dimse_port, big).accepted
        ds = pydicom.dcmread(big, stop_before_pixels=True)
        url = (
            f"{server.base_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}/rendered"
        )

        def render(_: int) -> int:
            return requests.get(url, headers={"Accept": "image/png"}, timeout=120).status_code

        def slot_lines() -> list[tuple[str, int, str]]:
            found = (_SLOT_LINE.search(line) for line in list(server.log))
            return [(m[1], int(m[2]), m[3] or "") for m in found if m]

        # Parallel requests until both workers have decoded (which one accepts a
        # connection is the kernel's choice).
        deadline = time.monotonic() + 300
        while len({pid for _, pid, _ in slot_lines()}) < 2:
            assert time.monotonic() < deadline, "the second worker never decoded"
            with ThreadPoolExecutor(3) as pool:
                assert list(pool.map(render, range(3))) == [200, 200, 200]
        lines = slot_lines()
        settle = time.monotonic() + 10  # the log is read from the server's pipe by a thread
        while len(lines) % 2 and time.monotonic() < settle:
            time.sleep(0.1)
            lines = slot_lines()
        assert lines and len(lines) % 2 == 0
        for taken, released in zip(lines[::2], lines[1::2], strict=True):
            # Whichever process decodes, the slot is released before anyone takes it again.
            assert taken[0] == "taken" and taken[2].startswith("1 in use server-wide")
            assert released[:2] == ("released", taken[1])
    finally:
        server.stop()
