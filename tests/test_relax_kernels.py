"""The compiled passes of a relax update give the bits of the NumPy expressions they replace."""

from __future__ import annotations

import numpy as np
import pytest

from device_models import stno
from device_models.relax_kernels import clip_sums, rational, square_sum, stno_response


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stno_response_is_the_numpy_activation_bit_for_bit(dtype):
    rng = np.random.default_rng(3)
    h = rng.uniform(-3.0, 3.0, 5003).astype(dtype)  # a length with a tail past any vector width
    h[:4] = [0.0, 1.0, -0.0, 1e-30]
    q, zeta_max = 2.0, 4.0
    expected = stno.activation(h.copy(), q, zeta_max)
    got = h.copy()
    stno_response(got, dtype((zeta_max - 1.0) / (zeta_max + q)), dtype((1.0 + q) / (zeta_max + q)))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8))
    assert got.min() == 0.0 and got.max() == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_sums_give_the_neuron_energy(dtype):
    rng = np.random.default_rng(4)
    h = rng.uniform(-4.0, 3.0, 7001).astype(dtype)
    zeta_max = 4.0
    gain = zeta_max - 1.0
    s1, s2 = clip_sums(h, dtype(-(zeta_max + 1.0) / gain))
    expected = stno.neuron_energy_j(h, zeta_max, 1.0, 1.0, 1.0)  # Σζ² with R·I²·t = 1
    assert h.size + 2.0 * gain * s1 + gain * gain * s2 == pytest.approx(expected, rel=1e-5)
    zeta = np.clip(1.0 + h.astype(np.float64) * gain, -zeta_max, zeta_max)
    assert expected == pytest.approx(float(np.sum(zeta**2)), rel=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_square_sum_and_rational_read(dtype):
    rng = np.random.default_rng(5)
    v = rng.uniform(0.0, 1.0, 4099).astype(dtype)
    weights = rng.uniform(0.0, 2e-3, v.size).astype(dtype)
    den = dtype(0.37)
    assert square_sum(v, weights) == pytest.approx(float(np.sum(v.astype(np.float64) ** 2 * weights)), rel=1e-5)
    g = np.full(v.size, -1.0, dtype)
    rational(v, den, g)  # g̃(v) = v/(v² + D/a): the same bits as NumPy's three passes
    np.testing.assert_array_equal(g, v / (v * v + den))


def test_sums_do_not_depend_on_where_the_buffers_lie():
    """Twin devices hold their buffers at other addresses: the energies they report must still be
    the same bits (a vectorised sum with a run-time overlap check once made them differ)."""
    rng = np.random.default_rng(6)
    for n in (8, 40, 333, 4099):
        h = rng.uniform(-3.0, 2.0, n).astype(np.float32)
        w = rng.uniform(0.0, 1.0, n).astype(np.float32)
        sums, clips = set(), set()
        for offset in range(16):
            arena = np.empty(2 * n + 64, np.float32)  # the two arrays side by side, at every offset
            a, b = arena[offset:offset + n], arena[offset + n + offset % 3:offset + 2 * n + offset % 3]
            a[:], b[:] = h, w
            sums.add(square_sum(a, b))
            clips.add(clip_sums(a, np.float32(-5.0 / 3.0)))
        assert len(sums) == 1 and len(clips) == 1, n
