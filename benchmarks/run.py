"""``make bench``: run every benchmark, each writing ``benchmarks/results/<name>.json``."""

from __future__ import annotations

from benchmarks import common  # noqa: F401  (one BLAS thread, before NumPy loads)
from benchmarks import ep_step  # noqa: E402

BENCHMARKS = {"ep_step_mnist": ep_step.main}


def main() -> None:
    for name, fn in BENCHMARKS.items():
        print(f"== {name}")
        fn()


if __name__ == "__main__":
    main()
