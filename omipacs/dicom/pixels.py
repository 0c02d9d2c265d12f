"""Decode one stored frame into a numpy array.

The archive keeps instances exactly as received and records, at ingest, where each frame's
bytes lie in the file. Retrieval therefore never needs the whole object in memory: the
caller reads one frame's bytes (for encapsulated data, the frame's fragments joined, item
headers excluded) and hands them here together with the header dataset (read with
``stop_before_pixels``). Everything that can read pixels (``/rendered``, ``/thumbnail``,
transcoding) goes through :func:`decode_frame`.

Decoding itself is pydicom's: its per-transfer-syntax :class:`~pydicom.pixels.decoders.base.
Decoder` handles the native layouts (planar configuration, bit packing, big endian, unused
high bits, YBR to RGB) and dispatches compressed frames to the installed plugins
(pylibjpeg-libjpeg for JPEG and JPEG-LS, pylibjpeg-openjpeg for JPEG 2000 and HTJ2K,
pydicom's own RLE decoder). See PS3.5 section 8 (native and encapsulated pixel data) and
Annex A.4 (encapsulation).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels.decoders.base import Decoder, get_decoder
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from omipacs.children import trim_malloc

try:  # pyjpegls: the JPEG-LS plugin pydicom itself prefers
    import jpeg_ls as _jpeg_ls  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - a test dependency of the package
    _jpeg_ls = None
from omipacs.errors import NotAcceptable, ServerBusy

LOGGER = logging.getLogger(__name__)

NATIVE_SYNTAXES: Final[frozenset[str]] = frozenset(
    {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian}
)
"""Uncompressed transfer syntaxes whose frames are a fixed number of bytes (PS3.5 8.1)."""

COMPRESSED_SYNTAXES: Final[frozenset[str]] = frozenset(
    {
        JPEGBaseline8Bit,
        JPEGExtended12Bit,
        JPEGLossless,
        JPEGLosslessSV1,
        JPEGLSLossless,
        JPEGLSNearLossless,
        JPEG2000Lossless,
        JPEG2000,
        HTJ2KLossless,
        HTJ2KLosslessRPCL,
        HTJ2K,
        RLELossless,
    }
)
"""Encapsulated transfer syntaxes this module can decode when a plugin is installed."""

LOSSY_SYNTAXES: Final[frozenset[str]] = frozenset(
    {JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless}
)
"""Syntaxes whose frames are always (or almost always) lossy; JPEG 2000 and HTJ2K
(.4.91, .4.203) may be either, so they are not listed."""


class _Slots:
    """Decode slots: a count of decodes at once and a budget of the memory they may take.

    Each decode reserves, for as long as it holds its slot, what it is estimated to
    allocate at its peak (:func:`decode_cost`), and waits while the reservations of the
    decodes in flight plus its own would exceed the budget. The count bounds the CPU
    rendering takes; the budget bounds memory whatever codec a client picks: a JPEG 2000
    frame costs about five times its decoded size where a JPEG-LS one costs two, so two
    slots alone would let two 64 MiB JPEG 2000 frames take 650 MB. A decode larger than
    the whole budget still runs, alone.

    A process-local bound keeps its table in this process. ``omipacs serve`` instead
    creates the semaphore and the table in shared memory before it forks the HTTP
    workers and the DIMSE processes (:func:`share_decodes`), so the settings bound the
    whole server rather than each process. A worker killed while decoding (gunicorn's
    timeout, the OOM killer) cannot release its slot, so each shared slot records the
    holder's pid, and a waiter hands back the slots of processes that no longer exist.
    """

    def __init__(self, count: int, shared: bool, budget: int) -> None:
        self.shared = shared
        self.budget = budget
        if shared:
            context = multiprocessing.get_context("fork")
            self.semaphore: Any = context.BoundedSemaphore(count)
            self.holders: Any = context.Array("q", count)  # pid per slot, 0 when free
            self.reserved: Any = context.Array("q", count, lock=False)  # bytes per slot
            self.lock: Any = self.holders.get_lock()
        else:
            self.semaphore = threading.BoundedSemaphore(count)
            self.holders = [0] * count
            self.reserved = [0] * count
            self.lock = threading.Lock()

    def acquire(self, wait: float, cost: int) -> int | None:
        """Take a slot and reserve `cost` bytes; the slot's index, or None after `wait`."""
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            step = max(0.0, min(1.0, left) if self.shared else left)
            if self.semaphore.acquire(timeout=step):
                with self.lock:
                    in_flight = sum(self.reserved)
                    if in_flight == 0 or in_flight + cost <= self.budget:
                        index = list(self.holders).index(0)
                        self.holders[index] = os.getpid()
                        self.reserved[index] = max(cost, 1)
                        return index
                self.semaphore.release()  # a slot, but not the memory: wait for a release
                if time.monotonic() >= deadline:
                    return None
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
                continue
            reclaimed = self.shared and self._reclaim_dead()
            if not reclaimed and time.monotonic() >= deadline:
                return None

    def release(self, index: int) -> None:
        with self.lock:
            self.holders[index] = 0
            self.reserved[index] = 0
        self.semaphore.release()

    def _reclaim_dead(self) -> bool:
        """Free the slots of processes that ended holding them; True if there were any."""
        reclaimed = False
        with self.lock:
            for i, pid in enumerate(self.holders):
                if pid and not _alive(pid):
                    LOGGER.warning("a decode slot held by ended process %d is free again", pid)
                    self.holders[i] = 0
                    self.reserved[i] = 0
                    self.semaphore.release()
                    reclaimed = True
        return reclaimed

    def in_use(self) -> str:
        """Slots held now by every process sharing them, and their reservations (for the log)."""
        with self.lock:
            held = sum(1 for pid in self.holders if pid)
            mib = sum(self.reserved) / (1 << 20)
        where = "server-wide" if self.shared else "in this process"
        return f"{held} in use {where}, {mib:.0f} MiB of {self.budget / (1 << 20):.0f} reserved"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


