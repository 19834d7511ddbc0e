"""EP maths on the emulator (in-process, float64, ideal): the symmetric estimate is −∇C at the free fixed point.

This pins the conventions of DESIGN.md §5 (nudge ``+β(y − s_N)`` inside the activation, estimate
``(1/2β)[s s|₊β − s s|₋β]``) against finite differences of ``C = ½‖s_N − y‖²`` (batch mean). The
STNO activation has kinks at 0 and 1, so the tolerance is looser than the smooth-activation oracle
of the EP issue; the network is set so that the units sit away from the kinks.
"""

from __future__ import annotations

import numpy as np

from device_models.crossbar import CrossbarNetwork
from device_models.presets import IDEAL
from trainer_client.protocols.ep import ep_gradient

SIZES = [5, 4, 3]


def relaxed(net: CrossbarNetwork, x, beta=0.0, y=None, init=None):
    states, report = net.relax(x, beta, y, steps=4000, init=init)
    assert report["residual"] < 1e-13
    return states


def loss(net: CrossbarNetwork, weights: dict, x, y) -> float:
    net.program(weights)
    s_out = relaxed(net, x)[-1]
    return 0.5 * float(np.mean(np.sum((s_out - y) ** 2, axis=1)))


def test_symmetric_ep_estimate_is_minus_the_loss_gradient():
    rng = np.random.default_rng(7)
    net = CrossbarNetwork(SIZES, IDEAL.with_overrides({"dtype": "float64"}), seed=0, w_max=[2.0, 2.0])
    weights = {"W0": rng.uniform(-0.1, 0.1, (4, 5)), "b0": np.full(4, 0.3),
               "W1": rng.uniform(-0.2, 0.2, (3, 4)), "b1": np.full(3, 0.3)}
    x = rng.uniform(0, 1, (6, 5))
    y = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    net.program(weights)
    free = relaxed(net, x)
    assert all(((s > 0.02) & (s < 0.98)).all() for s in free)  # away from the activation's kinks
    eps = 1e-6
    grad = {}
    for name, w in weights.items():
        g = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            hi = {**weights, name: w.copy()}
            lo = {**weights, name: w.copy()}
            hi[name][idx] += eps
            lo[name][idx] -= eps
            g[idx] = (loss(net, hi, x, y) - loss(net, lo, x, y)) / (2 * eps)
        grad[name] = g
    flat_grad = np.concatenate([grad[n].ravel() for n in weights])
    net.program(weights)

    def errors(beta: float) -> tuple[float, float, np.ndarray]:
        plus = relaxed(net, x, beta, y, free)
        minus = relaxed(net, x, -beta, y, free)
        sym = ep_gradient(x, plus, minus, 1.0 / (2 * beta))
        one = ep_gradient(x, plus, free, 1.0 / beta)
        flat_sym = np.concatenate([sym[n].ravel() for n in weights])
        flat_one = np.concatenate([one[n].ravel() for n in weights])
        norm = np.linalg.norm(flat_grad)
        return np.linalg.norm(flat_sym + flat_grad) / norm, np.linalg.norm(flat_one + flat_grad) / norm, flat_sym

    err_sym, err_one, flat_est = errors(0.01)
    err_sym10, err_one10, _ = errors(0.001)
    print(f"relative error at β=0.01: symmetric {err_sym:.2e}, one-sided {err_one:.2e}; "
          f"ratios to β/10: {err_sym / err_sym10:.1f}, {err_one / err_one10:.1f}")
    assert err_sym < 5e-3, err_sym
    assert 50 <= err_sym / err_sym10 <= 200  # symmetric: error ∝ β²
    assert 7 <= err_one / err_one10 <= 13  # one-sided: error ∝ β
    # a sign error or a wrong nudge convention would point the other way
    assert float(flat_est @ -flat_grad) > 0.99 * np.linalg.norm(flat_est) * np.linalg.norm(flat_grad)
