"""Decoding single frames from a header and the frame's bytes, in every syntax we can make."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.pixels.processing import convert_color_space
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from omipacs.dicom.pixels import (
    can_decode,
    decode_frame,
    decode_frame_with_properties,
    native_frame_length,
    number_of_frames,
)
from omipacs.errors import NotAcceptable
from tests.retrieve.builders import (
    dcmtk_compress,
    encode_frames,
    make_image,
    native_file,
    native_frame,
)

IMAGES: dict[str, dict[str, Any]] = {
    "mono2-u16-12bit": {"bits_stored": 12},
    "mono1-u16-14bit": {"bits_stored": 14, "photometric": "MONOCHROME1"},
    "mono2-s16-14bit": {"bits_stored": 14, "signed": True},
    "mono2-u8": {"bits_allocated": 8, "bits_stored": 8},
    "rgb-u8": {"bits_allocated": 8, "bits_stored": 8, "samples": 3, "photometric": "RGB"},
    "mono2-u16-multiframe": {"bits_stored": 12, "frames": 3},
}


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("image", sorted(IMAGES))
def test_native_little_endian_frames_decode_to_the_original(syntax: str, image: str) -> None:
    ds, arr = make_image(**IMAGES[image])
    for index, frame in enumerate(arr):
        decoded = decode_frame(ds, native_frame(frame), syntax)
        assert decoded.shape == frame.shape
        assert decoded.dtype == frame.dtype
        np.testing.assert_array_equal(decoded, frame)
        assert index < number_of_frames(ds)


@pytest.mark.parametrize("image", ["mono2-u16-12bit", "mono2-s16-14bit", "rgb-u8"])
def test_big_endian_frames_are_byte_swapped(image: str) -> None:
    ds, arr = make_image(**IMAGES[image])
    decoded = decode_frame(ds, native_frame(arr[0], big_endian=True), ExplicitVRBigEndian)
    np.testing.assert_array_equal(decoded, arr[0])


def test_planar_configuration_one_comes_back_interleaved() -> None:
    ds, arr = make_image(bits_allocated=8, bits_stored=8, samples=3, photometric="RGB", planar=1)
    decoded = decode_frame(ds, native_frame(arr[0], planar=1), ExplicitVRLittleEndian)
    np.testing.assert_array_equal(decoded, arr[0])


@pytest.mark.parametrize(
    ("signed", "stored", "expected"),
    [
        (False, 0xF123, 0x0123),  # bits above BitsStored (e.g. overlay bits) are masked
        (True, 0x0FFF, -1),  # 12-bit two's complement is sign-extended
        (True, 0x0800, -2048),
    ],
)
def test_unused_high_bits_are_corrected(signed: bool, stored: int, expected: int) -> None:
    ds, _ = make_image(rows=2, columns=2, bits_stored=12, signed=signed)
    frame = np.full((2, 2), stored, dtype=np.uint16).tobytes()
    assert decode_frame(ds, frame, ExplicitVRLittleEndian)[0, 0] == expected


@pytest.mark.parametrize(
    "syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless], ids=lambda s: s.name
)
@pytest.mark.parametrize(
    "image", ["mono2-u16-12bit", "mono1-u16-14bit", "mono2-s16-14bit", "rgb-u8", "mono2-u8"]
)
def test_lossless_compressed_frames_decode_exactly(syntax: str, image: str) -> None:
    ds, arr = make_image(**IMAGES[image])
    for frame, codestream in zip(arr, encode_frames(ds, arr, syntax), strict=True):
        decoded = decode_frame(ds, codestream, syntax)
        assert decoded.dtype == frame.dtype
        np.testing.assert_array_equal(decoded, frame)


def test_each_frame_of_a_multiframe_rle_decodes_on_its_own() -> None:
    ds, arr = make_image(rows=20, columns=16, frames=4, bits_stored=14)
    frames = encode_frames(ds, arr, RLELossless)
    for index in (3, 0, 2, 1):
        np.testing.assert_array_equal(decode_frame(ds, frames[index], RLELossless), arr[index])


def test_lossy_jpeg2000_decodes_close_to_the_original() -> None:
    ds, arr = make_image(rows=32, columns=32, bits_stored=12)
    smooth = (np.add.outer(np.arange(32), np.arange(32)) * 60).astype(np.uint16)[None]
    decoded = decode_frame(ds, encode_frames(ds, smooth, JPEG2000)[0], JPEG2000)
    assert decoded.shape == smooth[0].shape
    assert np.abs(decoded.astype(int) - smooth[0]).mean() < 20


@pytest.mark.parametrize(
    ("options", "syntax", "bits", "exact"),
    [
        (("+e1",), JPEGLosslessSV1, 12, True),
        (("+el",), JPEGLossless, 12, True),
        (("+ee",), JPEGExtended12Bit, 12, False),
        (("+eb",), JPEGBaseline8Bit, 8, False),
    ],
    ids=["sv1-4.70", "lossless-4.57", "extended-4.51", "baseline-4.50"],
)
def test_jpeg_processes_made_by_dcmtk_decode(
    tmp_path: Path, options: tuple[str, ...], syntax: str, bits: int, exact: bool
) -> None:
    ds, _ = make_image(rows=32, columns=40, bits_allocated=16 if bits > 8 else 8, bits_stored=bits)
    ramp = (np.add.outer(np.arange(32), np.arange(40)) * (2 ** (bits - 7))).astype(
        np.uint16 if bits > 8 else np.uint8
    )[None]
    source = native_file(ds, ramp, ExplicitVRLittleEndian, tmp_path / "in.dcm")
    made, frames = dcmtk_compress(source, tmp_path / "out.dcm", *options)
    assert made == syntax
    decoded = decode_frame(ds, frames[0], syntax)
    if exact:
        np.testing.assert_array_equal(decoded, ramp[0])
    else:
        assert np.abs(decoded.astype(int) - ramp[0]).mean() < 2 ** (bits - 8) * 3


def test_ybr_full_native_frames_come_back_as_rgb() -> None:
    ds, arr = make_image(bits_allocated=8, bits_stored=8, samples=3, photometric="YBR_FULL")
    ybr = convert_color_space(arr[0], "RGB", "YBR_FULL")
    decoded, props = decode_frame_with_properties(ds, native_frame(ybr), ExplicitVRLittleEndian)
    assert props["photometric_interpretation"] == "RGB"
    assert np.abs(decoded.astype(int) - arr[0]).max() <= 2


@pytest.mark.parametrize(
    ("syntax", "reason"),
    [
        (DeflatedExplicitVRLittleEndian, "deflated"),
        ("1.2.840.10008.1.2.4.100", "cannot be decoded"),
        ("1.2.3.4", "cannot be decoded"),
    ],
)
def test_syntaxes_that_cannot_be_decoded_are_not_acceptable(syntax: str, reason: str) -> None:
    ds, arr = make_image()
    assert not can_decode(syntax)
    with pytest.raises(NotAcceptable, match=reason):
        decode_frame(ds, native_frame(arr[0]), syntax)


def test_every_listed_compressed_syntax_has_a_decoder_here() -> None:
    for syntax in ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"):
        assert can_decode(syntax)


def test_truncated_native_frame_is_refused() -> None:
    ds, arr = make_image()
    with pytest.raises(NotAcceptable, match="shorter"):
        decode_frame(ds, native_frame(arr[0])[:-10], ExplicitVRLittleEndian)
    assert native_frame_length(ds) == 40 * 36 * 2


def test_corrupt_codestream_is_not_acceptable() -> None:
    ds, _ = make_image()
    with pytest.raises(NotAcceptable, match="could not be decoded"):
        decode_frame(ds, b"\xff\x4f\xff\x51" + b"\x00" * 64, JPEG2000Lossless)


def test_header_without_image_pixel_module_is_not_acceptable() -> None:
    ds, arr = make_image()
    del ds.Rows
    with pytest.raises(NotAcceptable, match="Rows"):
        decode_frame(ds, native_frame(arr[0]), ExplicitVRLittleEndian)


def test_decode_slots_bound_concurrent_decodes_and_are_reentrant() -> None:
    import threading

    from omipacs.dicom.pixels import configure_decodes, decode_slot
    from omipacs.errors import ServerBusy

    configure_decodes(1, 0.2)
    try:
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with decode_slot():
                holding.set()
                release.wait(10)

        worker = threading.Thread(target=hold)
        worker.start()
        assert holding.wait(10)
        with pytest.raises(ServerBusy) as info:
            with decode_slot():
                pass
        assert info.value.http_status == 503
        release.set()
        worker.join(10)
        with decode_slot():
            with decode_slot():  # the same thread may nest (render around decode)
                pass
    finally:
        configure_decodes(2, 20.0)


def test_shared_decode_slots_bound_forked_processes_and_outlive_a_killed_holder() -> None:
    """``omipacs serve`` shares one set of slots with every process it forks."""
    import multiprocessing
    import os
    import signal
    import threading

    from omipacs.dicom import pixels
    from omipacs.dicom.pixels import configure_decodes, decode_slot, share_decodes
    from omipacs.errors import ServerBusy

    saved = pixels._slots, pixels._slot_wait
    context = multiprocessing.get_context("fork")
    share_decodes(1, 0.3)
    try:

        def busy_in_child(result: Any, go: Any) -> None:
            configure_decodes(4, 0.3)  # a forked child's own configuration keeps the shared slots
            go.wait(30)
            try:
                with decode_slot():
                    result.value = 1
            except ServerBusy:
                result.value = 2

        result, go = context.Value("i", 0), context.Event()
        child = context.Process(target=busy_in_child, args=(result, go))
        child.start()  # before the parent takes a slot: a fork copies the thread's state
        with decode_slot():  # the parent holds the only slot: the child must be refused
            go.set()
            child.join(30)
        assert result.value == 2
        result, go = context.Value("i", 0), context.Event()
        child = context.Process(target=busy_in_child, args=(result, go))
        child.start()
        go.set()
        child.join(30)
        assert result.value == 1  # released by the parent: the child gets it

        holding = context.Event()

        def hold_forever() -> None:
            with decode_slot():
                holding.set()
                threading.Event().wait(60)

        holder = context.Process(target=hold_forever)
        holder.start()
        assert holding.wait(30)
        with pytest.raises(ServerBusy):
            with decode_slot():
                pass
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)  # dies holding its slot
        holder.join(30)
        with decode_slot():  # the dead holder's slot is handed back
            pass
    finally:
        pixels._slots, pixels._slot_wait = saved


def test_decode_budget_holds_back_what_the_memory_in_flight_cannot_take() -> None:
    import threading

    from omipacs.dicom.pixels import configure_decodes, decode_slot
    from omipacs.errors import ServerBusy

    mib = 1 << 20
    configure_decodes(4, 0.3, budget=10 * mib)
    try:
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with decode_slot(8 * mib):
                holding.set()
                release.wait(10)

        worker = threading.Thread(target=hold)
        worker.start()
        assert holding.wait(10)
        with pytest.raises(ServerBusy):  # slots are free, the memory is not
            with decode_slot(3 * mib):
                pass
        with decode_slot(2 * mib):  # fits beside it
            pass
        # A waiter gets in once the holder is done.
        configure_decodes(4, 10.0, budget=10 * mib)
        got: list[bool] = []

        def wait_for_memory() -> None:
            with decode_slot(5 * mib):
                got.append(True)

        waiter = threading.Thread(target=wait_for_memory)
        waiter.start()
        release.set()
        worker.join(10)
        waiter.join(10)
        assert got == [True]
        with decode_slot(50 * mib):  # more than the whole budget: alone, it runs
            pass
    finally:
        configure_decodes(2, 20.0)


def test_decode_cost_follows_the_codec_and_the_scale() -> None:
    from omipacs.dicom.pixels import decode_cost

    ds, _ = make_image(rows=1024, columns=1024, bits_allocated=8, bits_stored=8)
    mib = 1 << 20  # one 8-bit frame
    picture = mib // 4
    assert decode_cost(ds, ExplicitVRLittleEndian) == 2 * mib + picture
    assert decode_cost(ds, JPEGLSLossless) == 2 * mib + picture
    assert decode_cost(ds, JPEG2000Lossless) == 6 * mib + picture
    assert decode_cost(ds, JPEG2000Lossless, 4) == (6 * mib + picture) // 16
    del ds.Rows
    assert decode_cost(ds, JPEG2000Lossless) == 0
