"""STNO array speed (DESIGN.md §7): batch 128 × 512 oscillators × 1000 steps against bare complex updates.

Contenders, interleaved round by round, one BLAS thread, complex64 (float32) everywhere:

- ``model``: :meth:`device_models.stno_array.StnoArray.drive` of the ``uniform-mgo`` array in
  process: 128 input sequences of 1000 steps over 8 input lines, the input coupling applied at
  every step, thermal floor, Euler–Maruyama with the nonlinear frequency shift, the noise
  strength following the drive, Joule energy, power of every oscillator recorded every 10 steps
  (with read noise);
- ``bare``: the same number of bare vectorised complex Euler–Maruyama updates written here,
  ``c ← c·k + s·(ξ₁ + iξ₂)`` with a constant complex ``k`` and the same Gaussian draws (the
  floor any SDE integrator of this size pays: the noise must be drawn);
- ``bare_noise_free``: ``c ← c·k`` alone, for scale (not the budget's reference).
- ``model_recurrent``: the model with a dense 512 × 512 recurrent coupling (a matrix product per
  step), for scale.

Also the model's peak memory (tracemalloc, one run) beside the size of its input and answer.
"""

from __future__ import annotations

from benchmarks import common  # noqa: F401  (sets the BLAS threads first)

import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.common import interleaved, summary, write_result  # noqa: E402
from device_models.presets.stno import UNIFORM_MGO  # noqa: E402
from device_models.stno_array import StnoArray  # noqa: E402

BATCH, OSCILLATORS, STEPS, INPUTS = 128, 512, 1000, 8
BUDGET = 3.0


def main(rounds: int = 5) -> dict:
    rng = np.random.default_rng(0)
    chip = StnoArray(OSCILLATORS, INPUTS, UNIFORM_MGO, seed=1)
    chip.weights["W_in"] = rng.uniform(0, 0.5, (OSCILLATORS, INPUTS))
    chip.weights["b"] = np.full(OSCILLATORS, 1.5)
    recurrent = StnoArray(OSCILLATORS, INPUTS, UNIFORM_MGO, seed=1)
    recurrent.weights = {**chip.weights, "W_rec": rng.normal(0, 0.05, (OSCILLATORS, OSCILLATORS))}
    u = rng.uniform(0, 1, (BATCH, STEPS, INPUTS)).astype(np.float32)
    dt = 1e-11
    c0 = (0.03 * (rng.standard_normal((BATCH, OSCILLATORS)) + 1j * rng.standard_normal((BATCH, OSCILLATORS))))
    c0 = c0.astype(np.complex64)
    k = np.complex64(1 - 1e-3 - 1e-2j)
    s = np.float32(1e-3)
    noise_rng = np.random.default_rng(1)

    def bare() -> None:
        c = c0.copy()
        for _ in range(STEPS):
            c *= k
            xi = noise_rng.standard_normal((BATCH, OSCILLATORS, 2), dtype=np.float32).view(np.complex64)[..., 0]
            xi *= s
            c += xi

    def bare_noise_free() -> None:
        c = c0.copy()
        for _ in range(STEPS):
            c *= k

    def model() -> None:
        chip.drive(u, dt, every=10)

    def model_recurrent() -> None:
        recurrent.drive(u, dt, every=10)

    samples = interleaved({"model": model, "bare": bare, "bare_noise_free": bare_noise_free,
                           "model_recurrent": model_recurrent}, rounds=rounds, skip={"model_recurrent": 2})
    tracemalloc.start()
    traces, _ = chip.drive(u, dt, every=10)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    med = {name: summary(v)["median_s"] for name, v in samples.items()}
    ratio = med["model"] / med["bare"]
    result = {
        "shape": {"batch": BATCH, "oscillators": OSCILLATORS, "steps": STEPS, "inputs": INPUTS, "dt_s": dt},
        "contenders": {name: summary(v) for name, v in samples.items()},
        "ratio_model_over_bare": ratio,
        "ratio_model_over_bare_noise_free": med["model"] / med["bare_noise_free"],
        "ratio_model_recurrent_over_bare": med["model_recurrent"] / med["bare"],
        "budget": BUDGET,
        "within_budget": ratio <= BUDGET,
        "oscillator_steps_per_s_model": BATCH * OSCILLATORS * STEPS / med["model"],
        "peak_memory_bytes_model": peak,
        "input_bytes": u.nbytes,
        "answer_bytes": int(sum(v.nbytes for v in traces.values())),
    }
    path = write_result("stno_array", result)
    print(f"   model {med['model']:.3f} s, bare {med['bare']:.3f} s: ratio {ratio:.2f} (budget {BUDGET}); "
          f"noise-free bare {med['bare_noise_free']:.3f} s; recurrent {med['model_recurrent']:.3f} s; "
          f"peak memory {peak / 2**20:.1f} MiB -> {path}")
    return result


if __name__ == "__main__":
    main()