DEFAULT_DECODE_BUDGET: Final = 384 * 1024 * 1024
"""Bytes the decodes in flight may reserve when nothing configures it."""

_slots = _Slots(2, shared=False, budget=DEFAULT_DECODE_BUDGET)
_slot_wait = 30.0
_held = threading.local()

TRIM_AFTER_BYTES: Final = 16 * 1024 * 1024
"""A decoded frame at least this large makes its slot give freed memory back when released."""


def _check(slots: int, budget: int) -> None:
    if slots < 1:
        raise ValueError("at least one decode slot is needed")
    if budget < 1 << 20:
        raise ValueError("the decode memory budget must be at least 1 MiB")


def share_decodes(
    slots: int, wait_seconds: float, budget: int = DEFAULT_DECODE_BUDGET
) -> None:
    """Bound decodes across this process and every process later forked from it.

    ``omipacs serve`` calls this before forking; :func:`configure_decodes` in a forked
    child then keeps the shared slots (only the wait changes), so the setting bounds
    the whole server's pixel memory, not each process's.
    """
    global _slots, _slot_wait
    _check(slots, budget)
    _slots = _Slots(slots, shared=True, budget=budget)
    _slot_wait = wait_seconds


def configure_decodes(
    slots: int, wait_seconds: float, budget: int = DEFAULT_DECODE_BUDGET
) -> None:
    """Set how many frames decode at once, the memory they may reserve together (bytes,
    see :func:`decode_cost`), and how long a request waits for a slot.

    Ingest bounds one decoded frame (``storage.max_frame_bytes``, checked against the
    codec stream's own header); this bounds how many such frames, and the render work
    on them, are in memory at once, so peak memory does not grow with the number of
    clients asking for ``/rendered``. Under :func:`share_decodes` the slots are the
    server's and are kept; otherwise (tests, command-line tools) they are this process's.
    """
    global _slots, _slot_wait
    _check(slots, budget)
    if not _slots.shared:
        _slots = _Slots(slots, shared=False, budget=budget)
    _slot_wait = wait_seconds


@contextmanager
def decode_slot(cost: int = 0) -> Iterator[None]:
    """Hold one decode slot, reserving `cost` bytes of the budget (re-entrant in a thread).

    The outermost slot of a thread is the one that counts: its `cost` should cover all
    the work done under it (:func:`decode_cost` of the frame, which includes rendering).

    When the outermost slot is released after a large frame was decoded under it,
    glibc is asked to return freed memory to the system (:func:`trim_malloc`), so a
    process's resident size falls back after a large render instead of keeping its peak.

    Raises
    ------
    ServerBusy
        No slot became free within the configured wait (503: retry later).
    """
    depth = getattr(_held, "depth", 0)
    if depth:
        _held.depth = depth + 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    slots = _slots
    index = slots.acquire(_slot_wait, cost)
    if index is None:
        raise ServerBusy("the server is busy decoding images; retry shortly")
    _held.depth = 1
    _held.large = False
    # Logged while the slot is held, so the lines of all processes sharing the slots
    # show, in order, who decoded when (tests/web/test_decode_slots.py reads them).
    LOGGER.debug("decode slot taken by process %d (%s)", os.getpid(), slots.in_use())
    try:
        yield
    finally:
        _held.depth = 0
        LOGGER.debug("decode slot released by process %d", os.getpid())
        slots.release(index)
        if _held.large:
            _held.large = False
            trim_malloc()


