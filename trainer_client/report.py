"""Run reports: ``report.json`` and the figures a researcher reads first.

- ``curves.png``: learning curves — the device's train and test accuracy per epoch beside the
  test accuracy of its references (ideal device, software) — and the chip's time and energy per
  epoch;
- ``states.png``: histograms of the free-phase neuron states per layer (device and ideal twin):
  saturated or silent layers show at a glance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainer_client.training import EpochRecord


def write_report(out_dir: Path, report: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.json"
    tmp = path.with_name("report.tmp.json")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[EpochRecord], path: Path, title: str,
                references: Mapping[str, Sequence[EpochRecord]] | None = None) -> Path:
    """Learning curves (device train/test, references' test) and the device's time and energy per epoch."""
    plt = _pyplot()
    epochs = [r.epoch for r in history]
    fig, (ax_acc, ax_cost) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    ax_acc.plot(epochs, [100 * r.train_accuracy for r in history], "o-", label="device train (free phase while training)")
    ax_acc.plot(epochs, [100 * r.test_accuracy for r in history], "s-", label="device test")
    styles = ["v--", "^:", "d-."]  # distinct, so that references which coincide both stay visible
    for i, (name, ref) in enumerate((references or {}).items()):
        ax_acc.plot([r.epoch for r in ref], [100 * r.test_accuracy for r in ref], styles[i % 3], color=f"C{i + 4}",
                    label=f"{name} test", markerfacecolor="none")
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


def plot_state_histograms(states: Mapping[str, Sequence[np.ndarray]], path: Path, title: str) -> Path:
    """One panel per neuron layer: the distribution of its measured free-phase states, per run."""
    plt = _pyplot()
    n_layers = max(len(s) for s in states.values())
    fig, axes = plt.subplots(1, n_layers, figsize=(4.2 * n_layers, 3.6), constrained_layout=True, squeeze=False)
    bins = np.linspace(-0.05, 1.05, 45)
    for k, ax in enumerate(axes[0]):
        for name, layers in states.items():
            if k < len(layers):
                values = np.asarray(layers[k]).ravel()
                ax.hist(values, bins=bins, histtype="step", linewidth=1.5, density=True,
                        label=f"{name} (mean {values.mean():.2f})")
        ax.set_yscale("log")
        ax.set_xlabel(f"state of layer {k + 1}")
        ax.set_ylabel("density")
        ax.set_title(f"layer {k + 1}" + (" (output)" if k == n_layers - 1 else " (hidden)"))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"free-phase neuron states: {title}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
