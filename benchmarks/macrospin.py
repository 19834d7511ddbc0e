"""Macrospin LLG step rate: junction-steps per second at 1, 64 and 1024 junctions (stochastic Heun).

The reference model is slow by design (DESIGN.md §4: cross-checks, not training); this records
how slow, and how much vectorising over junctions buys: one Heun step with the thermal field,
Slonczewski torque on (``a = 0.1``, polarizer along +z), Δ = 40, α = 0.01, ``ds = 0.01``.
"""

from __future__ import annotations

from benchmarks import common  # noqa: F401  (sets the BLAS threads first)

import numpy as np  # noqa: E402

from benchmarks.common import interleaved, summary, write_result  # noqa: E402
from device_models import macrospin as ms  # noqa: E402

SIZES = (1, 64, 1024)
STEPS = {1: 2000, 64: 2000, 1024: 500}


def main(rounds: int = 5) -> dict:
    rng = np.random.default_rng(0)
    pol = np.array([0.0, 0.0, 1.0]).reshape(3, 1)
    starts = {n: ms.equilibrium_sample(n, 40.0, rng) for n in SIZES}

    def runner(n: int):
        def run() -> None:
            ms.simulate(starts[n], STEPS[n], 0.01, rng, alpha=0.01, delta=40.0, a=0.1, p=pol,
                        record_every=STEPS[n])
        return run

    samples = interleaved({f"n{n}": runner(n) for n in SIZES}, rounds=rounds)
    rates = {str(n): n * STEPS[n] / summary(samples[f"n{n}"])["median_s"] for n in SIZES}
    result = {"junction_steps_per_s": rates, "steps": {str(n): STEPS[n] for n in SIZES},
              "contenders": {k: summary(v) for k, v in samples.items()}}
    path = write_result("macrospin", result)
    print("   junction-steps/s: " + ", ".join(f"{n}: {r:.3g}" for n, r in rates.items()) + f" -> {path}")
    return result


if __name__ == "__main__":
    main()
