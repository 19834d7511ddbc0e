"""device_models on its own: closed forms of the neuron, bias dependence, settings, updates."""

from __future__ import annotations

import numpy as np
import pytest

from device_models import mtj, stno
from device_models.config import CrossbarConfig
from device_models.crossbar import CrossbarNetwork
from device_models.presets import DEFAULT_V1, IDEAL, get_preset


def test_activation_is_the_normalised_stno_steady_state():
    h = np.linspace(-0.5, 1.5, 2001)
    zeta = np.clip(1 + 3 * h, 0, 4)
    expected = stno.steady_state_power(zeta, 2.0) / stno.steady_state_power(np.array(4.0), 2.0)
    np.testing.assert_allclose(stno.activation(h.copy(), 2.0, 4.0), expected, atol=1e-12)
    a = stno.activation(h.copy(), 2.0, 4.0)
    assert a.min() == 0.0 and a.max() == pytest.approx(1.0) and np.all(np.diff(a) >= 0)


def test_tmr_halves_at_the_half_tmr_bias():
    assert float(mtj.tmr(0.4, 1.5, 0.4)) == pytest.approx(0.75)
    g_ap = mtj.g_ap_s(2e-4, 1.5, 0.0, 0.4)
    assert float(g_ap) == pytest.approx(2e-4 / 2.5)
    assert float(mtj.ap_bias_factor(np.array(0.15), 0.15, 1.5, 0.4)) == pytest.approx(1.0)


def test_bias_nonlinearity_changes_small_inputs_only_through_the_ap_part():
    cfg = IDEAL.with_overrides({"bias_nonlinearity": True})
    net = CrossbarNetwork([3, 2], cfg, seed=0)
    net.program({"W0": np.array([[0.5, -0.5, 0.0], [1.0, 0.2, -0.3]]), "b0": np.zeros(2)})
    lin = CrossbarNetwork([3, 2], IDEAL, seed=0)
    lin.program({"W0": np.array([[0.5, -0.5, 0.0], [1.0, 0.2, -0.3]]), "b0": np.zeros(2)})
    at_read = np.ones((1, 3))
    np.testing.assert_allclose(net.forward(at_read)[0][0], lin.forward(at_read)[0][0], atol=1e-6)
    small = np.full((1, 3), 0.2)
    assert not np.allclose(net.forward(small)[0][0], lin.forward(small)[0][0], atol=1e-6)


def test_presets_and_settings_are_checked():
    assert get_preset("default-v1") is DEFAULT_V1
    assert DEFAULT_V1.levels == 32 and DEFAULT_V1.prog_std == 0.01 and DEFAULT_V1.read_std == 0.005
    assert (DEFAULT_V1.r_p_dtod, DEFAULT_V1.tmr_dtod, DEFAULT_V1.stuck_fraction) == (0.03, 0.05, 0.001)
    assert (DEFAULT_V1.v_read_v, DEFAULT_V1.v_h_v, DEFAULT_V1.r_p_ohm, DEFAULT_V1.tmr0) == (0.15, 0.4, 5e3, 1.5)
    assert IDEAL.prog_std == IDEAL.read_std == IDEAL.stuck_fraction == 0 and not IDEAL.bias_nonlinearity
    with pytest.raises(ValueError, match="prog_std"):
        CrossbarConfig(prog_std=-0.1)
    with pytest.raises(ValueError, match="unknown setting"):
        DEFAULT_V1.with_overrides({"warp": 9})
    for bad in ({"prog_std": True}, {"r_p_ohm": False}, {"levels": 2.5}, {"bias_nonlinearity": 1},
                {"tmr0": float("inf")}):
        with pytest.raises(ValueError):
            DEFAULT_V1.with_overrides(bad)
    for w_max in ([float("inf"), 1.0], [0.0, 1.0], [True, 1.0]):
        with pytest.raises(ValueError, match="w_max"):
            CrossbarNetwork([3, 2, 2], DEFAULT_V1, seed=0, w_max=w_max)
    with pytest.raises(KeyError):
        get_preset("perfect")


def test_update_rounds_stochastically_without_bias():
    """A delta of a quarter level moves a quarter of the pairs by one level: unbiased in expectation."""
    net = CrossbarNetwork([200, 100], DEFAULT_V1.with_overrides({"prog_std": 0.0}), seed=3)
    step = net.w_max[0] / (DEFAULT_V1.levels - 1)
    net.program({"W0": np.zeros((100, 200))})
    net.update({"W0": np.full((100, 200), 0.25 * step)})
    moved = net.targets()["W0"] / step
    assert set(np.unique(np.round(moved, 9))) <= {0.0, 1.0}
    n = moved.size
    assert abs(moved.mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / n)


