"""What Forward-Forward and SCFF trainers share: hidden weights, the layer loop, the optimiser, statistics.

A step programs the current weights once, then measures the layers one at a time (one
``forward(x, layers=[k])`` request each, DESIGN.md §2): layer ``k`` sees the normalised measured
output of layer ``k − 1`` (normalisation is digital, on the client), computes its own loss and
gradient from its own measurement (:mod:`trainer_client.protocols.goodness`), and every layer is
then updated at once. No layer's update depends on another layer's gradient: there is no
backward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from trainer_client.optim import Adam
from trainer_client.protocols.goodness import GoodnessLoss, normalise
from trainer_client.protocols.layers import Layers


@dataclass
class ForwardOnlyConfig:
    """Hyper-parameters common to FF and SCFF (names as in the CLI)."""

    threshold: float = 0.2
    sharpness: float = 20.0
    lr: float = 0.01
    batch_size: int = 64
    seed: int = 0
    init_scale: float = 1.0

    def __post_init__(self) -> None:
        GoodnessLoss(self.threshold, self.sharpness)  # validates both
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (SCFF pairs samples within a batch)")
        if not self.init_scale > 0:
            raise ValueError(f"init_scale must be positive, got {self.init_scale}")

    @property
    def loss(self) -> GoodnessLoss:
        return GoodnessLoss(self.threshold, self.sharpness)


@dataclass
class StepStats:
    """Per-layer means over one batch: loss, goodness of positives and of negatives."""

    loss: list[float] = field(default_factory=list)
    goodness_pos: list[float] = field(default_factory=list)
    goodness_neg: list[float] = field(default_factory=list)


def init_weights(sizes: Sequence[int], rng: np.random.Generator, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Uniform ``±scale/√fan_in`` weights and biases (float64 hidden copies held by the client)."""
    weights: dict[str, np.ndarray] = {}
    for k in range(len(sizes) - 1):
        bound = scale / np.sqrt(sizes[k])
        weights[f"W{k}"] = rng.uniform(-bound, bound, (sizes[k + 1], sizes[k]))
        weights[f"b{k}"] = rng.uniform(-bound, bound, sizes[k + 1])
    return weights


class LayerwiseTrainer:
    """Base of :class:`~trainer_client.protocols.ff.FFTrainer` and :class:`~trainer_client.protocols.scff.SCFFTrainer`.

    Subclasses say how each next layer's positive and negative inputs are made (:meth:`next_inputs`).
    """

    def __init__(self, layers: Layers, config: ForwardOnlyConfig) -> None:
        self.layers = layers
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.weights = init_weights(layers.sizes, self.rng, config.init_scale)
        self.initial_weights = {k: v.copy() for k, v in self.weights.items()}
        self.optimizer = Adam()
        self._lrs = {name: config.lr for name in self.weights}
        self.loss = config.loss
        self.n_layers = len(layers.sizes) - 1

    def next_inputs(self, y: np.ndarray, u: np.ndarray, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inputs of the next layer (and their signs) from this layer's measured outputs ``y``."""
        raise NotImplementedError

    def program(self) -> None:
        self.layers.program(self.weights)

    def measure(self, u: np.ndarray, sign: np.ndarray, program: bool = True) -> tuple[dict[str, np.ndarray], StepStats]:
        """Program the weights, measure every layer once on positives and negatives, and return
        every layer's local gradient (``W0, b0, …``) with the batch statistics; nothing is updated.

        ``u`` holds the first layer's inputs, ``sign`` +1 for positive rows and −1 for negative
        ones; :meth:`next_inputs` builds each next layer's from the measured outputs. ``program=False``:
        the current weights are on the device already.
        """
        if program:
            self.program()
        stats = StepStats()
        grads: dict[str, np.ndarray] = {}
        for k in range(self.n_layers):
            y = self.layers.forward_layer(k, u)
            grads[f"W{k}"], grads[f"b{k}"], loss = self.loss.gradient(u, y, sign, self.layers.activation)
            g = self.loss.goodness(y)
            stats.loss.append(loss)
            stats.goodness_pos.append(float(np.mean(g[sign > 0])))
            stats.goodness_neg.append(float(np.mean(g[sign < 0])))
            if k + 1 < self.n_layers:
                u, sign = self.next_inputs(y, u, sign)
        return grads, stats

    def train_layers(self, u: np.ndarray, sign: np.ndarray, program: bool = True) -> StepStats:
        """:meth:`measure`, then one Adam step on every layer (projected onto the device's weight range)."""
        grads, stats = self.measure(u, sign, program)
        self.optimizer.step(self.weights, {name: -g for name, g in grads.items()}, self._lrs)  # descend the loss
        for name, w in self.weights.items():
            np.clip(w, -self.layers.w_max[int(name[1:])], self.layers.w_max[int(name[1:])], out=w)
        return stats
