"""SCFF's probe margin over the random device on digits, seed by seed (``make bench-full``).

Issue 7's acceptance (``tests/test_forward_only_digits.py``) compares, over seeds 0, 1 and 2, the
linear probe on a trained 64-wide SCFF layer with the same probe on the same device programmed
with the untrained weights. One seed's margin spreads over several points, so three seeds say
little on their own: this benchmark runs exactly what the test runs (``hil-train scff`` with its
defaults through the sweep runner, a real server per run, default-v1, every measurement a
``forward`` request) over more seeds, with and without the input centring of
:mod:`trainer_client.protocols.scff`, and records per seed the probe, the random probe and the
margin, with the mean, its standard error, the spread and the mean over seeds 0-2.

``python -m benchmarks.scff_digits_margin [--seeds 12] [--no-compare]``; the result goes to
``benchmarks/results/scff_digits_margin.json``. docs/forward_only.md has the study behind the
defaults.
"""

from __future__ import annotations

from benchmarks import common  # noqa: F401  (one BLAS thread, before NumPy loads)

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from tqdm import tqdm  # noqa: E402

from benchmarks.common import RESULTS, write_result  # noqa: E402
from trainer_client.forward_runs import SWEEP_RUNNERS, default_args  # noqa: E402


def margins(seeds: int, centre: bool) -> dict[str, Any]:
    """``hil-train scff`` (defaults, ``--centre`` as given) on seeds ``0 … seeds−1``: per seed and summary."""
    rows = []
    for seed in tqdm(range(seeds), desc=f"scff {'--centre' if centre else '--no-centre'}", unit="seed"):
        with tempfile.TemporaryDirectory() as tmp:
            args = default_args("scff", out=Path(tmp), quiet=True, no_progress=True, centre=centre)
            r = SWEEP_RUNNERS["scff"](args, {}, seed)
        rows.append({"seed": seed, "probe": r["probe_accuracy"], "random_probe": r["random_probe_accuracy"],
                     "gain_points": 100 * r["probe_gain"], "wall_time_s": r["wall_time_s"]})
    gains = [row["gain_points"] for row in rows]
    spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
    return {
        "centre": centre,
        "seeds": rows,
        "mean_gain_points": statistics.fmean(gains),
        "stderr_points": spread / len(gains) ** 0.5,
        "sd_points": spread,
        "min_gain_points": min(gains),
        "mean_gain_seeds_0_2_points": statistics.fmean(gains[:3]),
        "mean_probe": statistics.fmean(row["probe"] for row in rows),
        "mean_random_probe": statistics.fmean(row["random_probe"] for row in rows),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scff_digits_margin")
    p.add_argument("--seeds", type=int, default=12, help="seeds 0 … N−1 (default 12)")
    p.add_argument("--no-compare", action="store_true", help="the defaults only, not also --no-centre")
    opts = p.parse_args(argv)
    runs = {"default": margins(opts.seeds, True)}
    if not opts.no_compare:
        runs["no-centre"] = margins(opts.seeds, False)
    for name, r in runs.items():
        print(f"scff digits 64, {name}: margin {r['mean_gain_points']:+.2f} ± {r['stderr_points']:.2f} points "
              f"over {opts.seeds} seeds (sd {r['sd_points']:.2f}, min {r['min_gain_points']:+.2f}; seeds 0-2 "
              f"{r['mean_gain_seeds_0_2_points']:+.2f}); probe {100 * r['mean_probe']:.2f} %, random "
              f"{100 * r['mean_random_probe']:.2f} %", flush=True)
    write_result("scff_digits_margin", {"what": "hil-train scff on digits (64 wide, default-v1, over HTTP): "
                                        "probe margin over the random device per seed", "runs": runs})
    print(f"  -> {RESULTS / 'scff_digits_margin.json'}")


if __name__ == "__main__":
    main()
