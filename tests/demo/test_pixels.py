from __future__ import annotations

import numpy as np
import pytest

from omipacs.demo.pixels import breast_anatomy, render, smooth_noise


def test_smooth_noise_is_float32_and_smooth() -> None:
    noise = smooth_noise(np.random.default_rng(0), 300, 200, 4)
    assert noise.shape == (300, 200) and noise.dtype == np.float32
    # Neighbouring pixels differ far less than the field varies overall.
    assert np.abs(np.diff(noise, axis=0)).max() < 0.5 * float(noise.std())


@pytest.mark.parametrize("processed", [True, False])
@pytest.mark.parametrize("bits", [8, 12, 14])
def test_render_stays_within_bits_stored(processed: bool, bits: int) -> None:
    rng = np.random.default_rng(1)
    anatomy = breast_anatomy(rng, 120, 100, laterality="L", view="MLO")
    pixels = render(anatomy, rng, processed=processed, bits_stored=bits)
    assert pixels.dtype == np.uint16
    assert int(pixels.max()) < 2**bits
    background = pixels[:, -1].mean()
    tissue = pixels[:, 0].mean()
    # Presentation: tissue bright; processing (log exposure): background bright.
    assert bool(tissue > background) is processed


def test_inverted_render_mirrors_values_and_fills_out() -> None:
    anatomy = breast_anatomy(np.random.default_rng(2), 64, 48, laterality="R", view="CC")
    plain = render(anatomy, np.random.default_rng(3), processed=True, bits_stored=12)
    out = np.zeros((64, 48), dtype=np.uint16)
    inverted = render(
        anatomy, np.random.default_rng(3), processed=True, bits_stored=12, inverted=True, out=out
    )
    assert inverted is out
    assert np.abs(inverted.astype(int) - (4095 - plain.astype(int))).max() <= 1
