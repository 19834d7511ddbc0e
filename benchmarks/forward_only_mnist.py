"""FF and SCFF on MNIST over HTTP (``make bench-full``): accuracy and wall time beside the targets.

Runs ``hil-train ff`` and ``hil-train scff`` on MNIST as a user would (each with its own
``hil-server`` subprocess on a free loopback port, a default-v1 device shaped for the network),
and records the test accuracy — for SCFF the linear probe beside the same probe on the random
device — with the network, epochs and wall time, beside the targets of issue 7: FF ≥ 97.0 %,
SCFF against the 98.7 % of Chen et al. (Nat. Commun. 2025).

Each protocol runs on the device and as the software reference (the same network in float64,
no device). The options of each run can be replaced, so that a run fits the machine it is
given: ``python -m benchmarks.forward_only_mnist --ff "--hidden 2000,2000 --epochs 30 …"``;
the result file says what was used (it is rewritten after each run).
"""

from __future__ import annotations

from benchmarks import common  # noqa: F401  (one BLAS thread, before NumPy loads)

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import tempfile  # noqa: E402

from benchmarks.common import RESULTS, write_result  # noqa: E402
from trainer_client.cli import build_parser  # noqa: E402
from trainer_client.forward_runs import run_protocol  # noqa: E402

TARGETS = {"ff": 0.97, "scff": 0.987}
#: What ``make bench-full`` runs: ``hil-train <protocol>`` options (chosen with the software reference
#: on MNIST; see the note in docs/cli.md). ``--ff ARGS`` / ``--scff ARGS`` replace them.
RUNS = {
    "ff": "--hidden 1000 --label-repeat 10 --negatives hard --lr 0.001 --threshold 0.1 --sharpness 100 "
          "--batch-size 64 --epochs 10 --eval-every 2",
    "scff": "--hidden 2000,2000 --lr 0.001 --threshold 0.1 --sharpness 100 --batch-size 64 --epochs 2",
}
KEEP = ("protocol", "backend", "dataset", "preset", "sizes", "epochs", "train_samples", "test_accuracy",
        "layer_accuracy", "probe_accuracy", "random_probe_accuracy", "probe_gain", "wall_time_s", "device_time_s",
        "instrument_time_s", "energy_j", "device_calls", "seed", "hyperparameters")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.forward_only_mnist")
    p.add_argument("--only", choices=["ff", "scff"], help="run one protocol only")
    p.add_argument("--ff", default=RUNS["ff"], help="options of hil-train ff")
    p.add_argument("--scff", default=RUNS["scff"], help="options of hil-train scff")
    p.add_argument("--no-software", action="store_true", help="skip the software reference runs")
    p.add_argument("--no-device", action="store_true", help="skip the device runs (software references only)")
    return p.parse_args(argv)


def run_one(protocol: str, options: str, software: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        args = build_parser().parse_args([protocol, "--dataset", "mnist", "--eval-every", "0", "--no-progress",
                                          *shlex.split(options), "--out", tmp, *(["--software"] if software else [])])
        report = run_protocol(args, protocol)
    r = {k: report.get(k) for k in KEEP}
    r["options"] = options
    r["target"] = TARGETS[protocol]
    r["met"] = r["test_accuracy"] >= TARGETS[protocol]
    return r


def main(argv: list[str] | None = None) -> None:
    opts = parse(argv)
    backends = [software for software in (False, True) if not (opts.no_software if software else opts.no_device)]
    plan = [(protocol, software) for software in backends for protocol in ("ff", "scff")  # the device runs first
            if not opts.only or protocol == opts.only]
    runs: dict[str, dict] = {}
    previous = RESULTS / "forward_only_mnist.json"
    if len(plan) < 4 and previous.is_file():  # a partial run keeps the last result of the runs it skips
        runs.update(json.loads(previous.read_text()).get("runs", {}))
    for protocol, software in plan:
        name = protocol + ("-software" if software else "")
        r = runs[name] = run_one(protocol, getattr(opts, protocol), software)
        what = f"{name} MNIST {r['sizes']}, {r['epochs']} epochs: test accuracy {100 * r['test_accuracy']:.2f} %"
        if protocol == "scff":
            what += f" (random {'network' if software else 'device'} {100 * r['random_probe_accuracy']:.2f} %)"
        print(f"{what}, target {100 * r['target']:.1f} %, wall time {r['wall_time_s']:.0f} s", flush=True)
        write_result("forward_only_mnist", {"what": "hil-train ff / scff on MNIST over HTTP (default-v1) "
                                            "and the software reference", "runs": runs})
    print(f"  -> {RESULTS / 'forward_only_mnist.json'}")


if __name__ == "__main__":
    main()
