"""Plots of a forward-only run: accuracy per epoch, and goodness of positives vs negatives per layer."""

from __future__ import annotations

from pathlib import Path

from trainer_client.forward_training import LayerwiseEpoch


def plot_forward_only(history: list[LayerwiseEpoch], path: Path, title: str,
                      baseline: float | None = None, baseline_label: str = "random device") -> Path:
    """Left: test accuracy (network and each layer for FF; the probe for SCFF, beside the random
    device's ``baseline``). Right: mean goodness of positives (solid) and negatives (dashed) per layer.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r.epoch for r in history]
    fig, (ax_acc, ax_g) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    evaluated = [r for r in history if r.test_accuracy is not None]
    ax_acc.plot([r.epoch for r in evaluated], [100 * r.test_accuracy for r in evaluated], "o-", color="k",
                label="network" if any(r.layer_accuracy for r in evaluated) else "linear probe")
    n_layers = len(history[0].goodness_pos) if history else 0
    for k in range(n_layers):
        with_layers = [r for r in evaluated if r.layer_accuracy]
        if with_layers:
            ax_acc.plot([r.epoch for r in with_layers], [100 * r.layer_accuracy[k] for r in with_layers], ".--",
                        color=f"C{k}", label=f"layer {k} alone")
    if baseline is not None:
        ax_acc.axhline(100 * baseline, color="grey", ls=":", label=f"{baseline_label} ({100 * baseline:.2f} %)")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy [%]")
    ax_acc.set_title(title)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(loc="lower right")
    for k in range(n_layers):
        ax_g.plot(epochs, [r.goodness_pos[k] for r in history], "-", color=f"C{k}", label=f"layer {k} positives")
        ax_g.plot(epochs, [r.goodness_neg[k] for r in history], "--", color=f"C{k}", label=f"layer {k} negatives")
    ax_g.set_xlabel("epoch")
    ax_g.set_ylabel("mean goodness ⟨y²⟩ over the epoch")
    ax_g.set_title("goodness of positives vs negatives")
    ax_g.grid(alpha=0.3)
    ax_g.legend(loc="best", fontsize="small")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
