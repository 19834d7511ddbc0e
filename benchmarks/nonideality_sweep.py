"""What each non-ideality of default-v1 costs on MNIST (``make bench-full``; hours on 2 cores).

For every setting in which ``default-v1`` differs from ``ideal`` (levels, programming and read
noise, device-to-device spreads, stuck cells, bias nonlinearity), ``hil-train sweep ep --dataset
mnist --preset ideal`` trains the ideal device with that one setting at its default-v1 value, over
seeds; the ideal device itself is the baseline. The result is the accuracy cost of each
non-ideality alone (points, mean ± standard deviation over seeds), in
``benchmarks/results/nonideality_sweep_mnist.json`` and ``…/nonideality_sweep_mnist.png``.
"""

from __future__ import annotations

from benchmarks import common  # noqa: F401  (one BLAS thread, before NumPy loads)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks.common import RESULTS, write_result  # noqa: E402
from device_models.presets import DEFAULT_V1, IDEAL  # noqa: E402


def differing_settings() -> dict[str, object]:
    """Settings where default-v1 differs from ideal, with their default-v1 values."""
    return {f.name: getattr(DEFAULT_V1, f.name) for f in dataclasses.fields(DEFAULT_V1)
            if getattr(DEFAULT_V1, f.name) != getattr(IDEAL, f.name)}


def sweep(out: Path, param: str, value: object, seeds: int, epochs: int, dataset: str) -> dict:
    text = str(int(value)) if isinstance(value, bool) else str(value)
    cmd = [sys.executable, "-m", "trainer_client.cli", "sweep", "ep", "--dataset", dataset, "--preset", "ideal",
           "--param", param, "--values", text, "--seeds", str(seeds), "--epochs", str(epochs), "--out", str(out),
           "--no-progress"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "sweep.json").read_text())["summary"][0]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--dataset", default="mnist")
    args = p.parse_args(argv or [])
    work = RESULTS / "nonideality_sweep" / args.dataset
    baseline = sweep(work / "ideal", "prog_std", 0.0, args.seeds, args.epochs, args.dataset)
    costs = {}
    for param, value in differing_settings().items():
        s = sweep(work / param, param, value, args.seeds, args.epochs, args.dataset)
        costs[param] = {"value": value, "mean_test_accuracy": s["mean_test_accuracy"], "std": s["std"],
                        "cost_points": 100 * (baseline["mean_test_accuracy"] - s["mean_test_accuracy"]),
                        "cost_std_points": 100 * math.hypot(baseline["std"], s["std"])}
        print(f"{param} = {value}: {100 * s['mean_test_accuracy']:.2f} % (cost {costs[param]['cost_points']:.2f} "
              f"± {costs[param]['cost_std_points']:.2f} points)", flush=True)
    path = write_result(f"nonideality_sweep_{args.dataset}", {
        "what": "ideal device with one default-v1 non-ideality switched on at a time (hil-train sweep ep)",
        "dataset": args.dataset, "epochs": args.epochs, "seeds": args.seeds,
        "ideal_mean_test_accuracy": baseline["mean_test_accuracy"], "ideal_std": baseline["std"], "costs": costs})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    names = list(costs)
    ax.bar(names, [costs[n]["cost_points"] for n in names], yerr=[costs[n]["cost_std_points"] for n in names],
           capsize=4, color="C3")
    ax.set_ylabel("test accuracy lost vs ideal [points]")
    ax.set_title(f"EP on {args.dataset}, {args.epochs} epochs: each default-v1 non-ideality alone")
    ax.tick_params(axis="x", rotation=30)
    ax.grid(alpha=0.3, axis="y")
    fig.savefig(RESULTS / f"nonideality_sweep_{args.dataset}.png", dpi=120)
    print(f"  -> {path}")


if __name__ == "__main__":
    main()
