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

The first layer's inputs are *centred* by default: the training set's mean input value ``μ``
(one number, not one per feature) is subtracted from every input the device is sent, in training
and in the probe's features alike (the random device's too). The crossbar's rows are then driven
with signed read voltages: a pixel with more ink than average drives its row positive, a blank
one negative, so a unit can weigh the absence of ink as evidence, where an uncentred input in
``[0, 1]`` leaves a blank pixel's row undriven. Centring commutes with the pair mean,
``(x_i + x_j)/2 − μ = ((x_i − μ) + (x_j − μ))/2``, so positives, negatives and the shared-weight
algebra are unchanged; only the operating point of the drives moves. On digits (64 wide,
default-v1, 144 seeds) it raised the trained layer's probe by 0.57 ± 0.07 points and its margin
over the random device by 0.29 ± 0.13 (docs/forward_only.md).

Deeper layers pair the normalised measured outputs of the previous layer for the positives in
the same way. Representations are judged by a linear probe (:mod:`trainer_client.probe`) on
the layers' outputs, always beside the same probe on the same device programmed with the
untrained, random initial weights (a wide random layer already scores high).
"""

from __future__ import annotations

import numpy as np

from trainer_client.protocols.forward_only import ForwardOnlyConfig, LayerwiseTrainer, StepStats
from trainer_client.protocols.goodness import normalise
from trainer_client.protocols.layers import Layers


def partners(n: int, rng: np.random.Generator) -> np.ndarray:
    """For each of ``n`` samples another sample of the batch (a random cyclic derangement: never itself)."""
    if n < 2:
        raise ValueError("negative pairs need at least two samples in the batch")
    order = rng.permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[order] = np.roll(order, 1)
    return out


def mean_input(x: np.ndarray) -> float:
    """The mean input value of a data set, over samples and features alike: the offset
    :class:`SCFFTrainer` subtracts when it centres its inputs."""
    return float(np.mean(x, dtype=np.float64))


class SCFFTrainer(LayerwiseTrainer):
    """Trains a network ``sizes = (n_features, n_1, …)`` with SCFF; labels are never used.

    ``input_offset`` (``μ``, in input units; 0: inputs as given) is subtracted from every first-layer
    input before it is paired or measured (module docstring); :func:`mean_input` of the training
    set is what ``hil-train scff`` uses.
    """

    def __init__(self, layers: Layers, config: ForwardOnlyConfig, input_offset: float = 0.0) -> None:
        super().__init__(layers, config)
        if not np.isfinite(input_offset):
            raise ValueError(f"input_offset must be finite, got {input_offset}")
        self.input_offset = float(input_offset)

    def centred(self, x: np.ndarray) -> np.ndarray:
        """``x − μ`` in float64, the client's precision (``x`` itself when there is no offset).

        The pairs are formed from it in float64 too; :class:`~trainer_client.protocols.layers.DeviceLayers`
        rounds once, to the device's float type, when it sends them.
        """
        if self.input_offset == 0.0:
            return x
        return np.asarray(x, dtype=np.float64) - self.input_offset

    def pairs(self, rep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Device inputs ``[x_i; (x_i + x_j)/2]`` and their signs ``[+1…; −1…]``."""
        j = partners(len(rep), self.rng)
        u = np.vstack([rep, 0.5 * (rep + rep[j])])
        return u, np.concatenate([np.ones(len(rep)), -np.ones(len(rep))])

    def next_inputs(self, y: np.ndarray, u: np.ndarray, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.pairs(normalise(y[sign > 0]))

    def step(self, x: np.ndarray) -> StepStats:
        """One SCFF step on an unlabelled batch."""
        return self.train_layers(*self.pairs(self.centred(x)))

    def features(self, x: np.ndarray, weights: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Measured outputs of every layer for ``x`` (positives, centred as in training), concatenated:
        the probe's features.

        ``weights`` (e.g. :attr:`initial_weights`, the random device) are programmed instead of
        the trained ones when given.
        """
        self.layers.program(self.weights if weights is None else weights)
        feats, rep = [], self.centred(x)
        for k in range(self.n_layers):
            y = self.layers.forward_layer(k, rep)
            feats.append(y)
            rep = normalise(y)
        return np.hstack(feats)
