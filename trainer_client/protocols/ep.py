"""Equilibrium Propagation on a device, driven over HTTP — one request per phase.

Scellier & Bengio, Front. Comput. Neurosci. 11:24 (2017); the discrete-time setting and the
symmetric estimate of Laborieux et al., Front. Neurosci. 15:633674 (2021). Conventions of
DESIGN.md §5:

- free phase ``relax(β=0)`` for ``t1`` steps; nudged phases ``±β`` for ``t2`` steps started from
  the free state, the nudge entering inside the output activation as ``+β(y − s_N)``;
- symmetric estimate of the negative gradient (batch mean, ``s_0 = x``)
  ``Ĝ_W_k = (1/2β)[s_{k+1} s_kᵀ|₊β − s_{k+1} s_kᵀ|₋β]``, ``Ĝ_b_k = (1/2β)[s_{k+1}|₊β − s_{k+1}|₋β]``;
  one-sided ``(1/β)[·|₊β − ·|₀]``; random-sign draws the sign of β per batch (one-sided);
- step ``W += η_k Ĝ`` (SGD) or Adam on ``Ĝ`` (:mod:`trainer_client.optim`) on full-precision
  hidden weights held by the client; the device holds what was programmed from them (clipped to
  its declared range; on a grid, at the level the client chose for each cell,
  :mod:`trainer_client.protocols.grid`, rewritten only where a cell's level changed);
- readouts: ``mse`` nudges the outputs toward the one-hot target, ``C = ½‖s_N − y‖²``;
  ``ce`` reads the outputs as logits ``s_N/τ`` of a softmax and nudges them along the
  cross-entropy force ``−∂C/∂s_N ∝ y − softmax(s_N/τ)`` evaluated at the free state: the device's
  nudge is ``β(t − s_N)``, so the target sent is ``t = s_N^free + (y − softmax(s_N^free/τ))``,
  clipped to the output range ``[0, 1]``. To first order in β (all the estimate sees) this is the
  cross-entropy gradient wherever the clip is inactive, and a shortened force where it is.

Updates come from measured device states only: the client never evaluates the network.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from trainer_client.errors import InvalidInput
from trainer_client.optim import LR_SCHEDULES, OPTIMIZERS, SGD, Adam, make_optimizer
from trainer_client.protocols.grid import GridRecord

NUDGING = ("symmetric", "one-sided", "random-sign")
LOSSES = ("mse", "ce")


class EPDevice(Protocol):
    """What EP needs from a device: the operations of a held lease (:class:`trainer_client.client.Lease`)."""

    def program(self, weights: Mapping[str, np.ndarray], return_achieved: bool = True) -> dict[str, Any]: ...

    def relax(self, x: np.ndarray, beta: float = 0.0, target: np.ndarray | None = None, steps: int = 20,
              init: Sequence[np.ndarray] | None = None) -> dict[str, Any]: ...

    # optional: ``relax(..., nudges=[(β, steps)], layers=[...])`` (phases in one request) and
    # ``program_cells(cells, return_achieved)`` (single cells); used when the device has them


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
    optimizer: str = "sgd"
    lr_schedule: str = "constant"
    loss: str = "mse"
    ce_temperature: float = 0.25

    def __post_init__(self) -> None:
        if self.nudging not in NUDGING:
            raise ValueError(f"nudging must be one of {NUDGING}, got {self.nudging!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if not self.ce_temperature > 0:
            raise ValueError("ce_temperature must be positive")
        if any(not lr > 0 for lr in self.lrs):
            raise ValueError(f"learning rates must be positive, got {list(self.lrs)}")
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
    """``scale · [s_{k+1} s_kᵀ|_a − s_{k+1} s_kᵀ|_b] / batch`` for every crossbar (and biases).

    The input ``s_0 = x`` is the same in both phases, so the first crossbar's term is the single
    product ``(s_1|_a − s_1|_b)ᵀ x`` — half the work of the largest matrix product of the step.
    The factor ``scale/batch`` multiplies the (batch × n) states, never the (n × n') products.
    """
    f = scale / x.shape[0]
    grads: dict[str, np.ndarray] = {}
    for k, (sa, sb) in enumerate(zip(states_a, states_b)):
        diff = np.subtract(sa, sb)
        diff *= f
        if k == 0:
            grads["W0"] = diff.T @ x
        else:
            grads[f"W{k}"] = (sa * f).T @ states_a[k - 1]
            grads[f"W{k}"] -= (sb * f).T @ states_b[k - 1]
        grads[f"b{k}"] = diff.sum(axis=0)
    return grads


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nudge_target(loss: str, y_onehot: np.ndarray, free_out: np.ndarray, temperature: float) -> np.ndarray:
    """The target sent with a nudged phase: the one-hot label (``mse``) or the free output moved
    along the cross-entropy force (``ce``, see the module docstring)."""
    if loss == "mse":
        return y_onehot
    force = y_onehot - softmax(free_out / temperature)
    return np.clip(free_out + force, 0.0, 1.0).astype(np.float32)


def program_resolution(info: Mapping[str, Any]) -> dict[str, float] | None:
    """The level spacing of each weight array a device declares (``describe()['noise']['program']
    ['resolution']``), or None when it declares none (a continuous or unknown grid)."""
    res = ((info.get("noise") or {}).get("program") or {}).get("resolution")
    return {name: float(r) for name, r in res.items()} if isinstance(res, Mapping) else None


class EPTrainer:
    """Trains an :class:`EPNetwork` on an :class:`EPDevice` batch by batch.

    One request per batch where the device allows it: a relax that carries the write of the
    current targets, then runs the free phase and the nudged phases, the nudged ones from the free
    state the device holds, and measures only what the estimate needs. With ``resolution`` (the
    device's level spacing per array, from ``describe()``) the trainer decides the grid level of
    every cell and writes levels (:mod:`trainer_client.protocols.grid`): only the cells whose level
    changed, every cell on the first write; without it, whole arrays of clipped weights. With
    ``loss="ce"`` the nudge target depends on the free output, so the write and each phase are
    requests of their own.
    """

    def __init__(self, device: EPDevice, net: EPNetwork, config: EPConfig,
                 resolution: Mapping[str, float] | None = None) -> None:
        if len(config.lrs) != len(net.sizes) - 1:
            raise ValueError(f"give one learning rate per layer ({len(net.sizes) - 1}), got {len(config.lrs)}")
        self.device = device
        self.net = net
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.optimizer: SGD | Adam = make_optimizer(config.optimizer)
        self.base_lrs = {name: float(config.lrs[int(name[1:])]) for name in net.weights}
        self.lrs = dict(self.base_lrs)
        spacing = {n: float((resolution or {}).get(n, 0.0)) for n in net.weights}
        usable = all(r > 0 for r in spacing.values())
        #: the record of the device's grid levels (None: the device declares no grid)
        self.grid = GridRecord(spacing, {n: net.w_max[int(n[1:])] for n in net.weights}) if usable else None
        self.sparse = usable and hasattr(device, "program_cells")  # writes single cells
        relax_takes = inspect.signature(device.relax).parameters
        self.measures_subsets = "layers" in relax_takes  # the device measures only the layers asked for
        self.fused = config.loss == "mse" and "nudges" in relax_takes
        self.carries_write = self.fused and "program_cells" in relax_takes

    def set_lr_factor(self, factor: float) -> None:
        """Scale every learning rate (a schedule's value for the coming epoch)."""
        self.lrs = {name: lr * factor for name, lr in self.base_lrs.items()}

    def _pending_write(self) -> tuple[str, dict[str, Any], dict[str, np.ndarray] | None] | None:
        """What the device must be written to hold the current targets — ``("cells", {name: {mask,
        level}}, levels)`` with a grid, ``("weights", arrays, None)`` without one or to a device that
        takes no single cells — or None when no cell changed level. ``levels`` become the record
        once the write is acknowledged (:meth:`_written`)."""
        if self.grid is None:
            return "weights", self.net.targets(), None
        levels = self.grid.levels(self.net.weights)
        if not self.sparse:
            return "weights", self.grid.values(levels), None
        if self.grid.holder != self._lease_of(self.device):
            self.grid.forget()  # another lease may have written the device in between
        cells = self.grid.cells(levels)
        return ("cells", cells, levels) if cells else None

    def _written(self, send: Callable[[dict[str, Any]], Any]) -> Any:
        """``send(write)`` with the pending write (``{"program_weights": …}``, ``{"program_cells": …}``
        or ``{}``), then record what the device holds. A device that takes no single cells (422 on
        ``cells``) gets whole arrays from then on."""
        pending = self._pending_write()
        try:
            out = send({} if pending is None else {f"program_{pending[0]}": pending[1]})
        except InvalidInput as exc:
            if self.grid is not None:
                self.grid.forget()
            if pending is None or pending[0] != "cells" or exc.field not in ("cells", "program.cells"):
                raise
            self.sparse = False
            return self._written(send)
        except BaseException:
            # the write may or may not have reached the device (a lost answer, a fault after the
            # write, a lost lease): what it holds is unknown, so the next write is every cell
            if self.grid is not None:
                self.grid.forget()
            raise
        if pending is not None and pending[2] is not None:
            assert self.grid is not None
            self.grid.commit(pending[2], self._lease_of(self.device))
        return out

    @staticmethod
    def _lease_of(device: Any) -> tuple[Any, Any]:
        """The lease a device handle writes under (None for an in-process device): another lease
        may have found the device written by someone else in between."""
        return getattr(device, "lease_id", None), getattr(device, "fencing", None)

    def program(self) -> dict[str, Any] | None:
        """Write the targets; with a grid, only the cells whose level changed (None: none did)."""

        def send(write: dict[str, Any]) -> dict[str, Any] | None:
            if "program_cells" in write:
                return self.device.program_cells(write["program_cells"], return_achieved=False)
            if "program_weights" in write:
                return self.device.program(write["program_weights"], return_achieved=False)
            return None

        return self._written(send)

    def free_phase(self, x: np.ndarray, output_only: bool = False) -> list[np.ndarray]:
        """Measured free-phase states of every layer (``output_only``: only the output layer,
        where the device can measure a subset — a classification needs no more)."""
        if output_only and self.measures_subsets:
            return self.device.relax(x, 0.0, None, self.config.t1, layers=[len(self.net.sizes) - 2])["states"]
        return self.device.relax(x, 0.0, None, self.config.t1)["states"]

    def step(self, x: np.ndarray, y_onehot: np.ndarray) -> np.ndarray:
        """One EP step on a batch: program, free, nudged phase(s), update. Returns free outputs."""
        cfg = self.config
        beta = cfg.beta
        if self.fused:
            if cfg.nudging == "random-sign":
                beta = beta if self.rng.random() < 0.5 else -beta
            symmetric = cfg.nudging == "symmetric"
            nudges = [(beta, cfg.t2), (-beta, cfg.t2)] if symmetric else [(beta, cfg.t2)]
            layers = [len(self.net.sizes) - 2] if symmetric else None

            def phases(write: dict[str, Any]) -> dict[str, Any]:
                return self.device.relax(x, 0.0, y_onehot, cfg.t1, None, nudges=nudges, layers=layers, **write)

            if self.carries_write:  # the write travels with the phases: one request per batch
                out = self._written(phases)
            else:
                self.program()
                out = phases({})
            free, nudged = out["states"], out["nudged"]
            if symmetric:
                grads = ep_gradient(x, nudged[0], nudged[1], 1.0 / (2.0 * beta))
            else:
                grads = ep_gradient(x, nudged[0], free, 1.0 / beta)
            self.optimizer.step(self.net.weights, grads, self.lrs)
            return free[-1]
        self.program()
        free = self.free_phase(x)
        if cfg.nudging == "random-sign":
            beta = beta if self.rng.random() < 0.5 else -beta
        target = nudge_target(cfg.loss, y_onehot, free[-1], cfg.ce_temperature)
        plus = self.device.relax(x, beta, target, cfg.t2, free)["states"]
        if cfg.nudging == "symmetric":
            minus = self.device.relax(x, -beta, target, cfg.t2, free)["states"]
            grads = ep_gradient(x, plus, minus, 1.0 / (2.0 * beta))
        else:
            grads = ep_gradient(x, plus, free, 1.0 / beta)
        self.optimizer.step(self.net.weights, grads, self.lrs)
        return free[-1]

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Class predictions from the free phase on the device (programs the current weights)."""
        self.program()
        out = [np.argmax(self.free_phase(x[i:i + batch_size], output_only=True)[-1], axis=1)
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out)

    def state(self) -> dict[str, np.ndarray]:
        """Everything a checkpoint needs to continue: weights, optimiser moments (named arrays)."""
        out = {f"weight.{k}": w for k, w in self.net.weights.items()}
        out.update({f"optim.{k}": a for k, a in self.optimizer.state().items()})
        return out

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        for k, a in state.items():
            if k.startswith("weight."):
                self.net.weights[k[7:]] = np.array(a, dtype=np.float32)
        self.optimizer.load_state({k[6:]: a for k, a in state.items() if k.startswith("optim.")})
