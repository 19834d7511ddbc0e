"""EP's correctness oracle over HTTP (DESIGN.md §5, issue 6).

A small float64 network on an ideal device with the smooth ``logistic`` response, every phase run
to convergence (state residual < 1e-10). The symmetric EP estimate, computed by the trainer from
states measured over HTTP, must match the exact gradient of ``C = ½‖s_N − y‖²`` (batch mean) at
the free fixed point, computed here by an independent path: implicit differentiation of the
fixed-point equations ``s = ρ(A s + B x + b)`` in NumPy (no EP, no device code):

    dC/dθ = δᵀ ∂h/∂θ,   δ = D λ,   (I − A D) λ = ∂C/∂s,   D = diag ρ'(h) = diag 2s(1 − s),

with ``A`` the symmetric coupling of the neuron layers. Thresholds: relative error < 5e-4 at
β = 0.01; error ratio between β and β/10 in [50, 200] symmetric (error ∝ β²) and [7, 13]
one-sided (error ∝ β).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import write_lab
from trainer_client.client import DeviceClient
from trainer_client.local_server import LocalServer
from trainer_client.protocols.ep import ep_gradient

NETWORKS = {"one-hidden": [5, 4, 3], "two-hidden": [5, 6, 4, 3]}
STEPS = 3000  # synchronous updates per phase: enough for a residual far below 1e-10 here


@pytest.fixture(scope="module")
def oracle_url(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("oracle")
    overrides = {"dtype": "float64", "activation": "logistic"}
    lab = write_lab(tmp / "lab.toml", [{"id": name, "sizes": sizes, "preset": "ideal", "overrides": overrides}
                                       for name, sizes in NETWORKS.items()])
    with LocalServer(lab=lab, log_path=tmp / "server.log") as url:
        yield url


def logistic(h: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(2.0 * h - 1.0)))


def pre_activations(w: dict, x: np.ndarray, s: list[np.ndarray]) -> list[np.ndarray]:
    """``h_n = W_{n−1} s_{n−1} + b_{n−1} + W_nᵀ s_{n+1}`` (no nudge)."""
    n = len(s)
    prev = [x, *s[:-1]]
    return [prev[k] @ w[f"W{k}"].T + w[f"b{k}"] + (s[k + 1] @ w[f"W{k + 1}"] if k + 1 < n else 0.0) for k in range(n)]


def implicit_gradient(w: dict, x: np.ndarray, s: list[np.ndarray], y: np.ndarray,
                      slope_factor: float = 1.0) -> dict[str, np.ndarray]:
    """Exact ``∇C`` at the fixed point ``s`` by implicit differentiation, sample by sample
    (``slope_factor`` ≠ 1 scales ρ': the negative control)."""
    sizes = [x.shape[1]] + [a.shape[1] for a in s]
    offsets = np.cumsum([0] + sizes[1:])
    total = offsets[-1]
    coupling = np.zeros((total, total))  # A: ∂h/∂s, symmetric
    for k in range(1, len(s)):
        rows = slice(offsets[k], offsets[k + 1])
        cols = slice(offsets[k - 1], offsets[k])
        coupling[rows, cols] = w[f"W{k}"]
        coupling[cols, rows] = w[f"W{k}"].T
    grad = {name: np.zeros_like(a) for name, a in w.items()}
    batch = x.shape[0]
    for i in range(batch):
        si = np.concatenate([a[i] for a in s])
        d = slope_factor * 2.0 * si * (1.0 - si)  # ρ'(h) of the logistic σ(2h − 1), from its output
        dc_ds = np.zeros(total)
        dc_ds[offsets[-2]:] = s[-1][i] - y[i]
        lam = np.linalg.solve(np.eye(total) - coupling * d[None, :], dc_ds)
        delta = d * lam
        layers = [x[i]] + [a[i] for a in s]
        deltas = [None] + [delta[offsets[k]:offsets[k + 1]] for k in range(len(s))]
        for k in range(len(s)):
            grad[f"W{k}"] += np.outer(deltas[k + 1], layers[k])
            if k >= 1:
                grad[f"W{k}"] += np.outer(layers[k + 1], deltas[k])
            grad[f"b{k}"] += deltas[k + 1]
    return {name: g / batch for name, g in grad.items()}


def flat(d: dict, names: list[str]) -> np.ndarray:
    return np.concatenate([np.asarray(d[n]).ravel() for n in names])


@pytest.mark.parametrize("name", list(NETWORKS))
def test_symmetric_estimate_over_http_matches_the_implicit_gradient(oracle_url: str, name: str):
    sizes = NETWORKS[name]
    rng = np.random.default_rng(3)
    weights = {}
    for k in range(len(sizes) - 1):
        weights[f"W{k}"] = rng.uniform(-0.8, 0.8, (sizes[k + 1], sizes[k]))
        weights[f"b{k}"] = rng.uniform(-0.3, 0.3, sizes[k + 1])
    x = rng.uniform(0, 1, (8, sizes[0]))
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 8)]
    with DeviceClient(oracle_url) as client, client.lease(name, holder="oracle") as dev:
        achieved = dev.program(weights)["achieved"]
        assert all(a.dtype == np.float64 for a in achieved.values())

        def phase(beta: float, init=None) -> list[np.ndarray]:
            out = dev.relax(x, beta, None if beta == 0 else y, STEPS, init)
            assert out["report"]["residual"] < 1e-10, out["report"]["residual"]
            assert all(s.dtype == np.float64 for s in out["states"])
            return out["states"]

        free = phase(0.0)
        # the measured state is the fixed point of the declared dynamics, computed here independently
        fixed = [logistic(h) for h in pre_activations(achieved, x, free)]
        assert max(np.max(np.abs(a - b)) for a, b in zip(fixed, free)) < 1e-9
        names = sorted(achieved)
        truth = flat(implicit_gradient(achieved, x, free, y), names)
        norm = np.linalg.norm(truth)

        def errors(beta: float) -> tuple[float, float, np.ndarray]:
            plus, minus = phase(beta, free), phase(-beta, free)
            sym = flat(ep_gradient(x, plus, minus, 1.0 / (2 * beta)), names)
            one = flat(ep_gradient(x, plus, free, 1.0 / beta), names)
            return np.linalg.norm(sym + truth) / norm, np.linalg.norm(one + truth) / norm, sym

        err_sym, err_one, estimate = errors(0.01)
        err_sym10, err_one10, _ = errors(0.001)
    print(f"{name}: relative error at β=0.01 symmetric {err_sym:.2e}, one-sided {err_one:.2e}; "
          f"ratio β vs β/10: symmetric {err_sym / err_sym10:.1f}, one-sided {err_one / err_one10:.1f}")
    assert err_sym < 5e-4
    assert 50 <= err_sym / err_sym10 <= 200
    assert 7 <= err_one / err_one10 <= 13
    # the estimate is of the negative gradient: a flipped nudge or estimate would point the other way
    assert float(estimate @ -truth) > 0.999 * np.linalg.norm(estimate) * norm