def note_decoded(nbytes: int) -> None:
    """Record that `nbytes` were decoded under the held slot (large ones trim on release)."""
    depth: int = getattr(_held, "depth", 0)
    if nbytes >= TRIM_AFTER_BYTES and depth:
        _held.large = True


def is_native(transfer_syntax: str) -> bool:
    """Return True if `transfer_syntax` stores frames uncompressed (PS3.5 8.1.1)."""
    return transfer_syntax in NATIVE_SYNTAXES


def _decoder_for(transfer_syntax: str) -> Decoder:
    """Return pydicom's decoder for `transfer_syntax`, or raise NotAcceptable.

    Deflated Explicit VR Little Endian is refused: its frames cannot be located without
    inflating the whole data set, which the archive never does on retrieval.
    """
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        raise NotAcceptable("frames of a deflated data set cannot be decoded individually")
    if transfer_syntax not in NATIVE_SYNTAXES | COMPRESSED_SYNTAXES:
        raise NotAcceptable(f"pixel data in transfer syntax {transfer_syntax} cannot be decoded")
    decoder = get_decoder(UID(transfer_syntax))
    if not decoder.is_available:
        raise NotAcceptable(
            f"no decoder is installed for {UID(transfer_syntax).name} ({transfer_syntax})"
        )
    return decoder


def can_decode(transfer_syntax: str) -> bool:
    """Return True if frames in `transfer_syntax` can be decoded with the installed plugins."""
    try:
        _decoder_for(transfer_syntax)
    except NotAcceptable:
        return False
    return True


def number_of_frames(header: Dataset) -> int:
    """Return (0028,0008) Number of Frames, 1 when absent, empty or zero (PS3.3 C.7.6.6)."""
    value = header.get("NumberOfFrames")
    try:
        count = int(value) if value not in (None, "") else 1
    except (TypeError, ValueError):
        count = 1
    return max(count, 1)


def _require_int(header: Dataset, keyword: str) -> int:
    """Return an Image Pixel module integer, or NotAcceptable when it is absent."""
    value = header.get(keyword)
    if value is None or value == "":
        raise NotAcceptable(f"the instance has no {keyword}; it holds no renderable pixels")
    return int(value)


def pixel_options(header: Dataset) -> dict[str, Any]:
    """Return the Image Pixel module values (PS3.3 C.7.6.3) that describe one frame.

    The result is shaped for pydicom's decoders and encoders (``rows``, ``columns``,
    ``samples_per_pixel`` and so on) and always describes a single frame, so the extended
    offset table and the real Number of Frames of the header are deliberately left out.

    Raises
    ------
    NotAcceptable
        If Rows, Columns, Bits Allocated or Photometric Interpretation is missing: the
        instance has no pixel data that could be decoded.
    """
    samples = int(header.get("SamplesPerPixel", 1) or 1)
    bits_allocated = _require_int(header, "BitsAllocated")
    photometric = str(header.get("PhotometricInterpretation", "") or "")
    if not photometric:
        raise NotAcceptable("the instance has no PhotometricInterpretation")
    opts: dict[str, Any] = {
        "rows": _require_int(header, "Rows"),
        "columns": _require_int(header, "Columns"),
        "samples_per_pixel": samples,
        "bits_allocated": bits_allocated,
        "bits_stored": int(header.get("BitsStored", bits_allocated) or bits_allocated),
        "pixel_representation": int(header.get("PixelRepresentation", 0) or 0),
        "photometric_interpretation": photometric,
        "number_of_frames": 1,
        "pixel_keyword": "PixelData",
    }
    if samples > 1:
        opts["planar_configuration"] = int(header.get("PlanarConfiguration", 0) or 0)
    return opts


def native_frame_length(header: Dataset) -> int:
    """Return the number of bytes of one uncompressed frame (PS3.5 8.1.1).

    For Bits Allocated 1 the frame is rounded up to whole bytes, as pydicom does when it
    decodes a single frame; YBR_FULL_422 frames are two thirds of the full size.
    """
    opts = pixel_options(header)
    pixels: int = opts["rows"] * opts["columns"] * opts["samples_per_pixel"]
    if opts["photometric_interpretation"] == "YBR_FULL_422":
        pixels = pixels // 3 * 2
    bits: int = opts["bits_allocated"]
    return math.ceil(pixels * bits / 8)


