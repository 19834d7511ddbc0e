"""The crossbar's fast paths compute what the plain formulas say (they run at every relax update)."""

from __future__ import annotations

import numpy as np
import pytest

from device_models import mtj, stno
from device_models.crossbar import CrossbarNetwork
from device_models.presets import DEFAULT_V1, IDEAL


def test_bias_excess_is_the_bias_factor_minus_one_times_the_input():
    x = np.linspace(-1.3, 1.3, 1001)
    direct = x * (mtj.ap_bias_factor(x * 0.15, 0.15, 1.5, 0.4) - 1.0)
    assert np.allclose(mtj.ap_bias_excess(x, 0.15, 1.5, 0.4), direct, rtol=1e-12, atol=1e-15)
    assert mtj.ap_bias_excess(x.astype(np.float32), 0.15, 1.5, 0.4).dtype == np.float32
    # at the read bias itself there is no excess; below it the AP cell conducts less (s < 1)
    assert mtj.ap_bias_excess(np.array([1.0]), 0.15, 1.5, 0.4)[0] == pytest.approx(0.0, abs=1e-15)
    assert mtj.ap_bias_excess(np.array([0.5]), 0.15, 1.5, 0.4)[0] < 0


def test_neuron_energy_is_the_sum_of_r_i_squared_t():
    h = np.random.default_rng(0).uniform(-3, 3, (64, 50))
    zeta = stno.supercriticality(h, 4.0)
    direct = 100.0 * (0.5e-3) ** 2 * 5e-9 * float(np.sum(zeta**2))
    assert stno.neuron_energy_j(h, 4.0, 0.5e-3, 100.0, 5e-9) == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("config", [IDEAL, DEFAULT_V1.with_overrides({"read_std": 0.0, "prog_std": 0.0})])
def test_reused_input_drive_follows_a_reprogrammed_first_crossbar(config):
    """The free and nudged phases share W₀x; after W₀ or b₀ is rewritten the drive must be recomputed."""
    sizes = [12, 8, 3]
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (5, 12))
    first = {"W0": rng.uniform(-0.3, 0.3, (8, 12)), "b0": np.full(8, 0.2), "W1": rng.uniform(-0.3, 0.3, (3, 8)),
             "b1": np.full(3, 0.2)}
    second = {"W0": -first["W0"], "b0": np.full(8, 0.4)}
    reused = CrossbarNetwork(sizes, config, seed=4)
    reused.program(first)
    reused.relax(x, steps=30)
    reused.program(second)
    after, _ = reused.relax(x, steps=30)
    fresh = CrossbarNetwork(sizes, config, seed=4)
    fresh.program({**first, **second})
    expected, _ = fresh.relax(x, steps=30)
    assert all(np.array_equal(a, b) for a, b in zip(after, expected))
    # and a different input with the same weights is not served the old drive
    other, _ = reused.relax(x[::-1].copy(), steps=30)
    assert all(np.allclose(a[::-1], b, atol=1e-6) for a, b in zip(other, expected))
