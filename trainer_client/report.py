"""Run reports: ``report.json`` and ``curves.png`` in the run's output folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer_client.training import EpochRecord


def write_report(out_dir: Path, report: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return path


def plot_curves(history: list[EpochRecord], path: Path, title: str) -> Path:
    """Learning curves (train/test accuracy) and the device's time and energy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r.epoch for r in history]
    fig, (ax_acc, ax_cost) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    ax_acc.plot(epochs, [100 * r.train_accuracy for r in history], "o-", label="train (free phase while training)")
    ax_acc.plot(epochs, [100 * r.test_accuracy for r in history], "s-", label="test")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy [%]")
    ax_acc.set_title(title)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(loc="lower right")
    ax_cost.plot(epochs, [1e3 * r.device_time_s for r in history], "o-", color="C2", label="device time")
    ax_cost.set_xlabel("epoch")
    ax_cost.set_ylabel("device time per epoch [ms]", color="C2")
    ax_energy = ax_cost.twinx()
    ax_energy.plot(epochs, [1e6 * r.energy_j for r in history], "s--", color="C3", label="energy")
    ax_energy.set_ylabel("energy per epoch [µJ]", color="C3")
    ax_cost.set_title("cost on the chip")
    ax_cost.grid(alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
