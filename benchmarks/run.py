"""``make bench`` / ``make bench-full``: run benchmarks, each writing ``benchmarks/results/<name>.json``.

``make bench`` (``python -m benchmarks.run``) runs the ones that fit in 30 minutes on the
development machine; ``make bench-full`` (``--full``) adds the long ones (sweeps of MNIST
training over each non-ideality; FF and SCFF on MNIST; SCFF's probe margin on digits over seeds).
"""

from __future__ import annotations

import sys
import time

from benchmarks import common  # noqa: F401  (one BLAS thread, before NumPy loads)
from benchmarks import (crossbar_physics, demo, ep_epoch, ep_mnist, ep_step, forward_only_mnist,  # noqa: E402
                        macrospin, nonideality_sweep, scff_digits_margin, stno_array)

BENCHMARKS = {"ep_step_mnist": ep_step.main, "ep_epoch_mnist": ep_epoch.main, "ep_mnist": ep_mnist.main,
              "demo_digits": demo.main, "stno_array": stno_array.main, "macrospin": macrospin.main,
              "crossbar_physics": crossbar_physics.main}
FULL_ONLY = {"nonideality_sweep_mnist": nonideality_sweep.main,
             "forward_only_mnist": lambda: forward_only_mnist.main([]),
             "scff_digits_margin": lambda: scff_digits_margin.main([])}


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks named on the command line (all of ``make bench`` when none is named)."""
    names = list(argv if argv is not None else sys.argv[1:])
    full = "--full" in names
    names = [n for n in names if n != "--full"]
    known = {**BENCHMARKS, **FULL_ONLY}
    unknown = sorted(set(names) - set(known))
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; known: {sorted(known)}")
    selected = names or [*BENCHMARKS, *(FULL_ONLY if full else [])]
    for name in selected:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        known[name]()
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
