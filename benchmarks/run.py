"""``make bench``: run every benchmark, each writing ``benchmarks/results/<name>.json``."""

from __future__ import annotations

import sys

from benchmarks import common  # noqa: F401  (one BLAS thread, before NumPy loads)
from benchmarks import demo, ep_step, forward_only_mnist  # noqa: E402

BENCHMARKS = {"ep_step_mnist": ep_step.main, "demo_digits": demo.main}
#: Long runs (MNIST training), only with ``--full`` (``make bench-full``).
FULL = {"forward_only_mnist": lambda: forward_only_mnist.main([])}


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks named on the command line (all when none is named; ``--full`` adds the long ones)."""
    names = list(argv if argv is not None else sys.argv[1:])
    full = "--full" in names
    names = [n for n in names if n != "--full"]
    known = {**BENCHMARKS, **FULL}
    unknown = sorted(set(names) - set(known))
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; known: {sorted(known)}")
    for name, fn in known.items():
        if (names and name not in names) or (not names and not full and name in FULL):
            continue
        print(f"== {name}")
        fn()


if __name__ == "__main__":
    main()
