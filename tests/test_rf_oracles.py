"""RF spin-diode oracles (DESIGN.md §4) and the rf-network's trainability.

Measured: the test resonator's rectified voltage with read noise (many repeats, standard errors
from the noise), and the network's chain voltages from its own matrix path; predicted: the
anti-Lorentzian written out here again. Each oracle has a negative control with α (or the
power law) 20 % off that must fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from device_models.rf_network import RF_PRESETS, RFNetwork, detuning_for_weight

Z = 4.0
CONFIG = RF_PRESETS["default-v1"]
F_R = 3.0e9
REPEATS = 400


def _g(f: np.ndarray, f_r: float, alpha: float, k: float) -> np.ndarray:
    """Closed form, written independently of the model: ``K·2αf_r(f − f_r)/((αf_r)² + (f − f_r)²)``."""
    return k * 2 * alpha * f_r * (f - f_r) / ((alpha * f_r) ** 2 + (f - f_r) ** 2)


def _measure(net: RFNetwork, f: float, p_w: float, position: int) -> tuple[float, float]:
    v = net.resonator_v(np.full(REPEATS, f), np.full(REPEATS, p_w), np.full(REPEATS, F_R), np.full(REPEATS, position))
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(REPEATS))


def _within(measured: float, predicted: float, se: float) -> bool:
    print(f"measured {measured:.6g} V, predicted {predicted:.6g} V, z = {(measured - predicted) / se:+.2f}")
    return abs(measured - predicted) <= Z * se


@pytest.fixture
def net() -> RFNetwork:
    return RFNetwork([4, 3], CONFIG, seed=1)


def test_spin_diode_is_zero_at_resonance_and_extremal_at_f_r_one_plus_minus_alpha_with_the_chain_parity(net):
    p = CONFIG.p_max_w
    a, k = CONFIG.alpha, CONFIG.k_v_per_w
    for position, sign in ((0, 1.0), (1, -1.0), (2, 1.0), (7, -1.0)):
        v0, se = _measure(net, F_R, p, position)
        assert _within(v0, 0.0, se)
        for side in (1.0, -1.0):
            v, se = _measure(net, F_R * (1 + side * a), p, position)
            assert _within(v, sign * side * k * p, se)  # the extremum ±K·P, sign from the parity
            assert not _within(v, -sign * side * k * p, se)  # the other parity's sign
            # negative control: α off by 20 % puts the predicted extremum where the response is 1.6 % lower
            assert not _within(v, sign * _g(F_R * (1 + side * 1.2 * a), F_R, a, k) * p, se)
    # the extremum is a maximum: a sweep around f_r(1 + α) peaks there (noise-free closed form check of the sweep)
    sweep = F_R * (1 + a * np.linspace(0.5, 1.5, 101))
    v = np.array([_measure(net, f, p, 0)[0] for f in sweep[::10]])
    assert np.argmax(v) == 5


def test_spin_diode_is_linear_in_power(net):
    f = F_R * (1 + 0.5 * CONFIG.alpha)
    powers = np.array([0.1, 0.25, 0.5, 1.0]) * CONFIG.p_max_w
    measured = [_measure(net, f, p, 0) for p in powers]
    slope = _g(np.array(f), F_R, CONFIG.alpha, CONFIG.k_v_per_w)
    for p, (v, se) in zip(powers, measured):
        assert _within(v, slope * p, se)
    v_hi, se_hi = measured[-1]
    assert not _within(v_hi, 1.2 * slope * powers[-1], se_hi)  # negative control: a slope 20 % off


def test_chain_voltages_add_over_distinct_input_frequencies():
    """The network's chain voltages (its matrix path) for two tones at once equal the sum of the
    resonator-by-resonator closed form over both tones; α 20 % off in the prediction fails."""
    cfg = RF_PRESETS["ideal"]
    net = RFNetwork([6, 3], cfg, seed=2)
    rng = np.random.default_rng(3)
    f_in = np.append(net.f_in_hz, net.f_bias_hz[0])
    f_r = f_in[None, :] * (1 + cfg.alpha * rng.uniform(-2, 2, (3, 7)))
    net.program({"F0": f_r})
    x = np.zeros((3, 6))
    x[0, 1], x[1, 4], x[2, [1, 4]] = 0.7, 0.4, (0.7, 0.4)
    v = net.rectified_v(0, x, None)
    np.testing.assert_allclose(v[2], v[0] + v[1] - net.rectified_v(0, np.zeros((1, 6)), None)[0], rtol=1e-12)

    def predicted(alpha: float) -> np.ndarray:
        sign = np.where(np.arange(7) % 2 == 0, 1.0, -1.0)
        p = np.concatenate([x, np.ones((3, 1))], axis=1) * cfg.p_max_w
        g = _g(f_in[None, None, :], f_r[:, :, None], alpha, cfg.k_v_per_w)  # (chain j, resonator k, tone i)
        return np.einsum("jk,jki,bi->bj", np.broadcast_to(sign, (3, 7)), g, p)

    np.testing.assert_allclose(v, predicted(cfg.alpha), rtol=1e-9)
    assert not np.allclose(v, predicted(1.2 * cfg.alpha), rtol=1e-3)


def test_hidden_neuron_frequencies_move_with_their_activation_and_the_next_layer_sees_it():
    cfg = RF_PRESETS["ideal"]
    net = RFNetwork([4, 3, 2], cfg, seed=4)
    low, high = np.full((1, 3), 0.2), np.full((1, 3), 0.9)
    (out_low,), _ = net.forward(low, layers=[1])
    (out_high,), _ = net.forward(high, layers=[1])
    # same powers scaled by 0.9/0.2 would scale a fixed-frequency layer's voltage exactly; moving tones do not
    v_low = net.rectified_v(1, low, net.f0_hz[0][None, :] + cfg.n_shift_hz * 0.2 * (3 / 6))
    v_high = net.rectified_v(1, high, net.f0_hz[0][None, :] + cfg.n_shift_hz * 0.9 * (3 / 6))
    bias = net.rectified_v(1, np.zeros((1, 3)), net.f0_hz[0][None, :])
    assert not np.allclose((v_high - bias) / 0.9, (v_low - bias) / 0.2, rtol=1e-3)


def test_a_resonance_can_be_set_for_a_wanted_single_resonator_weight():
    f = np.array([2e9, 3e9, 4e9])
    for w in (-0.9, -0.3, 0.0, 0.5, 0.95):
        for parity in (1.0, -1.0):
            f_r = detuning_for_weight(np.full(3, w), f, CONFIG.alpha, np.full(3, parity))
            np.testing.assert_allclose(parity * _g(f, f_r, CONFIG.alpha, 1.0), w, atol=0.02)


def test_rf_network_trains_above_chance_through_its_operations():
    """Smoke check on 3 classes of separable tone patterns: read the hidden layer's outputs,
    fit the readout in software, program the output layer's resonances from it, and measure."""
    cfg = RF_PRESETS["default-v1"]
    net = RFNetwork([12, 16, 3], cfg, seed=6)
    rng = np.random.default_rng(7)
    # hidden layer: random detunings within ±α of each resonator's own tone
    f_in = np.append(net.f_in_hz, net.f_bias_hz[0])
    net.program({"F0": f_in[None, :] * (1 + cfg.alpha * rng.uniform(-1, 1, (16, 13)))})
    labels = rng.integers(0, 3, 300)
    x = np.clip(0.1 + 0.05 * rng.standard_normal((300, 12)), 0, 1)
    for c in range(3):
        x[labels == c, 4 * c: 4 * c + 4] += 0.8
    x = np.clip(x, 0, 1)
    (hidden,), _ = net.forward(x, layers=[0])
    before = np.argmax(net.forward(x)[0][1], axis=1)
    # readout weights by least squares on the measured hidden outputs, scaled into one resonator's range
    design = np.concatenate([hidden, np.ones((300, 1))], axis=1)
    w, *_ = np.linalg.lstsq(design, np.eye(3)[labels] - 1 / 3, rcond=None)
    w = 0.9 * w.T / np.abs(w).max()
    tones = np.append(np.median(net.f0_hz[0] + cfg.n_shift_hz * 0.5 * hidden.mean(axis=0)[None, :], axis=0),
                      net.f_bias_hz[1])
    parity = np.where(np.arange(17) % 2 == 0, 1.0, -1.0)
    net.program({"F1": detuning_for_weight(w, tones[None, :], cfg.alpha, parity[None, :])})
    after = np.argmax(net.forward(x)[0][1], axis=1)
    acc_before, acc_after = float(np.mean(before == labels)), float(np.mean(after == labels))
    print(f"accuracy before {acc_before:.3f}, after {acc_after:.3f} (chance 0.333)")
    assert acc_after > 0.6 and acc_after > acc_before + 0.1
