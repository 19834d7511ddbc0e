"""Crossbar forward under default-v1 against a bare matmul, and write-and-verify throughput.

- ``forward``: :meth:`CrossbarNetwork.forward` of one 784×512 crossbar (batch 128, default-v1:
  bias nonlinearity, read noise, STNO neurons, energy terms) against a bare float32 ``x @ W.T`` of
  the same shape, interleaved, one BLAS thread (DESIGN.md §7 budget: at most 3×);
- ``write_verify``: ``program`` of all 401 408 pairs of the same crossbar to fresh random targets
  (every cell's junctions switched by geometric pulse trains), an EP-like ``update`` that moves
  a few per cent of the pairs by one level, and the write of a training step: ``program_cells`` of
  70 000 weights (sorted indices) each moved one level: cells written per second of wall time, and
  the milliseconds of that step write.
"""

from __future__ import annotations

from benchmarks import common  # noqa: F401  (sets the BLAS threads first)

import time  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.common import interleaved, summary, write_result  # noqa: E402
from device_models.crossbar import CrossbarNetwork  # noqa: E402
from device_models.presets import DEFAULT_V1  # noqa: E402

N_IN, N_OUT, BATCH = 784, 512, 128
#: weights a training step's write moves by one level (DESIGN.md §7's EP epoch: ≈ 70 000 of W0)
STEP_CELLS = 70_000


def run(rounds: int = 30) -> dict:
    rng = np.random.default_rng(0)
    net = CrossbarNetwork([N_IN, N_OUT], DEFAULT_V1, seed=2)
    w_max = net.w_max[0]
    net.program({"W0": rng.uniform(-w_max, w_max, (N_OUT, N_IN)), "b0": rng.uniform(-w_max, w_max, N_OUT)})
    x = rng.uniform(0, 1, (BATCH, N_IN)).astype(np.float32)
    w = net.read_weights()[0]["W0"].astype(np.float32)
    fwd = interleaved({"crossbar_forward": lambda: net.forward(x), "bare_matmul": lambda: x @ w.T},
                      rounds=rounds, warmup=3)
    forward = {name: summary(s) for name, s in fwd.items()}
    ratio = forward["crossbar_forward"]["median_s"] / forward["bare_matmul"]["median_s"]

    pairs = N_OUT * (N_IN + 1)
    targets = [rng.uniform(-w_max, w_max, (N_OUT, N_IN)) for _ in range(4)]
    step = w_max / (DEFAULT_V1.levels - 1)
    sparse = [np.where(rng.random((N_OUT, N_IN)) < 0.05, step, 0.0) * rng.choice([-1, 1], (N_OUT, N_IN))
              for _ in range(4)]
    reports: dict[str, list[dict]] = {"program_all": [], "update_5pct": [], "step_cells_70k": []}
    k = iter(range(10**9))

    def program_all() -> None:
        reports["program_all"].append(net.program({"W0": targets[next(k) % 4]})[1])

    def update_sparse() -> None:
        reports["update_5pct"].append(net.update({"W0": sparse[next(k) % 4]})[1])

    step_sets = [np.sort(rng.choice(N_OUT * N_IN, STEP_CELLS, replace=False)) for _ in range(4)]
    step_times: list[float] = []

    def step_cells() -> None:  # a training step's write: 70 000 weights one level up or down
        index = step_sets[next(k) % 4]
        now = net.targets()["W0"].reshape(-1)[index]
        moved = now + step * np.where(np.abs(now + step) <= w_max, 1.0, -1.0)
        t0 = time.perf_counter()  # the write alone, not the preparation of its targets
        reports["step_cells_70k"].append(net.program_cells({"W0": (index, moved)})[1])
        step_times.append(time.perf_counter() - t0)

    wv = interleaved({"program_all": program_all, "update_5pct": update_sparse, "step_cells_70k": step_cells},
                     rounds=max(rounds // 3, 4), warmup=1)
    wv["step_cells_70k"] = step_times[-len(wv["step_cells_70k"]):]
    write: dict[str, dict] = {}
    for name, samples in wv.items():
        rep = reports[name][-len(samples):]
        cells = float(np.mean([r["pairs_written"] for r in rep])) * 2  # two cells per pair
        write[name] = {**summary(samples), "cells_per_write": cells,
                       "cells_per_s": cells / summary(samples)["median_s"],
                       "pulses_per_write": float(np.mean([r["pulses"] for r in rep])),
                       "device_time_s_per_write": float(np.mean([r["device_time_s"] for r in rep])),
                       "energy_j_per_write": float(np.mean([r["energy_j"] for r in rep])),
                       "failures_per_write": float(np.mean([r["failures"] for r in rep]))}
    return {"what": "crossbar forward (784x512, batch 128, default-v1) vs bare float32 matmul; write-and-verify "
                    "throughput", "pairs": pairs, "forward": forward, "ratio_forward_over_matmul": ratio,
            "budget_ratio": 3.0, "write_verify": write}


def main() -> None:
    result = run()
    path = write_result("crossbar_physics", result)
    wv = result["write_verify"]
    print(f"crossbar forward {1e3 * result['forward']['crossbar_forward']['median_s']:.2f} ms vs bare matmul "
          f"{1e3 * result['forward']['bare_matmul']['median_s']:.2f} ms: {result['ratio_forward_over_matmul']:.2f}x "
          f"(budget 3x); write-and-verify: program all {wv['program_all']['cells_per_s']:.3g} cells/s, "
          f"sparse update {wv['update_5pct']['cells_per_s']:.3g} cells/s, a step's 70k one-level cells "
          f"{1e3 * wv['step_cells_70k']['median_s']:.2f} ms  -> {path}")


if __name__ == "__main__":
    main()