_J2K_OR_LIBJPEG_SYNTAXES: Final[frozenset[str]] = frozenset(
    {
        JPEGBaseline8Bit,
        JPEGExtended12Bit,
        JPEGLossless,
        JPEGLosslessSV1,
        JPEG2000Lossless,
        JPEG2000,
        HTJ2KLossless,
        HTJ2KLosslessRPCL,
        HTJ2K,
    }
)


def decode_cost(header: Dataset, transfer_syntax: str, scale: int = 1) -> int:
    """Estimate the bytes decoding one frame and rendering it allocate at their peak.

    Measured in a fresh process on 8192 x 8192 x 8-bit frames (64 MiB decoded;
    tests/retrieve/test_render_memory.py): a native frame read in place costs the
    8-bit picture (plus a masked copy when bits above Bits Stored are set); JPEG-LS
    costs CharLS's buffer and the array made of it, two frames; OpenJPEG (JPEG 2000,
    HTJ2K) and libjpeg (the JPEG processes) decode through 32-bit samples and then
    copy into the frame, 327 MiB for that frame, so four bytes a sample plus two
    frames; RLE three frames. Encoding the picture adds up to a quarter of a byte a
    pixel (its output and the encoder's buffers). `scale` is the reduction the frame is decoded at
    (:mod:`omipacs.dicom.reduced`). Returns 0 when the header describes no pixels.
    """
    try:
        opts = pixel_options(header)
    except NotAcceptable:
        return 0
    samples: int = opts["rows"] * opts["columns"] * opts["samples_per_pixel"]
    samples //= max(1, scale) ** 2
    frame: int = samples * math.ceil(opts["bits_allocated"] / 8)
    encoded = samples // 4  # the encoded picture and the encoder's buffers
    if transfer_syntax in NATIVE_SYNTAXES:
        return frame + samples + encoded
    if transfer_syntax in (JPEGLSLossless, JPEGLSNearLossless):
        return 2 * frame + encoded
    if transfer_syntax in _J2K_OR_LIBJPEG_SYNTAXES:
        return 4 * samples + 2 * frame + encoded
    return 3 * frame + encoded


