"""Property: whatever bytes arrive, "refused and nothing left" or "stored, identical, decodable".

Valid FFDM, DBT (native and compressed) and SR files from the demo factory are mutated
(bytes flipped, lengths forged, ranges cut, deleted or inserted) and sent to a running
archive through C-STORE, STOW-RS and import. For every input one of two things holds:

* it is refused with a status, and no blob, no index row and no spool file remain; or
* it is stored, the bytes served by WADO-RS are the bytes stored (and, for the doors
  that store unchanged, the data set sent), and every frame decodes with pydicom and
  pylibjpeg.

The default run stays near a minute (Hypothesis profile ``omipacs``);
``OMIPACS_PROPERTY_EXAMPLES=5000`` runs more. Example counts per door and outcome are
printed at the end.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid

from omipacs.annotations.records import MarkInput
from omipacs.annotations.sr_write import PlannedMark, build_marks_sr
from omipacs.demo import factory
from omipacs.dicom.parse import parse_file
from omipacs.errors import OmipacsError
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.services import Services
from tests.conftest import ServerProcess, make_settings, start_server
from tests.ingest import doors

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("OMIPACS_PROPERTY_EXAMPLES", "100"))
settings.register_profile(
    "omipacs",
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TALLY: Counter[str] = Counter()


def _seeds() -> list[tuple[str, pydicom.Dataset]]:
    mammo = factory.make_mammo(rows=64, columns=48, rng=11)
    dbt = factory.make_dbt(frames=3, rows=64, columns=48, rng=12)
    image = pydicom.dcmread(io.BytesIO(factory.to_bytes(mammo)), stop_before_pixels=True)
    mark = MarkInput(
        image.StudyInstanceUID, image.SeriesInstanceUID, image.SOPInstanceUID,
        3, 4, 20, 30, mark_id="1", reader="R1",
    )  # fmt: skip
    sr = build_marks_sr(image, [PlannedMark(mark)])
    sr.file_meta = pydicom.dataset.FileMetaDataset()
    sr.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    return [
        ("ffdm", mammo),
        ("ffdm-jpegls", factory.compress(copy.deepcopy(mammo), JPEGLSLossless)),
        ("ffdm-j2k", factory.compress(copy.deepcopy(mammo), JPEG2000Lossless)),
        ("dbt", dbt),
        ("dbt-rle", factory.compress(copy.deepcopy(dbt), RLELossless)),
        ("sr", sr),
    ]


SEEDS = _seeds()


def _fresh(index: int) -> bytes:
    """The seed as a new instance (its own SOP Instance UID), as a Part 10 file."""
    ds = copy.deepcopy(SEEDS[index][1])
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


_LENGTHS = (b"\xf0\xff\xff\xff", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff")


@st.composite
def mutations(draw: st.DrawFn) -> tuple[int, str, list[tuple[str, float, int, bytes]]]:
    index = draw(st.integers(0, len(SEEDS) - 1))
    door = draw(st.sampled_from(["c-store", "stow", "import"]))
    edits = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["flip", "truncate", "delete", "insert", "length", "none"]),
                # Half the edits land in the last 600 bytes of the header or the file.
                st.one_of(st.floats(0.0, 1.0), st.floats(0.97, 1.0)),
                st.integers(1, 64),
                st.sampled_from(_LENGTHS),
            ),
            min_size=0,
            max_size=3,
        )
    )
    return index, door, edits


def _mutate(data: bytes, edits: list[tuple[str, float, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, where, n, value in edits:
        # Positions after the preamble: zeroing the preamble is not a mutation.
        pos = 128 + int(where * (len(out) - 129))
        if kind == "flip":
            out[pos] ^= 1 << (n % 8)
        elif kind == "truncate":
            del out[pos:]
        elif kind == "delete":
            del out[pos : pos + n]
        elif kind == "insert":
            out[pos:pos] = bytes([n]) * n
        elif kind == "length":
            out[pos : pos + len(value)] = value
        if len(out) < 200:
            break
    return bytes(out)


@dataclass
class Archive:
    server: ServerProcess
    services: Services
    workdir: Path


@pytest.fixture(scope="module")
def archive(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Archive]:
    workdir = tmp_path_factory.mktemp("property")
    server = start_server(make_settings(workdir), workdir)
    svc = Services.create(server.settings, migrate=False)
    try:
        yield Archive(server, svc, workdir)
    finally:
        svc.close()
        server.stop()
        line = f"property examples (door:outcome): {dict(sorted(TALLY.items()))}"
        capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
        if capture is not None:  # shown even when output is captured
            with capture.global_and_fixture_disabled():
                print(f"\n{line}")
        else:
            print(line)


def _send(a: Archive, door: str, data: bytes) -> doors.Told:
    path = a.workdir / "input.dcm"
    path.write_bytes(data)
    if door == "c-store":
        told = doors.c_store(a.server.dimse_port, path)
        if told.accepted:  # stored under the UID the SCU announced, from the file meta
            uid = str(pydicom.filereader.read_file_meta_info(path).MediaStorageSOPInstanceUID)
            return doors.Told("c-store", 0, uid)
        return told
    if door == "stow":
        return doors.stow_one(a.server.base_url, data)
    origin = IngestOrigin(OriginKind.IMPORT, ae_title="IMPORT", deidentify=False)
    try:
        result = a.services.pipeline.ingest_file(path, origin)
    except OmipacsError as exc:
        return doors.Told("import", int(exc.dimse_status))
    return doors.Told("import", 0, result.sop_instance_uid)


def _state(a: Archive) -> tuple[int, frozenset[str]]:
    return doors.instance_count(a.services), frozenset(k for k, _ in a.services.blobs.keys())


def _dataset_part(data: bytes) -> bytes:
    tmp = Path("/dev/shm" if Path("/dev/shm").is_dir() else "/tmp") / f"p{os.getpid()}.dcm"
    tmp.write_bytes(data)
    try:
        return data[parse_file(tmp).dataset_offset :]
    finally:
        tmp.unlink()


def _check_stored(a: Archive, door: str, sent: bytes, uid: str) -> None:
    with a.services.sessions() as session:
        from omipacs.index import repository

        stored = repository.find_instance(session, uid)
    assert stored is not None, f"{door} acknowledged {uid} but the index has no row"
    url = (
        f"{a.server.base_url}/studies/{stored.study_instance_uid}/series/"
        f"{stored.series_instance_uid}/instances/{uid}"
    )
    got = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"}, timeout=60)
    assert got.status_code == 200, got.text
    body = got.content
    assert hashlib.sha256(body).hexdigest() == stored.sha256, "served bytes differ from stored"
    if door != "stow":  # C-STORE (a trusted peer) and import store the data set unchanged
        assert _dataset_part(body) == _dataset_part(sent), "stored data set differs from sent"
    ds = pydicom.dcmread(io.BytesIO(body))
    if "PixelData" in ds:
        frames = int(ds.get("NumberOfFrames") or 1)
        for index in range(frames):
            frame = pydicom.pixels.pixel_array(ds, index=index)
            assert frame.shape[:2] == (ds.Rows, ds.Columns)


@settings(settings.get_profile("omipacs"))
@given(case=mutations())
def test_every_input_is_refused_cleanly_or_stored_intact(
    archive: Archive, case: tuple[int, str, list[tuple[str, float, int, bytes]]]
) -> None:
    index, door, edits = case
    data = _mutate(_fresh(index), edits)
    before = _state(archive)
    told = _send(archive, door, data)
    outcome = "stored" if told.accepted else ("client" if told.status < 0 else "refused")
    TALLY[f"{door}:{outcome}"] += 1
    if told.accepted:
        _check_stored(archive, door, data, told.stored_uid)
    else:
        assert _state(archive) == before, f"{door} refused {told.status:#06x} but kept bytes"
    assert doors.leftovers(archive.services) == [], "a spool file was left behind"
