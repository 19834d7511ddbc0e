"""``make demo`` as a benchmark: EP on digits over HTTP, default-v1 and ideal, full length.

Runs ``hil-train demo`` (its own server subprocess on a free port) as a user would, once per
preset, and records the test accuracy and ``wall_time_s`` from each ``report.json`` beside the
acceptance targets of the first issue: at least 94 % (default-v1) and 95 % (ideal) test accuracy,
in under 180 s of wall time (installs not counted).
"""

from __future__ import annotations

from benchmarks import common  # noqa: F401  (one BLAS thread, before NumPy loads)

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks.common import write_result  # noqa: E402

TARGETS = {"default-v1": {"test_accuracy": 0.94, "wall_time_s": 180.0},
           "ideal": {"test_accuracy": 0.95, "wall_time_s": 180.0}}


def run_demo(ideal: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "trainer_client.cli", "demo", "--out", tmp, "--no-progress"]
        if ideal:
            cmd.append("--ideal")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=1800)
        report = json.loads((Path(tmp) / "report.json").read_text())
    keep = ("device_id", "preset", "epochs", "train_accuracy", "test_accuracy", "wall_time_s", "device_time_s",
            "instrument_time_s", "energy_j", "device_calls", "seed")
    return {k: report[k] for k in keep}


def main() -> None:
    runs = {}
    for ideal in (False, True):
        r = run_demo(ideal)
        target = TARGETS[r["preset"]]
        r["targets"] = target
        r["met"] = r["test_accuracy"] >= target["test_accuracy"] and r["wall_time_s"] < target["wall_time_s"]
        runs[r["preset"]] = r
        print(f"demo {r['preset']}: test accuracy {100 * r['test_accuracy']:.2f} % (target ≥ "
              f"{100 * target['test_accuracy']:.0f} %), wall time {r['wall_time_s']:.1f} s (target < "
              f"{target['wall_time_s']:.0f} s), {r['device_calls']} device calls")
    path = write_result("demo_digits", {"what": "hil-train demo (EP on digits over HTTP, 30 epochs)", "runs": runs})
    print(f"  -> {path}")


if __name__ == "__main__":
    main()
