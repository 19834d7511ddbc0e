"""Shared benchmark plumbing: one BLAS thread for every contender, interleaved rounds, JSON results.

Import this module before NumPy is loaded anywhere (``benchmarks/run.py`` does): the thread
limits are environment variables that the BLAS reads once, and the server subprocesses inherit
them. Ratios are measured side by side in one run, contenders interleaved round by round, so
drift of a noisy machine hits each of them alike.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def interleaved(contenders: dict[str, Callable[[], None]], rounds: int, warmup: int = 1,
                skip: dict[str, int] | None = None) -> dict[str, list[float]]:
    """Wall seconds of each contender, round by round (``skip[name] = k``: run it every k-th round)."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds):
        for name, fn in contenders.items():
            if skip and r % skip.get(name, 1):
                continue
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return samples


def summary(samples: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "n": len(samples), "samples_s": samples}


def machine() -> dict[str, Any]:
    import numpy as np

    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cpus": os.cpu_count(), "numpy": np.__version__}
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [{k: p.get(k) for k in ("internal_api", "num_threads", "architecture")}
                        for p in threadpool_info()]
    except ImportError:
        info["blas_threads_env"] = os.environ.get("OPENBLAS_NUM_THREADS")
    return info


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"name": name, "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), **result}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