def test_the_oracle_catches_a_wrong_gradient(oracle_url: str):
    """Negative control: the same oracle with ρ' off by 20 % misses the EP estimate by far more than 5e-4."""
    sizes = NETWORKS["one-hidden"]
    rng = np.random.default_rng(4)
    weights = {"W0": rng.uniform(-0.8, 0.8, (4, 5)), "b0": np.zeros(4), "W1": rng.uniform(-0.8, 0.8, (3, 4)),
               "b1": np.zeros(3)}
    x = rng.uniform(0, 1, (4, 5))
    y = np.eye(3)[[0, 1, 2, 0]]
    with DeviceClient(oracle_url) as client, client.lease("one-hidden", holder="oracle") as dev:
        achieved = dev.program(weights)["achieved"]
        free = dev.relax(x, 0.0, None, STEPS)["states"]
        plus = dev.relax(x, 0.01, y, STEPS, free)["states"]
        minus = dev.relax(x, -0.01, y, STEPS, free)["states"]
    names = sorted(achieved)
    estimate = flat(ep_gradient(x, plus, minus, 50.0), names)
    wrong = flat(implicit_gradient(achieved, x, free, y, slope_factor=1.2), names)
    right = flat(implicit_gradient(achieved, x, free, y), names)
    assert np.linalg.norm(estimate + right) / np.linalg.norm(right) < 5e-4
    assert np.linalg.norm(estimate + wrong) / np.linalg.norm(wrong) > 1e-2
