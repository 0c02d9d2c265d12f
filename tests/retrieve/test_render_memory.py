"""What one render of the largest accepted frame costs in memory, measured in a process.

Each decode slot of the server holds one such render at a time, so this is what a slot
costs (``[retrieve] max_concurrent_decodes`` times this, plus the processes at rest, is
the server's peak). The peak resident size of a child process is read from
``/proc/self/status`` (VmHWM, reset through ``clear_refs`` once the inputs are loaded),
which counts what numpy, the codec libraries and Pillow allocate alike.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless

from omipacs.dicom.pixels import decode_cost
from tests.retrieve.builders import (
    encode_frames,
    header_of,
    largest_accepted_frame,
    make_image,
    with_pixels,
    write,
)

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS reset"
)

FRAME_MIB = 64
MIB = 1 << 20

_PROBE = """
import io, json, sys
import pydicom
from pydicom.encaps import generate_frames
from omipacs.retrieve.render import Viewport, render_stored_frame

path, media, thumbnail, viewport = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
ds = pydicom.dcmread(path)
syntax = ds.file_meta.TransferSyntaxUID
if syntax.is_encapsulated:
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
else:
    frame = ds.PixelData
del ds
header = pydicom.dcmread(path, stop_before_pixels=True)

def kib(key):
    with open("/proc/self/status") as f:
        return int(f.read().split(key + ":")[1].split()[0])

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # VmHWM := VmRSS
before = kib("VmRSS")
view = Viewport(*(int(v) for v in viewport.split(","))) if viewport else None
out = render_stored_frame(
    header, frame, syntax, media_type=media, thumbnail=thumbnail, viewport=view
)
print(json.dumps({"peak_mib": (kib("VmHWM") - before) / 1024, "bytes": len(out)}))
"""


def peak_of_render(path: Path, media: str, *, thumbnail: bool = False, viewport: str = "") -> float:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), media, "1" if thumbnail else "0", viewport],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bytes"] > 0
    return float(result["peak_mib"])


@pytest.fixture(scope="module")
def largest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("largest") / "largest.dcm"
    path.write_bytes(largest_accepted_frame(value=200))
    return path


@pytest.mark.parametrize("media", ["image/jpeg", "image/png"])
def test_full_size_render_of_the_largest_frame_stays_near_two_frames(
    largest: Path, media: str
) -> None:
    # The decoded frame, the codec's own buffer while it decodes, and the 8-bit picture:
    # about two frames at the peak (pydicom's decoder path alone took about six), and
    # no more than the decode slot reserves for it.
    peak = peak_of_render(largest, media)
    assert peak < 2.5 * FRAME_MIB
    assert peak <= decode_cost(header_of(largest), JPEGLSLossless) / MIB


def test_thumbnail_of_the_largest_frame_adds_nothing_to_its_decode(largest: Path) -> None:
    # JPEG-LS cannot decode at a lower resolution: the frame is decoded in full, and
    # the reduction before the lookup table adds no full-size copy.
    assert peak_of_render(largest, "image/jpeg", thumbnail=True) < 2.5 * FRAME_MIB


def test_jpeg2000_thumbnail_decodes_a_fraction_of_the_frame(tmp_path: Path) -> None:
    # 4096 x 4096 x 16 bits: 32 MiB decoded in full; the thumbnail decodes 1/16 of it.
    ds, _ = make_image(rows=4096, columns=4096, bits_stored=12)
    yy, xx = np.mgrid[0:4096, 0:4096]
    arr = ((xx + yy) % 4096).astype(np.uint16)[None]
    path = write(
        with_pixels(ds, encode_frames(ds, arr, JPEG2000Lossless), JPEG2000Lossless),
        tmp_path / "j2k.dcm",
    )
    full = peak_of_render(path, "image/jpeg", viewport="4096,4096")
    thumbnail = peak_of_render(path, "image/jpeg", thumbnail=True)
    assert thumbnail < full / 4, (thumbnail, full)
    # The decode slot reserves at least what the render took (its budget is honest).
    assert full <= decode_cost(ds, JPEG2000Lossless) / MIB


def test_native_frame_renders_in_place(tmp_path: Path) -> None:
    # 8192 x 8192 x 8 bits uncompressed: the pixels are read where they lie in the
    # frame's bytes (no decoded copy), so the picture is the only new full-size array.
    ds, _ = make_image(rows=8192, columns=8192, bits_allocated=8, bits_stored=8)
    ds.PixelData = np.full((8192, 8192), 90, np.uint8).tobytes()
    path = write(ds, tmp_path / "native.dcm")
    del ds
    peak = peak_of_render(path, "image/png")
    assert peak < 1.5 * FRAME_MIB
    assert peak <= decode_cost(header_of(path), ExplicitVRLittleEndian) / MIB
