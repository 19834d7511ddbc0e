"""Forward-Forward (Hinton, "The Forward-Forward Algorithm", arXiv:2212.13345, 2022) on a device.

Supervised, forward-only: the label is part of the input. The first layer sees
``[x, λ·onehot(c), …, λ·onehot(c)]`` (pixels in ``[0, 1]`` followed by the label scaled by ``λ``
and written ``r`` times, all within the device's input range). Repeating the label is how a
crossbar gives it weight: one input can move a neuron's drive by at most ``λ·w_max`` (the
device's weight range, ``4/√fan_in`` by default: 0.14 for MNIST's 794 inputs), against the
sum over a hundred lit pixels; ``r`` copies move it ``r`` times as far. A *positive* carries
the true label, a *negative* the same image with a wrong label — never the true one — drawn
uniformly among the others, or (``negatives="hard"``) in proportion to how plausible the
network currently finds each wrong label, measured on the device. Each layer
learns to give positives a goodness above the threshold and negatives one below
(:mod:`trainer_client.protocols.goodness`), from its own ``forward`` measurement; its
normalised output is the next layer's input.

Classification: the image is shown with every label; the predicted class is the one with the
highest goodness — of one layer (each layer's accuracy) or summed over all layers (the
network's accuracy). Hinton sums all layers but the first when there are several; we keep
every layer, so a one-layer network is classified the same way.
"""

from __future__ import annotations

import numpy as np

from trainer_client.protocols.forward_only import ForwardOnlyConfig, LayerwiseTrainer, StepStats
from trainer_client.protocols.goodness import GoodnessLoss, normalise
from trainer_client.protocols.layers import Layers


NEGATIVES = ("random", "hard")


def wrong_labels(labels: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A label other than the true one for every sample, uniform over the ``n_classes − 1`` others."""
    return (labels + rng.integers(1, n_classes, size=len(labels))) % n_classes


def hard_wrong_labels(labels: np.ndarray, logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A wrong label per sample drawn with probability ``softmax(logits)`` over the wrong labels only.

    Hinton's (2022) hard negatives: the labels the network currently finds most plausible
    are shown most often as negatives. The true label has probability zero.
    """
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p[np.arange(len(labels)), labels] = 0.0
    cdf = np.cumsum(p, axis=1)
    u = rng.random(len(labels)) * cdf[:, -1]
    return np.minimum((cdf < u[:, None]).sum(axis=1), logits.shape[1] - 1)


class FFTrainer(LayerwiseTrainer):
    """Trains a network ``sizes = (n_features + r·n_classes, n_1, …)`` with Forward-Forward."""

    def __init__(self, layers: Layers, config: ForwardOnlyConfig, n_classes: int, label_scale: float = 1.0,
                 label_repeat: int = 1, negatives: str = "random") -> None:
        if n_classes < 2:
            raise ValueError("Forward-Forward needs at least two classes (negatives carry a wrong label)")
        if label_repeat < 1:
            raise ValueError(f"label_repeat must be at least 1, got {label_repeat}")
        if layers.sizes[0] <= n_classes * label_repeat:
            raise ValueError(f"the first layer has {layers.sizes[0]} inputs: too few for {n_classes}×{label_repeat} "
                             "label inputs and the features")
        if negatives not in NEGATIVES:
            raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
        if not label_scale > 0:
            raise ValueError(f"label_scale must be positive, got {label_scale}")
        super().__init__(layers, config)
        self.n_classes = n_classes
        self.label_repeat = label_repeat
        self.n_features = layers.sizes[0] - n_classes * label_repeat
        self.label_scale = label_scale
        self.negatives = negatives

    def embed(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``[x, λ·onehot(label) × r]``: the label written into the last ``r·n_classes`` inputs."""
        if x.shape[1] != self.n_features:
            raise ValueError(f"the network takes {self.n_features} features, got {x.shape[1]}")
        onehot = np.zeros((len(x), self.n_classes))
        onehot[np.arange(len(x)), labels] = self.label_scale
        return np.hstack([x, *([onehot] * self.label_repeat)])

    def next_inputs(self, y: np.ndarray, u: np.ndarray, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return normalise(y), sign

    def step(self, x: np.ndarray, labels: np.ndarray) -> StepStats:
        """One FF step on a batch: positives with the true label, as many negatives with a wrong one
        (uniform, or with ``negatives="hard"`` drawn from the network's own goodness of each label,
        measured on the device for the batch first: ``n_classes`` more forward passes)."""
        hard = self.negatives == "hard"
        if hard:  # programs the current weights, which the step then measures
            logits = self.loss.sharpness * (self.goodness_table(x).mean(axis=2) - self.loss.threshold)
            negatives = hard_wrong_labels(labels, logits, self.rng)
        else:
            negatives = wrong_labels(labels, self.n_classes, self.rng)
        u = np.vstack([self.embed(x, labels), self.embed(x, negatives)])
        sign = np.concatenate([np.ones(len(x)), -np.ones(len(x))])
        return self.train_layers(u, sign, program=not hard)

    def goodness_table(self, x: np.ndarray, rows_per_call: int = 4096) -> np.ndarray:
        """Goodness ``(n_samples, n_classes, n_layers)`` of every image shown with every label.

        Every label of a chunk of images goes in one request per layer (``rows_per_call`` rows).
        """
        self.program()
        chunk = max(1, rows_per_call // self.n_classes)
        table = np.empty((len(x), self.n_classes, self.n_layers))
        for i in range(0, len(x), chunk):
            xc = x[i:i + chunk]
            n = len(xc)
            u = self.embed(np.tile(xc, (self.n_classes, 1)), np.repeat(np.arange(self.n_classes), n))
            for k in range(self.n_layers):
                y = self.layers.forward_layer(k, u)
                table[i:i + n, :, k] = GoodnessLoss.goodness(y).reshape(self.n_classes, n).T
                u = normalise(y)
        return table

    def evaluate(self, x: np.ndarray, labels: np.ndarray) -> dict[str, float | list[float]]:
        """Accuracy of the network (goodness summed over layers) and of each layer alone."""
        table = self.goodness_table(x)
        per_layer = [float(np.mean(np.argmax(table[:, :, k], axis=1) == labels)) for k in range(self.n_layers)]
        network = float(np.mean(np.argmax(table.sum(axis=2), axis=1) == labels))
        return {"accuracy": network, "layer_accuracy": per_layer}
