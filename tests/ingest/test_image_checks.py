"""What an image must have before it is acknowledged, held on every door of a running server.

Each malformed case (header-only images, lengths past the end, missing or bogus
fragments, fragment/frame mismatches, transfer syntaxes that contradict the stream, SOP
classes that contradict the modality, decompression bombs, truncated headers) goes over
C-STORE, STOW-RS and ``omipacs import``; each must be refused with its status and leave
no blob, no index row and no spool file.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest

from omipacs.annotations.records import MarkInput
from omipacs.annotations.sr_write import PlannedMark, build_marks_sr, write_sr
from omipacs.demo import factory
from omipacs.services import Services
from tests.conftest import ServerProcess
from tests.ingest import doors
from tests.ingest.malformed import CASES

pytestmark = pytest.mark.slow


def _blobs(archive: Services) -> list[str]:
    return [key for key, _ in archive.blobs.keys()]


def test_malformed_images_are_refused_on_every_door(
    server: ServerProcess, archive: Services, tmp_path: Path
) -> None:
    built = {name: (build(), status) for name, (build, status) in CASES.items()}
    # STOW-RS: one request, a good part first; each failure is named with its reason.
    good = factory.to_bytes(factory.make_mammo(rows=32, columns=32))
    code, doc = doors.stow(server.base_url, good, *(data for data, _ in built.values()))
    assert code == 202
    reasons = [item["00081197"]["Value"][0] for item in doc["00081198"]["Value"]]
    assert reasons == [status for _, status in built.values()]
    # C-STORE and import, one file at a time.
    paths = []
    for name, (data, status) in built.items():
        path = tmp_path / f"{name}.dcm"
        path.write_bytes(data)
        paths.append(path)
        told = doors.c_store(server.dimse_port, path)
        if name == "length_swallows_pixels":
            # pynetdicom sends the data set as far as the file goes; the SCP then sees
            # an image without pixel data rather than a length past the end.
            assert told.status in (0xC000, 0xA900), hex(told.status)
        else:
            assert told.status == status, (name, hex(told.status))
    summary = doors.import_files(server.config, paths, tmp_path)
    assert summary["rejected"] == len(paths) and summary["stored"] == 0, summary
    assert doors.instance_count(archive) == 1 and len(_blobs(archive)) == 1
    assert doors.leftovers(archive) == []


def _sr() -> bytes:
    image = pydicom.dcmread(
        io.BytesIO(factory.to_bytes(factory.make_mammo(rows=64, columns=48, rng=3))),
        stop_before_pixels=True,
    )
    mark = MarkInput(
        image.StudyInstanceUID, image.SeriesInstanceUID, image.SOPInstanceUID,
        3, 4, 20, 30, mark_id="1", reader="R1",
    )  # fmt: skip
    out = io.BytesIO()
    write_sr(build_marks_sr(image, [PlannedMark(mark)]), out)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["sr", "mammo", "dbt"])
def test_truncations_in_the_last_header_bytes_are_refused(
    server: ServerProcess, archive: Services, tmp_path: Path, kind: str
) -> None:
    if kind == "sr":
        data = _sr()
        end = len(data)
    else:
        ds = (
            factory.make_mammo(rows=32, columns=32)
            if kind == "mammo"
            else factory.make_dbt(frames=3, rows=32, columns=24)
        )
        data = factory.to_bytes(ds)
        end = data.rindex(b"\xe0\x7f\x10\x00OW") + 12
    cuts = list(range(end - 500, end, 7))
    code, doc = doors.stow(server.base_url, *(data[:n] for n in cuts))
    assert code == 409, doc
    assert {item["00081197"]["Value"][0] for item in doc["00081198"]["Value"]} <= {
        0xC000,
        0xA900,
    }
    paths = []
    for i, n in enumerate(cuts):
        path = tmp_path / f"cut{i}.dcm"
        path.write_bytes(data[:n])
        paths.append(path)
    for path in paths[::5]:
        assert doors.c_store(server.dimse_port, path).status in (0xC000, 0xA900, -1)
    summary = doors.import_files(server.config, paths, tmp_path)
    assert summary["rejected"] == len(paths), summary
    assert doors.instance_count(archive) == 0 and _blobs(archive) == []
    assert doors.leftovers(archive) == []
