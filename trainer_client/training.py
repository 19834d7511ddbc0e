"""The training loop: epochs of EP steps on a held lease, with a progress bar and a per-epoch record."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from trainer_client.client import Lease
from trainer_client.datasets import Dataset
from trainer_client.protocols.ep import EPConfig, EPNetwork, EPTrainer


@dataclass
class EpochRecord:
    epoch: int
    train_accuracy: float  # of the free-phase predictions made while training on the epoch
    test_accuracy: float
    device_time_s: float
    instrument_time_s: float
    energy_j: float
    wall_time_s: float
    device_calls: int

    def as_dict(self) -> dict:
        return asdict(self)


TABLE_HEADER = f"{'epoch':>5} {'train':>7} {'test':>7} {'device time':>12} {'energy':>11} {'wall':>7}"


def table_row(r: EpochRecord) -> str:
    return (f"{r.epoch:>5} {100 * r.train_accuracy:>6.2f}% {100 * r.test_accuracy:>6.2f}% "
            f"{r.device_time_s * 1e3:>9.3f} ms {r.energy_j * 1e6:>8.3f} µJ {r.wall_time_s:>6.1f}s")


def train_ep(
    lease: Lease,
    data: Dataset,
    config: EPConfig,
    epochs: int,
    progress: bool = True,
    log: Callable[[str], None] = tqdm.write,
) -> tuple[EPTrainer, list[EpochRecord]]:
    """Train EP on ``lease``'s device for ``epochs``; returns the trainer and one record per epoch."""
    info = lease.describe()
    sizes = info["topology"]["sizes"]
    if sizes[0] != data.x_train.shape[1] or sizes[-1] != data.n_classes:
        raise ValueError(f"device {lease.device_id!r} has layers {sizes}; {data.name} needs "
                         f"{data.x_train.shape[1]} inputs and {data.n_classes} outputs")
    rng = np.random.default_rng(config.seed)
    net = EPNetwork.init(sizes, info["topology"]["w_max"], rng, config.init_scale)
    trainer = EPTrainer(lease, net, config)
    totals = lease.client.totals
    eye = np.eye(data.n_classes, dtype=np.float32)
    history: list[EpochRecord] = []
    n = len(data.x_train)
    bs = config.batch_size
    log(TABLE_HEADER)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        before = (totals.device_time_s, totals.instrument_time_s, totals.energy_j, totals.device_calls)
        perm = rng.permutation(n)
        correct = 0
        bar = tqdm(range(0, n, bs), desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False, disable=not progress)
        for i in bar:
            idx = perm[i:i + bs]
            out = trainer.step(data.x_train[idx], eye[data.y_train[idx]])
            correct += int(np.sum(np.argmax(out, axis=1) == data.y_train[idx]))
            bar.set_postfix(acc=f"{correct / min(i + bs, n):.3f}")
        test_acc = float(np.mean(trainer.predict(data.x_test) == data.y_test))
        record = EpochRecord(
            epoch=epoch,
            train_accuracy=correct / n,
            test_accuracy=test_acc,
            device_time_s=totals.device_time_s - before[0],
            instrument_time_s=totals.instrument_time_s - before[1],
            energy_j=totals.energy_j - before[2],
            wall_time_s=time.perf_counter() - t0,
            device_calls=totals.device_calls - before[3],
        )
        history.append(record)
        log(table_row(record))
    return trainer, history