def test_read_noise_has_the_declared_spread():
    net = CrossbarNetwork([8, 4], DEFAULT_V1, seed=5)
    net.program({"W0": np.zeros((4, 8)), "b0": np.full(4, 0.5)})
    x = np.zeros((20000, 8))
    out = net.forward(x)[0][0]
    assert abs(out.std(axis=0).mean() / DEFAULT_V1.read_std - 1) < 0.05


def test_update_leaves_arrays_it_was_not_given_alone():
    net = CrossbarNetwork([6, 4, 2], DEFAULT_V1, seed=1)
    net.program({"W0": np.full((4, 6), 0.3)})
    fresh_b0 = net.read_weights()[0]["b0"].copy()
    _, report = net.update({"W0": np.full((4, 6), 0.05)})
    assert report["pairs_written"] <= 4 * 6
    assert np.isnan(net.targets()["b0"]).all()  # still never programmed
    np.testing.assert_array_equal(net.read_weights()[0]["b0"], fresh_b0)
    with pytest.raises(KeyError):
        net.update({"W01": np.zeros((2, 4))})
    with pytest.raises(KeyError):
        net.program({"W\u00b9": np.zeros((2, 4))})


def test_the_full_weight_range_is_reachable_despite_the_spread():
    """The calibrated range lets all but ~0.1 % of the pairs reach ±w_max under default-v1."""
    net = CrossbarNetwork([400, 250], DEFAULT_V1.with_overrides({"stuck_fraction": 0.0}), seed=4)
    for sign in (1.0, -1.0):
        _, report = net.program({"W0": np.full((250, 400), sign * net.w_max[0])})
        assert report["failures"] < 0.003 * 250 * 400
    spread = CrossbarNetwork([400, 250], IDEAL, seed=4)
    assert spread._xbars[0].g_range_s > net._xbars[0].g_range_s  # no spread: the nominal range


@pytest.mark.parametrize("rewrite", ["W0", "b0", "restore"])
def test_the_cached_input_drive_follows_every_change_of_the_first_crossbar(rewrite: str) -> None:
    """Relax reuses W₀x + b₀ for a repeated x; a rewrite of W0, of b0, or a restored state must drop it."""
    sizes, rng = [6, 5, 3], np.random.default_rng(7)
    x = rng.uniform(0, 1, (4, 6)).astype(np.float32)

    def weights(scale: float) -> dict[str, np.ndarray]:
        return {"W0": scale * rng.uniform(-0.5, 0.5, (5, 6)), "b0": scale * rng.uniform(-0.5, 0.5, 5),
                "W1": rng.uniform(-0.5, 0.5, (3, 5)), "b1": rng.uniform(-0.5, 0.5, 3)}

    chip = CrossbarNetwork(sizes, IDEAL, seed=1)
    first = weights(1.0)
    chip.program(first)
    saved = {k: v.copy() for k, v in chip.export_state().items()}
    before, _ = chip.relax(x, steps=40)
    second = weights(2.0)
    changed = dict(first, **{rewrite: second[rewrite]}) if rewrite != "restore" else second
    chip.program({k: changed[k] for k in ("W0", "b0")} if rewrite != "restore" else changed)
    if rewrite == "restore":
        chip.relax(x, steps=40)  # caches the drive of the second weights
        chip.restore_state(saved)
        changed = first
    after, _ = chip.relax(x, steps=40)
    fresh = CrossbarNetwork(sizes, IDEAL, seed=1)
    fresh.program(changed)
    expected, _ = fresh.relax(x, steps=40)
    for a, e in zip(after, expected):
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-7)
    if rewrite != "restore":
        assert not np.allclose(after[0], before[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_noise_draws_are_standard_normal(dtype):
    """Kolmogorov–Smirnov against N(0, 1) on 200 000 draws (p > 1e-3), independence of
    neighbours (|corr| < 5 standard errors), and a negative control: the same draws scaled by
    1.2 (a noise 20 % too strong) must fail."""
    from scipy import stats

    from device_models.noise import standard_normal

    z = standard_normal(np.random.default_rng(7), (400, 500), dtype).ravel()
    assert z.dtype == dtype and z.shape == (200_000,)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(z.size)
    half = z.size // 2  # the two Box–Muller halves are independent of each other too
    assert abs(np.corrcoef(z[:half], z[half:])[0, 1]) < 5 / np.sqrt(half)
    assert stats.kstest(1.2 * z, "norm").pvalue < 1e-6