_LEAN_NATIVE: Final[frozenset[str]] = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian})
_LEAN_PHOTOMETRIC: Final[frozenset[str]] = frozenset(
    {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR"}
)


def _decode_lean(frame: bytes, transfer_syntax: str, opts: dict[str, Any]) -> np.ndarray | None:
    """Decode a one-sample unsigned frame without pydicom's copies, or return None.

    pydicom's decoders allocate the output array and then copy the plugin's buffer into
    it, and their post-processing may copy again: measured on an 8192 x 8192 x 8-bit
    JPEG-LS frame (64 MiB), a decode raised the process's peak by about 385 MB. A
    mammogram (one sample, unsigned) needs none of that post-processing, so here the
    plugin's own buffer becomes the array (JPEG-LS: CharLS's output, about twice the
    frame at the peak) and a little-endian native frame is read in place (a view of
    `frame`, or one masked copy when bits above Bits Stored must be cleared, as
    PS3.5 8.1.1 says they are not part of the value). Anything else (signed or colour
    pixels, big endian, 1 or 32 bits, other codecs) returns None and goes through pydicom.
    """
    if (
        opts["samples_per_pixel"] != 1
        or opts["pixel_representation"] != 0
        or opts["bits_allocated"] not in (8, 16)
        or opts["photometric_interpretation"] not in _LEAN_PHOTOMETRIC
    ):
        return None
    rows, columns = opts["rows"], opts["columns"]
    dtype = np.dtype("<u1" if opts["bits_allocated"] == 8 else "<u2")
    stored: int = opts["bits_stored"]
    if not 1 <= stored <= opts["bits_allocated"]:
        return None
    buffer: bytes | bytearray
    if transfer_syntax in _LEAN_NATIVE:
        buffer = frame
    elif transfer_syntax in (JPEGLSLossless, JPEGLSNearLossless) and _jpeg_ls is not None:
        buffer, info = _jpeg_ls.decode_buffer(frame)
        if (info.get("height"), info.get("width"), info.get("components")) != (rows, columns, 1):
            return None
    else:
        return None
    if len(buffer) < rows * columns * dtype.itemsize:
        return None
    arr = np.frombuffer(buffer, dtype, count=rows * columns).reshape(rows, columns)
    if stored < opts["bits_allocated"]:
        arr = arr & dtype.type((1 << stored) - 1)
    return arr


def _lean_properties(opts: dict[str, Any]) -> dict[str, str | int]:
    """pydicom's description of a frame decoded by :func:`_decode_lean` (unchanged)."""
    keys = ("rows", "columns", "samples_per_pixel", "bits_allocated", "bits_stored")
    props: dict[str, str | int] = {key: opts[key] for key in keys}
    props["photometric_interpretation"] = opts["photometric_interpretation"]
    props["pixel_representation"] = 0
    props["number_of_frames"] = 1
    return props


def decode_frame_with_properties(
    header: Dataset, frame: bytes, transfer_syntax: str
) -> tuple[np.ndarray, dict[str, str | int]]:
    """Decode one frame and also return the Image Pixel values that describe the result.

    The second value matters when the decoded array no longer matches the header: a JPEG
    frame stored as YBR_FULL_422 comes back as RGB with Planar Configuration 0, and a
    transcoded instance must say so (PS3.5 8.2.1, PS3.3 C.7.6.3.1.2).

    Parameters
    ----------
    header : pydicom.dataset.Dataset
        The instance's attributes up to, but not including, the pixel data.
    frame : bytes
        For native syntaxes the frame's bytes; for encapsulated syntaxes the frame's
        fragments concatenated, without item tags (PS3.5 A.4).
    transfer_syntax : str
        The transfer syntax UID the instance is stored in.

    Returns
    -------
    tuple[numpy.ndarray, dict[str, str | int]]
        The frame shaped (rows, columns) or (rows, columns, samples), and pydicom's
        description of it (``photometric_interpretation``, ``planar_configuration``, ...).

    Raises
    ------
    NotAcceptable
        If the syntax cannot be decoded here, the header lacks the Image Pixel module, or
        every installed plugin failed on the frame. A client can still ask for the stored
        representation, so 406 rather than a server error.
    """
    decoder = _decoder_for(transfer_syntax)
    opts = pixel_options(header)
    native = transfer_syntax in NATIVE_SYNTAXES
    if native and transfer_syntax == ExplicitVRBigEndian:
        # PS3.5 A.3: byte swapping depends on whether the element was OB or OW
        opts["pixel_vr"] = "OW" if opts["bits_allocated"] > 8 else "OB"
    if native and len(frame) < native_frame_length(header):
        raise NotAcceptable(
            f"the stored frame is {len(frame)} bytes, shorter than the "
            f"{native_frame_length(header)} bytes its Image Pixel module describes"
        )
    try:
        with decode_slot(decode_cost(header, transfer_syntax)):
            lean = _decode_lean(frame, transfer_syntax, opts)
            if lean is not None:
                note_decoded(lean.nbytes)
                return lean, _lean_properties(opts)
            if native:
                arr, props = decoder.as_array(frame, **opts)
            else:
                arr, props = decoder.as_array(
                    encapsulate([frame], has_bot=False), index=0, **opts
                )
            note_decoded(arr.nbytes)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        # Plugins fail in many ways on corrupt streams; Rust-based ones (pylibjpeg-rle)
        # even raise pyo3's PanicException, which derives from BaseException.
        LOGGER.warning("frame decoding failed for %s: %s", transfer_syntax, exc)
        raise NotAcceptable(
            f"the frame could not be decoded from {UID(transfer_syntax).name}"
        ) from exc
    return arr, props


def decode_frame(header: Dataset, frame: bytes, transfer_syntax: str) -> np.ndarray:
    """Decode one stored frame to a numpy array.

    Parameters
    ----------
    header : pydicom.dataset.Dataset
        The instance's attributes read with ``stop_before_pixels``; only the Image Pixel
        module (PS3.3 C.7.6.3) is used.
    frame : bytes
        The frame's bytes: a native frame, or an encapsulated frame's fragments joined.
    transfer_syntax : str
        The transfer syntax UID the frame is encoded in.

    Returns
    -------
    numpy.ndarray
        Shape (rows, columns) for one sample per pixel, (rows, columns, samples) otherwise,
        with colour frames converted to RGB and planar configuration 0. The dtype holds
        Bits Allocated bits with the sign of Pixel Representation; stored values are not
        rescaled (the Modality LUT is a rendering step).

    Raises
    ------
    NotAcceptable
        See :func:`decode_frame_with_properties`.
    """
    return decode_frame_with_properties(header, frame, transfer_syntax)[0]
