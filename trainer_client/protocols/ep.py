"""Equilibrium Propagation on a device, driven over HTTP — one request per phase.

Scellier & Bengio, Front. Comput. Neurosci. 11:24 (2017); the discrete-time setting and the
symmetric estimate of Laborieux et al., Front. Neurosci. 15:633674 (2021). Conventions of
DESIGN.md §5:

- free phase ``relax(β=0)`` for ``t1`` steps; nudged phases ``±β`` for ``t2`` steps started from
  the free state, the nudge entering inside the output activation as ``+β(y − s_N)``;
- symmetric estimate of the negative gradient (batch mean, ``s_0 = x``)
  ``Ĝ_W_k = (1/2β)[s_{k+1} s_kᵀ|₊β − s_{k+1} s_kᵀ|₋β]``, ``Ĝ_b_k = (1/2β)[s_{k+1}|₊β − s_{k+1}|₋β]``;
  one-sided ``(1/β)[·|₊β − ·|₀]``; random-sign draws the sign of β per batch (one-sided);
- step ``W += η_k Ĝ`` on full-precision hidden weights held by the client; the device holds
  what was programmed from them (clipped to its declared range, rewritten only where a cell's
  grid target changed).

Updates come from measured device states only: the client never evaluates the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

NUDGING = ("symmetric", "one-sided", "random-sign")


class EPDevice(Protocol):
    """What EP needs from a device: the operations of a held lease (:class:`trainer_client.client.Lease`)."""

    def program(self, weights: Mapping[str, np.ndarray], return_achieved: bool = True) -> dict[str, Any]: ...

    def relax(self, x: np.ndarray, beta: float = 0.0, target: np.ndarray | None = None, steps: int = 20,
              init: Sequence[np.ndarray] | None = None) -> dict[str, Any]: ...


@dataclass
class EPConfig:
    """Hyper-parameters of EP (names as in the CLI)."""

    beta: float = 0.5
    t1: int = 30
    t2: int = 10
    nudging: str = "symmetric"
    lrs: Sequence[float] = (0.1, 0.05)
    batch_size: int = 32
    seed: int = 0
    init_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.nudging not in NUDGING:
            raise ValueError(f"nudging must be one of {NUDGING}, got {self.nudging!r}")
        if not self.beta > 0:
            raise ValueError("beta must be positive (the sign is chosen by the nudging scheme)")
        if self.t1 < 1 or self.t2 < 1:
            raise ValueError("t1 and t2 must be at least 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")


@dataclass
class EPNetwork:
    """Hidden full-precision weights of a layered network ``sizes = (n_0, …, n_N)``."""

    sizes: tuple[int, ...]
    w_max: tuple[float, ...]
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def init(cls, sizes: Sequence[int], w_max: Sequence[float], rng: np.random.Generator,
             scale: float = 1.0) -> "EPNetwork":
        """Uniform ``±scale/√fan_in`` weights and biases (the usual PyTorch default)."""
        net = cls(tuple(sizes), tuple(w_max))
        for k in range(len(sizes) - 1):
            bound = scale / np.sqrt(sizes[k])
            net.weights[f"W{k}"] = rng.uniform(-bound, bound, (sizes[k + 1], sizes[k])).astype(np.float32)
            net.weights[f"b{k}"] = rng.uniform(-bound, bound, sizes[k + 1]).astype(np.float32)
        return net

    def targets(self) -> dict[str, np.ndarray]:
        """What to program: the hidden weights clipped to the device's declared range."""
        return {name: np.clip(w, -self.w_max[int(name[1:])], self.w_max[int(name[1:])]) for name, w in self.weights.items()}


def ep_gradient(x: np.ndarray, states_a: Sequence[np.ndarray], states_b: Sequence[np.ndarray],
                scale: float) -> dict[str, np.ndarray]:
    """``scale · [s_{k+1} s_kᵀ|_a − s_{k+1} s_kᵀ|_b] / batch`` for every crossbar (and biases)."""
    batch = x.shape[0]
    grads: dict[str, np.ndarray] = {}
    prev_a = prev_b = x
    for k, (sa, sb) in enumerate(zip(states_a, states_b)):
        grads[f"W{k}"] = (sa.T @ prev_a - sb.T @ prev_b) * (scale / batch)
        grads[f"b{k}"] = (sa.sum(axis=0) - sb.sum(axis=0)) * (scale / batch)
        prev_a, prev_b = sa, sb
    return grads


class EPTrainer:
    """Trains an :class:`EPNetwork` on an :class:`EPDevice` batch by batch."""

    def __init__(self, device: EPDevice, net: EPNetwork, config: EPConfig) -> None:
        if len(config.lrs) != len(net.sizes) - 1:
            raise ValueError(f"give one learning rate per layer ({len(net.sizes) - 1}), got {len(config.lrs)}")
        self.device = device
        self.net = net
        self.config = config
        self.rng = np.random.default_rng(config.seed)

    def program(self) -> dict[str, Any]:
        return self.device.program(self.net.targets(), return_achieved=False)

    def free_phase(self, x: np.ndarray) -> list[np.ndarray]:
        return self.device.relax(x, 0.0, None, self.config.t1)["states"]

    def step(self, x: np.ndarray, y_onehot: np.ndarray) -> np.ndarray:
        """One EP step on a batch: program, free, nudged phase(s), update. Returns free outputs."""
        cfg = self.config
        self.program()
        free = self.free_phase(x)
        beta = cfg.beta
        if cfg.nudging == "random-sign":
            beta = beta if self.rng.random() < 0.5 else -beta
        plus = self.device.relax(x, beta, y_onehot, cfg.t2, free)["states"]
        if cfg.nudging == "symmetric":
            minus = self.device.relax(x, -beta, y_onehot, cfg.t2, free)["states"]
            grads = ep_gradient(x, plus, minus, 1.0 / (2.0 * beta))
        else:
            grads = ep_gradient(x, plus, free, 1.0 / beta)
        for name, g in grads.items():
            self.net.weights[name] += cfg.lrs[int(name[1:])] * g.astype(np.float32)
        return free[-1]

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class predictions from the free phase on the device (programs the current weights)."""
        self.program()
        out = [np.argmax(self.free_phase(x[i:i + batch_size])[-1], axis=1) for i in range(0, len(x), batch_size)]
        return np.concatenate(out)
