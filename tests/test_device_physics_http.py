"""The emulated crossbar measured over real HTTP: forward, programming noise, relaxation, seeds, costs."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import write_lab
from trainer_client.client import DeviceClient
from trainer_client.local_server import LocalServer


def hand_activation(h: np.ndarray, q: float, zeta_max: float) -> np.ndarray:
    """STNO steady state p₀(ζ) = (ζ−1)/(ζ+Q), ζ = 1 + h(ζ_max−1) clipped to [0, ζ_max], over p₀(ζ_max)."""
    zeta = np.clip(1.0 + h * (zeta_max - 1.0), 0.0, zeta_max)
    p0 = np.where(zeta > 1.0, (zeta - 1.0) / (zeta + q), 0.0)
    return p0 / ((zeta_max - 1.0) / (zeta_max + q))


def random_weights(sizes, w_max, rng, frac=0.5):
    out = {}
    for k in range(len(sizes) - 1):
        out[f"W{k}"] = rng.uniform(-frac * w_max[k], frac * w_max[k], (sizes[k + 1], sizes[k]))
        out[f"b{k}"] = rng.uniform(-frac * w_max[k], frac * w_max[k], sizes[k + 1])
    return out


def test_noise_free_forward_equals_the_ideal_network_by_hand(client: DeviceClient, rng):
    info = client.describe("crossbar-digits-ideal")
    sizes, w_max = info["topology"]["sizes"], info["topology"]["w_max"]
    q, zeta_max = info["settings"]["q_damping"]["value"], info["settings"]["zeta_max"]["value"]
    weights = random_weights(sizes, w_max, rng)
    x = rng.uniform(0, 1, (16, sizes[0]))
    with client.lease("crossbar-digits-ideal") as dev:
        achieved = dev.program(weights)["achieved"]
        out = dev.forward(x)["outputs"]
        one = dev.forward(hand_activation(x @ weights["W0"].T + weights["b0"], q, zeta_max), layers=[1])
    for name, w in weights.items():  # ideal: what was asked is what is written
        np.testing.assert_allclose(achieved[name], w, rtol=1e-6, atol=1e-7)
    a1 = hand_activation(x @ weights["W0"].T + weights["b0"], q, zeta_max)
    a2 = hand_activation(a1 @ weights["W1"].T + weights["b1"], q, zeta_max)
    assert 0.05 < np.mean(a1 > 0) < 0.95  # the check exercises both the rectified and the active branch
    np.testing.assert_allclose(out[0], a1, atol=2e-6)
    np.testing.assert_allclose(out[1], a2, atol=2e-6)
    np.testing.assert_allclose(one["outputs"][0], a2, atol=2e-6)
    assert one["layers"] == [1]


def test_programming_error_has_the_promised_spread(client: DeviceClient, rng):
    """default-v1: the write error of ≥ 10⁵ weights, as a fraction of the range, has std prog_std ± 10 %."""
    info = client.describe("crossbar-mnist")
    prog_std = info["settings"]["prog_std"]["value"]
    levels = info["levels"]
    w_max = info["topology"]["w_max"][0]
    step = w_max / (levels - 1)
    target = rng.integers(-(levels - 4), levels - 3, size=(512, 784)) * step  # on the grid, inside the range
    with client.lease("crossbar-mnist") as dev:
        first = dev.program({"W0": target})
        again = dev.program({"W0": target})
        changed = target.copy()
        changed[:10] += step  # 10 rows × 784 pairs move one level
        third = dev.program({"W0": changed})
    achieved, report = first["achieved"]["W0"], first["report"]
    ok = np.ones(target.size, bool)
    ok[report["failed"]["W0"]] = False
    err = ((achieved - target) / w_max).ravel()[ok]
    assert err.size >= 100_000
    assert abs(err.std() / prog_std - 1.0) < 0.10, err.std()
    assert abs(err.mean()) < 3 * prog_std / np.sqrt(err.size)
    assert report["pairs_written"] == target.size
    assert 0 < report["failures"] < 0.01 * target.size  # stuck cells and out-of-range cells are reported
    # unchanged targets are not rewritten: nothing written, nothing moved
    assert again["report"]["pairs_written"] == 0
    np.testing.assert_array_equal(again["achieved"]["W0"], achieved)
    assert third["report"]["pairs_written"] == 10 * 784
    np.testing.assert_array_equal(third["achieved"]["W0"][10:], achieved[10:])
    assert third["report"]["device_time_s"] < first["report"]["device_time_s"] / 10


def test_relax_free_phase_converges_to_a_fixed_point(client: DeviceClient, rng):
    """β = 0: the residual falls below 1e-6 and the state satisfies the fixed-point equations."""
    info = client.describe("crossbar-digits-ideal")
    sizes, w_max = info["topology"]["sizes"], info["topology"]["w_max"]
    q, zeta_max = info["settings"]["q_damping"]["value"], info["settings"]["zeta_max"]["value"]
    weights = random_weights(sizes, w_max, rng, frac=0.3)
    x = rng.uniform(0, 1, (8, sizes[0]))
    with client.lease("crossbar-digits-ideal") as dev:
        dev.program(weights)
        short = dev.relax(x, steps=2)
        long = dev.relax(x, steps=200)
    tol = 1e-6
    assert long["report"]["residual"] < tol < short["report"]["residual"]
    s1, s2 = long["states"]
    w0, b0, w1, b1 = weights["W0"], weights["b0"], weights["W1"], weights["b1"]
    np.testing.assert_allclose(s1, hand_activation(x @ w0.T + b0 + s2 @ w1, q, zeta_max), atol=1e-5)
    np.testing.assert_allclose(s2, hand_activation(s1 @ w1.T + b1, q, zeta_max), atol=1e-5)


def test_same_seed_same_results_other_seed_not(tmp_path, rng):
    sizes = [16, 12, 4]
    lab = write_lab(tmp_path / "lab.toml", [
        {"id": "a", "sizes": sizes, "seed": 7},
        {"id": "b", "sizes": sizes, "seed": 7},
        {"id": "c", "sizes": sizes, "seed": 8},
    ])
    x = rng.uniform(0, 1, (5, 16))
    weights = {"W0": rng.uniform(-0.5, 0.5, (12, 16)), "W1": rng.uniform(-0.5, 0.5, (4, 12))}
    results = {}
    with LocalServer(lab=lab) as url, DeviceClient(url) as client:
        for device_id in "abc":
            with client.lease(device_id) as dev:
                achieved = dev.program(weights)["achieved"]
                outputs = dev.forward(x)["outputs"]
                states = dev.relax(x, beta=0.5, target=np.eye(4)[[0, 1, 2, 3, 0]], steps=10)["states"]
            results[device_id] = [achieved["W0"], achieved["W1"], *outputs, *states]
    for a, b in zip(results["a"], results["b"]):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, c) for a, c in zip(results["a"], results["c"]))


def test_time_and_energy_scale_with_batch_and_steps(client: DeviceClient, rng):
    """At a fixed point every step costs the same: doubling batch or steps doubles time and energy."""
    info = client.describe("crossbar-digits")
    sizes, w_max = info["topology"]["sizes"], info["topology"]["w_max"]
    settings = info["settings"]
    t_update = settings["t_read_s"]["value"] + settings["t_neuron_s"]["value"]
    x = rng.uniform(0, 1, (8, sizes[0]))
    with client.lease("crossbar-digits") as dev:
        dev.program(random_weights(sizes, w_max, rng, frac=0.3))
        fixed = dev.relax(x, steps=300)
        assert fixed["report"]["residual"] < 1e-6
        # measured states carry read noise: from them the dynamics return to the fixed point within
        # a few updates, a transient that is a small share of the energy of 10 updates
        init = fixed["states"]
        base = dev.relax(x, steps=10, init=init)["report"]
        batch2 = dev.relax(np.vstack([x, x]), steps=10, init=[np.vstack([s, s]) for s in init])["report"]
        steps2 = dev.relax(x, steps=20, init=init)["report"]
        fwd1 = dev.forward(x)["report"]
        fwd2 = dev.forward(np.vstack([x, x]))["report"]
    assert base["device_time_s"] == pytest.approx(8 * 10 * t_update, rel=1e-12)
    assert batch2["device_time_s"] == pytest.approx(2 * base["device_time_s"], rel=1e-12)
    assert steps2["device_time_s"] == pytest.approx(2 * base["device_time_s"], rel=1e-12)
    for doubled in (batch2, steps2):
        for term in ("read", "neuron"):
            assert doubled["energy_terms_j"][term] == pytest.approx(2 * base["energy_terms_j"][term], rel=2e-3)
        assert doubled["energy_j"] == pytest.approx(sum(doubled["energy_terms_j"].values()), rel=1e-12)
    assert fwd2["device_time_s"] == pytest.approx(2 * fwd1["device_time_s"], rel=1e-12)
    assert fwd2["energy_j"] == pytest.approx(2 * fwd1["energy_j"], rel=1e-9)
    assert base["instrument_time_s"] > base["device_time_s"] > 0


def test_float32_weights_clipped_at_the_range_edge_are_accepted(client: DeviceClient):
    """w_max = 1/7 on crossbar-mnist is not a float32 number: the float32 clip at it must pass the limit."""
    info = client.describe("crossbar-mnist")
    w_max = info["topology"]["w_max"][0]
    assert float(np.float32(w_max)) > w_max  # the case this test is about
    edge = np.clip(np.full((512, 784), 1.0, dtype=np.float32), -w_max, w_max)
    edge[::2] *= -1
    with client.lease("crossbar-mnist") as dev:
        report = dev.program({"W0": edge}, return_achieved=False)["report"]
    assert report["pairs_written"] > 0 and report["failures"] < 0.01 * edge.size
