"""EP on MNIST over HTTP (784-512-10, ``hil-train ep`` defaults): the accuracy targets of DESIGN.md §7.

Runs ``hil-train ep --dataset mnist`` as a user would (its own server subprocess on a free port):
the default-v1 device, its ideal twin and the software reference, each for the default 10 epochs,
and records test accuracies, wall times and the gap beside the targets: ideal ≥ 97.5 % test in
≤ 10 epochs, default-v1 within 1.5 points of the ideal run. The run's figures are copied to
``benchmarks/results/ep_mnist/``.
"""

from __future__ import annotations

from benchmarks import common  # noqa: F401  (one BLAS thread, before NumPy loads)

import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks.common import RESULTS, write_result  # noqa: E402

TARGETS = {"ideal_test_accuracy": 0.975, "max_epochs": 10, "max_gap": 0.015}


def run(extra: list[str] | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "trainer_client.cli", "ep", "--dataset", "mnist", "--out", tmp, "--no-progress",
               *(extra or [])]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=3 * 3600)
        report = json.loads((Path(tmp) / "report.json").read_text())
        figures = RESULTS / "ep_mnist"
        figures.mkdir(parents=True, exist_ok=True)
        for name in ("curves.png", "states.png", "report.json"):
            shutil.copy(Path(tmp) / name, figures / name)
    refs = report["references"]
    device_wall = sum(r["wall_time_s"] for r in report["history"])
    gap = report["ideal_test_accuracy"] - report["test_accuracy"]
    return {
        "what": "hil-train ep --dataset mnist (784-512-10 over HTTP): default-v1, ideal twin, software reference",
        "command": cmd[2:], "epochs": report["epochs"], "hyperparameters": report["hyperparameters"],
        "test_accuracy": {"default-v1": report["test_accuracy"], "ideal": report["ideal_test_accuracy"],
                          "software": report["software_test_accuracy"]},
        "best_test_accuracy": {"default-v1": report["best_test_accuracy"],
                               **{k: v["best_test_accuracy"] for k, v in refs.items()}},
        "gap_ideal_minus_default": gap,
        "wall_time_s": {"default-v1": device_wall, **{k: v["wall_time_s"] for k, v in refs.items()},
                        "whole_command": report["command_wall_time_s"]},
        "device_time_s": report["device_time_s"], "energy_j": report["energy_j"],
        "history": {"default-v1": report["history"], **{k: v["history"] for k, v in refs.items()}},
        "targets": TARGETS,
        "met": {"ideal": report["ideal_test_accuracy"] >= TARGETS["ideal_test_accuracy"]
                and report["epochs"] <= TARGETS["max_epochs"], "gap": gap <= TARGETS["max_gap"]},
    }


def main() -> None:
    r = run()
    path = write_result("ep_mnist", r)
    acc, wall = r["test_accuracy"], r["wall_time_s"]
    print(f"EP MNIST {r['epochs']} epochs: default-v1 {100 * acc['default-v1']:.2f} % ({wall['default-v1']:.0f} s), "
          f"ideal {100 * acc['ideal']:.2f} % ({wall['ideal']:.0f} s), software {100 * acc['software']:.2f} % "
          f"({wall['software']:.0f} s); gap {100 * r['gap_ideal_minus_default']:.2f} points (target ≤ 1.5), "
          f"ideal target ≥ 97.5 %: {'met' if r['met']['ideal'] else 'NOT met'}, gap: "
          f"{'met' if r['met']['gap'] else 'NOT met'}  -> {path}")


if __name__ == "__main__":
    main()
