"""The training loop of the forward-only protocols: epochs of FF or SCFF steps with a per-epoch record.

One record per epoch: per layer the mean loss and the mean goodness of positives and of
negatives over the epoch's batches (what the goodness plot shows), the test accuracy where it
was evaluated, and the device's time, energy and calls spent in the epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from trainer_client.client import Totals
from trainer_client.protocols.ff import FFTrainer
from trainer_client.protocols.scff import SCFFTrainer


@dataclass
class LayerwiseEpoch:
    epoch: int
    loss: list[float]  # per layer, mean over the epoch's batches
    goodness_pos: list[float]  # per layer, mean goodness of the positives
    goodness_neg: list[float]  # per layer, mean goodness of the negatives
    test_accuracy: float | None  # FF: the network's; SCFF: the linear probe's (None: not evaluated)
    layer_accuracy: list[float] | None  # FF: each layer's alone
    device_time_s: float
    instrument_time_s: float
    energy_j: float
    wall_time_s: float
    device_calls: int

    def as_dict(self) -> dict:
        return asdict(self)


TABLE_HEADER = (f"{'epoch':>5} {'loss':>8} {'G+ (last)':>9} {'G- (last)':>9} {'test':>7} "
                f"{'device time':>12} {'energy':>11} {'wall':>7}")


def table_row(r: LayerwiseEpoch) -> str:
    test = "—" if r.test_accuracy is None else f"{100 * r.test_accuracy:.2f}%"
    return (f"{r.epoch:>5} {np.mean(r.loss):>8.4f} {r.goodness_pos[-1]:>9.4f} {r.goodness_neg[-1]:>9.4f} {test:>7} "
            f"{r.device_time_s * 1e3:>9.3f} ms {r.energy_j * 1e6:>8.3f} µJ {r.wall_time_s:>6.1f}s")


def train_layerwise(
    trainer: FFTrainer | SCFFTrainer,
    x_train: np.ndarray,
    y_train: np.ndarray | None,
    epochs: int,
    evaluate: Callable[[int], dict],
    totals: Totals,
    progress: bool = True,
    log: Callable[[str], None] = tqdm.write,
) -> list[LayerwiseEpoch]:
    """Train for ``epochs``; ``y_train`` is used by FF only (SCFF never sees a label).

    ``evaluate(epoch)`` returns ``{"test_accuracy": …, "layer_accuracy": …}`` or ``{}`` when the
    epoch is not evaluated.
    """
    rng = np.random.default_rng(trainer.config.seed + 1)  # batch order: its own stream
    n, bs = len(x_train), trainer.config.batch_size
    history: list[LayerwiseEpoch] = []
    log(TABLE_HEADER)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        before = totals.as_dict()
        perm = rng.permutation(n)
        sums = np.zeros((3, trainer.n_layers))
        batches = 0
        bar = tqdm(range(0, n - 1, bs), desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False, disable=not progress)
        for i in bar:
            idx = perm[i:i + bs]
            if len(idx) < 2:
                continue
            if isinstance(trainer, FFTrainer):
                stats = trainer.step(x_train[idx], y_train[idx])
            else:
                stats = trainer.step(x_train[idx])
            sums += (stats.loss, stats.goodness_pos, stats.goodness_neg)
            batches += 1
            bar.set_postfix(loss=f"{np.mean(stats.loss):.4f}")
        means = sums / max(batches, 1)
        result = evaluate(epoch)
        record = LayerwiseEpoch(
            epoch=epoch,
            loss=means[0].tolist(),
            goodness_pos=means[1].tolist(),
            goodness_neg=means[2].tolist(),
            test_accuracy=result.get("test_accuracy"),
            layer_accuracy=result.get("layer_accuracy"),
            wall_time_s=time.perf_counter() - t0,
            **totals.since(before),
        )
        history.append(record)
        log(table_row(record))
    return history
