"""Optimisers of the client's hidden full-precision weights (the device holds what is programmed).

Every protocol hands in an *ascent* direction per named array (EP's ``Ĝ`` estimates the negative
gradient, DESIGN.md §5) and a learning rate per array; the optimiser moves the weights in place.

- :class:`SGD`: ``W += η Ĝ``.
- :class:`Adam`: Kingma & Ba, ICLR 2015 (arXiv:1412.6980), Algorithm 1 on ``−Ĝ``:
  ``m ← β₁m + (1−β₁)Ĝ``, ``v ← β₂v + (1−β₂)Ĝ²``, ``W += η m̂/(√v̂ + ε)`` with the bias corrections
  ``m̂ = m/(1−β₁ᵗ)``, ``v̂ = v/(1−β₂ᵗ)``.

Both keep their state as named float32 arrays (:meth:`state` / :meth:`load_state`) so a
checkpoint can resume a run exactly where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "cosine")


class SGD:
    """Plain steps along the ascent direction: ``W += η Ĝ``."""

    def step(self, weights: dict[str, np.ndarray], ascent: Mapping[str, np.ndarray], lrs: Mapping[str, float]) -> None:
        for name, g in ascent.items():
            weights[name] += np.float32(lrs[name]) * g.astype(np.float32, copy=False)

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        pass


class Adam:
    """Adam on the ascent direction, one moment pair per named array (Kingma & Ba 2015).

    The bias corrections are folded into two scalars, the reordering at the end of Kingma & Ba's
    §2 with ``ε̂ = ε√c₂`` (the same update, not an approximation):
    ``η m̂/(√v̂ + ε) = (η√c₂/c₁)·m/(√v + ε√c₂)``, ``c_i = 1 − β_iᵗ``. A step is twelve in-place
    passes over each array through one scratch array kept between steps: no temporaries.
    """

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self._scratch: dict[str, np.ndarray] = {}

    def step(self, weights: dict[str, np.ndarray], ascent: Mapping[str, np.ndarray], lrs: Mapping[str, float]) -> None:
        self.t += 1
        b1, b2 = np.float32(self.beta1), np.float32(self.beta2)
        keep1, keep2 = np.float32(1.0 - self.beta1), np.float32(1.0 - self.beta2)
        correction1 = 1.0 - self.beta1**self.t
        root2 = math.sqrt(1.0 - self.beta2**self.t)
        eps = np.float32(self.eps * root2)
        for name, g in ascent.items():
            g = g.astype(np.float32, copy=False)
            m = self.m.get(name)
            if m is None:
                m = self.m[name] = np.zeros_like(g)
                self.v[name] = np.zeros_like(g)
            v = self.v[name]
            tmp = self._scratch.get(name)
            if tmp is None or tmp.shape != g.shape:
                tmp = self._scratch[name] = np.empty_like(g)
            np.multiply(g, keep1, out=tmp)
            m *= b1
            m += tmp  # m ← β₁m + (1−β₁)Ĝ
            np.square(g, out=tmp)
            tmp *= keep2
            v *= b2
            v += tmp  # v ← β₂v + (1−β₂)Ĝ²
            np.sqrt(v, out=tmp)
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= np.float32(lrs[name] * root2 / correction1)
            weights[name] += tmp

    def state(self) -> dict[str, np.ndarray]:
        out = {"t": np.array(self.t)}
        out.update({f"m.{k}": a for k, a in self.m.items()})
        out.update({f"v.{k}": a for k, a in self.v.items()})
        return out

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.t = int(state["t"])
        self.m = {k[2:]: np.array(a, dtype=np.float32) for k, a in state.items() if k.startswith("m.")}
        self.v = {k[2:]: np.array(a, dtype=np.float32) for k, a in state.items() if k.startswith("v.")}


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Learning-rate multiplier of ``epoch`` (1-based) out of ``epochs``.

    ``constant``: 1. ``cosine``: ``½(1 + cos(π(epoch − 1)/epochs))`` — cosine annealing without
    restarts (Loshchilov & Hutter, ICLR 2017, arXiv:1608.03983), stepped once per epoch: full rate
    in the first epoch, a small fraction of it in the last, where the noise of the estimate would
    otherwise keep the weights from settling.
    """
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / epochs))
    raise ValueError(f"lr schedule must be one of {LR_SCHEDULES}, got {schedule!r}")


def make_optimizer(name: str) -> SGD | Adam:
    """The optimiser called ``name`` (``sgd`` or ``adam``, default moments)."""
    if name == "sgd":
        return SGD()
    if name == "adam":
        return Adam()
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
