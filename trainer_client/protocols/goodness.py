"""Layer-local goodness maths shared by Forward-Forward and SCFF (DESIGN.md §5).

Forward-Forward (Hinton, arXiv:2212.13345, 2022) and Self-Contrastive FF (Chen, Liu, Laydevant &
Grollier, Nat. Commun. 2025, arXiv:2409.11593) train each layer on its own: the layer should
answer a *positive* input with a high goodness and a *negative* one with a low goodness. Here

- a layer is one crossbar and its STNO neurons, ``y = ρ(W u + b)`` measured on the device;
- goodness is the mean squared activity ``G = (1/n) Σ_j y_j²`` (in ``[0, 1]``: the STNO
  activation is bounded; Hinton's sum of squares divided by the width, so one threshold fits
  every width);
- the probability that an input is positive is ``σ(α (G − θ))`` (threshold ``θ``, sharpness
  ``α``), and the layer's loss is the logistic loss over the batch,
  ``L = (1/N) Σ_i softplus(−s_i α (G_i − θ))`` with ``s_i = +1`` for positives, ``−1`` for
  negatives;
- the local gradient is exact for the measured layer:
  ``∂L/∂W = Σ_i δ_i u_iᵀ``, ``∂L/∂b = Σ_i δ_i``, ``δ_i = (∂L/∂G_i)(2/n) y_i ∘ ρ'(h_i)`` with
  ``∂L/∂G_i = −s_i α σ(−s_i α (G_i − θ)) / N``.

The derivative ``ρ'`` is taken from the *measured output*, not from a pre-activation the
client would have to compute itself (DESIGN.md §5: updates from measurements only). For the
STNO steady state (:class:`STNOActivation`) it is a closed form of ``y``, like ``y(1 − y)`` is
for a sigmoid. Between layers the client normalises each measured activity vector to unit
length (Hinton's "layer normalisation": the next layer cannot read the goodness off the
length), which also keeps every entry within ``±1`` and so within the device's input range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class STNOActivation:
    """The device's neuron, ``ρ(h) = p₀(ζ(h))/p₀(ζ_max)`` with ``ζ = 1 + clip(h, 0, 1)(ζ_max − 1)``.

    ``p₀(ζ) = (ζ − 1)/(ζ + Q)`` is the STNO steady-state power (Slavin & Tiberkevich, IEEE Trans.
    Magn. 45, 1875 (2009)); ``Q`` and ``ζ_max`` are the device's declared settings
    ``q_damping`` and ``zeta_max`` (``GET /v1/devices/{id}`` → ``settings``).
    """

    q_damping: float = 2.0
    zeta_max: float = 4.0

    @classmethod
    def from_describe(cls, info: Mapping[str, Any]) -> "STNOActivation":
        settings = info["settings"]
        return cls(float(settings["q_damping"]["value"]), float(settings["zeta_max"]["value"]))

    @property
    def _scale(self) -> float:
        """``p₀(ζ_max)⁻¹``: makes the activation span ``[0, 1]``."""
        return (self.zeta_max + self.q_damping) / (self.zeta_max - 1.0)

    def __call__(self, h: np.ndarray) -> np.ndarray:
        """``ρ(h)`` in exact arithmetic (the software reference)."""
        z = np.clip(h, 0.0, 1.0) * (self.zeta_max - 1.0)
        return self._scale * z / (z + 1.0 + self.q_damping)

    def derivative_from_output(self, y: np.ndarray) -> np.ndarray:
        """``ρ'(h)`` as a function of the output ``y = ρ(h)``.

        With ``a = y/scale = z/(z + 1 + Q)``: ``z + 1 + Q = (1 + Q)/(1 − a)``, so
        ``ρ'(h) = (ζ_max + Q)(1 − a)²/(1 + Q)`` inside the active range ``0 < y < 1``; zero
        outside (below threshold, ``h ≤ 0``, and at the current limit, ``h ≥ 1``).
        """
        a = y / self._scale
        d = (self.zeta_max + self.q_damping) / (1.0 + self.q_damping) * np.square(1.0 - a)
        return np.where((y > 0.0) & (y < 1.0), d, 0.0)


@dataclass(frozen=True)
class GoodnessLoss:
    """``L = mean_i softplus(−s_i α (G_i − θ))`` with ``G = mean_j y_j²`` (module docstring)."""

    threshold: float = 0.2
    sharpness: float = 20.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1) (goodness is a mean square in [0, 1]), "
                             f"got {self.threshold}")
        if not self.sharpness > 0:
            raise ValueError(f"sharpness must be positive, got {self.sharpness}")

    @staticmethod
    def goodness(y: np.ndarray) -> np.ndarray:
        """``G_i = (1/n) Σ_j y_ij²`` per row."""
        return np.mean(np.square(y), axis=1)

    def logits(self, y: np.ndarray) -> np.ndarray:
        return self.sharpness * (self.goodness(y) - self.threshold)

    def loss(self, y: np.ndarray, sign: np.ndarray) -> float:
        """Mean logistic loss; ``sign`` is +1 for positive rows, −1 for negative ones."""
        return float(np.mean(np.logaddexp(0.0, -sign * self.logits(y))))

    def gradient(self, u: np.ndarray, y: np.ndarray, sign: np.ndarray,
                 activation: STNOActivation) -> tuple[np.ndarray, np.ndarray, float]:
        """Local gradient ``(∂L/∂W, ∂L/∂b, L)`` of one layer from its input ``u`` and measured output ``y``."""
        u = np.asarray(u, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        z = -sign * self.logits(y)
        d_goodness = -sign * self.sharpness * _sigmoid(z) / len(y)  # ∂L/∂G_i
        delta = (d_goodness * (2.0 / y.shape[1]))[:, None] * y * activation.derivative_from_output(y)
        return delta.T @ u, delta.sum(axis=0), float(np.mean(np.logaddexp(0.0, z)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def normalise(y: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Each row to unit Euclidean length (Hinton's layer normalisation, without mean subtraction).

    Entries then lie within ``±1``: inside the crossbar's input range (``|x| ≤ v_read_max/v_read``,
    at least 1 by construction), so the next layer's drive never needs clipping.
    """
    return y / (np.linalg.norm(y, axis=1, keepdims=True) + eps)
