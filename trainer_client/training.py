"""The training loop: epochs of EP steps, a progress bar, one record per epoch, and checkpoints.

A checkpoint is written after every epoch (atomically: a killed process leaves the previous one
whole): the hidden weights and optimiser moments (``.npz``) and the epoch, history, data-order
and nudging-sign generators and hyper-parameters (``.json``). :func:`train_ep` given a
checkpoint that exists continues after its last epoch; the device is re-programmed from the
hidden weights at the next step (a fresh programming draw: with programming noise the device run
is reproducible from its seed only when it was not interrupted).
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from trainer_client.client import Totals
from trainer_client.datasets import Dataset
from trainer_client.optim import lr_factor
from trainer_client.protocols.ep import EPConfig, EPDevice, EPNetwork, EPTrainer


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


class Checkpoint:
    """``<path>.npz`` (arrays) and ``<path>.json`` (the rest) of one training run."""

    def __init__(self, path: Path) -> None:
        self.arrays = path.with_suffix(".npz")
        self.meta = path.with_suffix(".json")

    def exists(self) -> bool:
        return self.meta.is_file() and self.arrays.is_file()

    def save(self, trainer: EPTrainer, epoch: int, epochs: int, history: Sequence[EpochRecord],
             order_rng: np.random.Generator) -> None:
        self.meta.parent.mkdir(parents=True, exist_ok=True)
        tmp_arrays = self.arrays.with_name(self.arrays.stem + ".tmp.npz")
        np.savez(tmp_arrays, **trainer.state())
        meta = {"epoch": epoch, "epochs": epochs, "history": [r.as_dict() for r in history], "config": _config_dict(trainer.config),
                "order_rng": order_rng.bit_generator.state, "trainer_rng": trainer.rng.bit_generator.state}
        tmp_meta = self.meta.with_name(self.meta.stem + ".tmp.json")
        tmp_meta.write_text(json.dumps(meta))
        # arrays first: a meta file always points at arrays at least as new as itself
        os.replace(tmp_arrays, self.arrays)
        os.replace(tmp_meta, self.meta)

    def load(self, trainer: EPTrainer, epochs: int, order_rng: np.random.Generator) -> tuple[int, list[EpochRecord]]:
        """Restore ``trainer`` and ``order_rng``; returns the last finished epoch and the history."""
        try:
            return self._load(trainer, epochs, order_rng)
        except (OSError, KeyError, TypeError, json.JSONDecodeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"checkpoint {self.meta} cannot be read ({exc!r}); start a new run in another --out") \
                from exc

    def _load(self, trainer: EPTrainer, epochs: int, order_rng: np.random.Generator) -> tuple[int, list[EpochRecord]]:
        meta = json.loads(self.meta.read_text())
        if meta["config"] != _config_dict(trainer.config):
            raise ValueError(f"checkpoint {self.meta} was made with other hyper-parameters "
                             f"({meta['config']}); rerun with those, or start a new run in another --out")
        planned = meta.get("epochs", epochs)  # checkpoints of version 0.1.0 did not record it
        if trainer.config.lr_schedule != "constant" and planned != epochs:
            raise ValueError(f"checkpoint {self.meta}: its {trainer.config.lr_schedule} learning-rate schedule was "
                             f"planned for {planned} epochs; resume with --epochs {planned}")
        with np.load(self.arrays) as saved:
            trainer.load_state({k: saved[k] for k in saved.files})
        order_rng.bit_generator.state = meta["order_rng"]
        trainer.rng.bit_generator.state = meta["trainer_rng"]
        return int(meta["epoch"]), [EpochRecord(**r) for r in meta["history"]]


def _config_dict(config: EPConfig) -> dict[str, Any]:
    d = asdict(config)
    d["lrs"] = [float(v) for v in d["lrs"]]
    return json.loads(json.dumps(d))


def train_ep(
    device: EPDevice,
    topology: dict[str, Any],
    data: Dataset,
    config: EPConfig,
    epochs: int,
    *,
    totals: Totals | None = None,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
    label: str = "",
    log: Callable[[str], None] = tqdm.write,
    resolution: Mapping[str, float] | None = None,
) -> tuple[EPTrainer, list[EpochRecord]]:
    """Train EP on ``device`` (``topology``: its ``sizes`` and ``w_max``) for ``epochs``.

    ``totals`` are the running sums of the device's client (time, energy, calls), read before and
    after each epoch. ``resolution``: the device's level spacing per array (writes then send only
    the cells whose level changed, :class:`EPTrainer`). With a ``checkpoint`` that exists, training continues after its last epoch.
    Returns the trainer and one record per epoch (those of the checkpoint included).
    """
    sizes = topology["sizes"]
    if sizes[0] != data.x_train.shape[1] or sizes[-1] != data.n_classes:
        raise ValueError(f"the device has layers {sizes}; {data.name} needs "
                         f"{data.x_train.shape[1]} inputs and {data.n_classes} outputs")
    rng = np.random.default_rng(config.seed)
    net = EPNetwork.init(sizes, topology["w_max"], rng, config.init_scale)
    trainer = EPTrainer(device, net, config, resolution)
    totals = totals if totals is not None else Totals()
    eye = np.eye(data.n_classes, dtype=np.float32)
    history: list[EpochRecord] = []
    start = 0
    if checkpoint is not None and checkpoint.exists():
        start, history = checkpoint.load(trainer, epochs, rng)
        log(f"{label}resumed after epoch {start} from {checkpoint.meta}")
    n = len(data.x_train)
    bs = config.batch_size
    log(f"{label}{TABLE_HEADER.lstrip()}" if label else TABLE_HEADER)
    for r in history:
        log(f"{label}{table_row(r)}")
    for epoch in range(start + 1, epochs + 1):
        t0 = time.perf_counter()
        before = totals.as_dict()
        perm = rng.permutation(n)
        trainer.set_lr_factor(lr_factor(config.lr_schedule, epoch, epochs))
        correct = 0
        bar = tqdm(range(0, n, bs), desc=f"{label}epoch {epoch}/{epochs}", unit="batch", leave=False,
                   disable=not progress)
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
            wall_time_s=time.perf_counter() - t0,
            **totals.since(before),
        )
        history.append(record)
        log(f"{label}{table_row(record)}")
        if checkpoint is not None:
            checkpoint.save(trainer, epoch, epochs, history, rng)
    return trainer, history
