"""Self-Contrastive Forward-Forward (Chen, Liu, Laydevant & Grollier, Nat. Commun. 2025,
arXiv:2409.11593) on a device: forward-only and without labels.

A layer with weights ``[W W]`` shared over two input copies sees a *positive* pair
``(x_i, x_i)`` and a *negative* pair ``(x_i, x_j)``, ``j ≠ i`` drawn from the same batch. With
shared weights ``[W W][x_i; x_j] = W(x_i + x_j)``, so the device is sent ``(x_i + x_j)/2``: the
mean of two inputs in range is in range, and the factor 2 is absorbed in ``W`` (the positive is
then ``x_i`` itself, which is also what a trained layer is shown at inference). This is exact
only for an ideal linear read: the bias nonlinearity of the crossbar (DESIGN.md §4) reads the
mean of two drives differently from the two drives summed — one of the things the emulator
lets one study.

Deeper layers pair the normalised measured outputs of the previous layer for the positives in
the same way. Representations are judged by a linear probe (:mod:`trainer_client.probe`) on
the layers' outputs, always beside the same probe on the same device programmed with the
untrained, random initial weights (a wide random layer already scores high).
"""

from __future__ import annotations

import numpy as np

from trainer_client.protocols.forward_only import LayerwiseTrainer, StepStats
from trainer_client.protocols.goodness import normalise


def partners(n: int, rng: np.random.Generator) -> np.ndarray:
    """For each of ``n`` samples another sample of the batch (a random cyclic derangement: never itself)."""
    if n < 2:
        raise ValueError("negative pairs need at least two samples in the batch")
    order = rng.permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[order] = np.roll(order, 1)
    return out


class SCFFTrainer(LayerwiseTrainer):
    """Trains a network ``sizes = (n_features, n_1, …)`` with SCFF; labels are never used."""

    def pairs(self, rep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Device inputs ``[x_i; (x_i + x_j)/2]`` and their signs ``[+1…; −1…]``."""
        j = partners(len(rep), self.rng)
        u = np.vstack([rep, 0.5 * (rep + rep[j])])
        return u, np.concatenate([np.ones(len(rep)), -np.ones(len(rep))])

    def next_inputs(self, y: np.ndarray, u: np.ndarray, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.pairs(normalise(y[sign > 0]))

    def step(self, x: np.ndarray) -> StepStats:
        """One SCFF step on an unlabelled batch."""
        return self.train_layers(*self.pairs(x))

    def features(self, x: np.ndarray, weights: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Measured outputs of every layer for ``x`` (positives), concatenated: the probe's features.

        ``weights`` (e.g. :attr:`initial_weights`, the random device) are programmed instead of
        the trained ones when given.
        """
        self.layers.program(self.weights if weights is None else weights)
        feats, rep = [], x
        for k in range(self.n_layers):
            y = self.layers.forward_layer(k, rep)
            feats.append(y)
            rep = normalise(y)
        return np.hstack(feats)
