"""``make bench``: run every benchmark, each writing ``benchmarks/results/<name>.json``."""

from __future__ import annotations

import sys

from benchmarks import common  # noqa: F401  (one BLAS thread, before NumPy loads)
from benchmarks import demo, ep_step  # noqa: E402

BENCHMARKS = {"ep_step_mnist": ep_step.main, "demo_digits": demo.main}


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks named on the command line (all when none is named)."""
    names = argv if argv is not None else sys.argv[1:]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; known: {sorted(BENCHMARKS)}")
    for name, fn in BENCHMARKS.items():
        if names and name not in names:
            continue
        print(f"== {name}")
        fn()


if __name__ == "__main__":
    main()
