"""Forward-Forward (Hinton, "The Forward-Forward Algorithm", arXiv:2212.13345, 2022) on a device.

Supervised, forward-only: the label is part of the input. The first layer sees
``[x, λ·onehot(c)]`` (pixels in ``[0, 1]`` followed by the label scaled by ``λ``, all within
the device's input range); a *positive* carries the true label, a *negative* the same image
with a wrong label drawn uniformly among the other classes — never the true one. Each layer
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


def wrong_labels(labels: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A label other than the true one for every sample, uniform over the ``n_classes − 1`` others."""
    return (labels + rng.integers(1, n_classes, size=len(labels))) % n_classes


class FFTrainer(LayerwiseTrainer):
    """Trains a network ``sizes = (n_features + n_classes, n_1, …)`` with Forward-Forward."""

    def __init__(self, layers: Layers, config: ForwardOnlyConfig, n_classes: int, label_scale: float = 1.0) -> None:
        if n_classes < 2:
            raise ValueError("Forward-Forward needs at least two classes (negatives carry a wrong label)")
        if layers.sizes[0] <= n_classes:
            raise ValueError(f"the first layer has {layers.sizes[0]} inputs: too few for {n_classes} label inputs "
                             "and the features")
        if not label_scale > 0:
            raise ValueError(f"label_scale must be positive, got {label_scale}")
        super().__init__(layers, config)
        self.n_classes = n_classes
        self.n_features = layers.sizes[0] - n_classes
        self.label_scale = label_scale

    def embed(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``[x, λ·onehot(label)]``: the label written into the last ``n_classes`` inputs."""
        if x.shape[1] != self.n_features:
            raise ValueError(f"the network takes {self.n_features} features, got {x.shape[1]}")
        onehot = np.zeros((len(x), self.n_classes))
        onehot[np.arange(len(x)), labels] = self.label_scale
        return np.hstack([x, onehot])

    def next_inputs(self, y: np.ndarray, u: np.ndarray, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return normalise(y), sign

    def step(self, x: np.ndarray, labels: np.ndarray) -> StepStats:
        """One FF step on a batch: positives with the true label, as many negatives with a wrong one."""
        negatives = wrong_labels(labels, self.n_classes, self.rng)
        u = np.vstack([self.embed(x, labels), self.embed(x, negatives)])
        sign = np.concatenate([np.ones(len(x)), -np.ones(len(x))])
        return self.train_layers(u, sign)

    def goodness_table(self, x: np.ndarray) -> np.ndarray:
        """Goodness ``(n_samples, n_classes, n_layers)`` of every image shown with every label."""
        self.program()
        table = np.empty((len(x), self.n_classes, self.n_layers))
        for c in range(self.n_classes):
            u = self.embed(x, np.full(len(x), c))
            for k in range(self.n_layers):
                y = self.layers.forward_layer(k, u)
                table[:, c, k] = GoodnessLoss.goodness(y)
                u = normalise(y)
        return table

    def evaluate(self, x: np.ndarray, labels: np.ndarray) -> dict[str, float | list[float]]:
        """Accuracy of the network (goodness summed over layers) and of each layer alone."""
        table = self.goodness_table(x)
        per_layer = [float(np.mean(np.argmax(table[:, :, k], axis=1) == labels)) for k in range(self.n_layers)]
        network = float(np.mean(np.argmax(table.sum(axis=2), axis=1) == labels))
        return {"accuracy": network, "layer_accuracy": per_layer}
