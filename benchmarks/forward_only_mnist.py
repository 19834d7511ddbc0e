"""FF and SCFF on MNIST over HTTP (``make bench-full``): accuracy and wall time beside the targets.

Runs ``hil-train ff`` and ``hil-train scff`` on MNIST as a user would (each with its own
``hil-server`` subprocess on a free loopback port, a default-v1 device shaped for the network),
and records the test accuracy — for SCFF the linear probe beside the same probe on the random
device — with the network, epochs and wall time, beside the targets of issue 7: FF ≥ 97.0 %,
SCFF against the 98.7 % of Chen et al. (Nat. Commun. 2025).

The network and length are options, so that a run fits the machine it is given:
``python -m benchmarks.forward_only_mnist --ff-hidden 1000,1000 --ff-epochs 20 …``; the result
file says what was used.
"""

from __future__ import annotations

from benchmarks import common  # noqa: F401  (one BLAS thread, before NumPy loads)

import argparse  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks.common import write_result  # noqa: E402
from trainer_client.forward_runs import default_args, run_protocol  # noqa: E402

TARGETS = {"ff": 0.97, "scff": 0.987}
KEEP = ("protocol", "dataset", "preset", "sizes", "epochs", "train_samples", "test_accuracy", "layer_accuracy",
        "probe_accuracy", "random_probe_accuracy", "probe_gain", "wall_time_s", "device_time_s",
        "instrument_time_s", "energy_j", "device_calls", "seed", "hyperparameters")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.forward_only_mnist")
    p.add_argument("--only", choices=["ff", "scff"], help="run one protocol only")
    p.add_argument("--ff-hidden", default="500,500")
    p.add_argument("--ff-epochs", type=int, default=10)
    p.add_argument("--scff-hidden", default="1000")
    p.add_argument("--scff-epochs", type=int, default=5)
    p.add_argument("--train-samples", type=int, default=None, help="first N training images only")
    p.add_argument("--preset", default="default-v1")
    return p.parse_args(argv)


def run_one(protocol: str, hidden: str, epochs: int, opts: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        args = default_args(protocol, dataset="mnist", hidden=[int(v) for v in hidden.split(",")], epochs=epochs,
                            out=Path(tmp), preset=opts.preset, train_samples=opts.train_samples, no_progress=True,
                            eval_every=0)
        report = run_protocol(args, protocol)
    r = {k: report.get(k) for k in KEEP}
    r["target"] = TARGETS[protocol]
    r["met"] = r["test_accuracy"] >= TARGETS[protocol]
    return r


def main(argv: list[str] | None = None) -> None:
    opts = parse(argv)
    runs = {}
    plan = {"ff": (opts.ff_hidden, opts.ff_epochs), "scff": (opts.scff_hidden, opts.scff_epochs)}
    for protocol, (hidden, epochs) in plan.items():
        if opts.only and protocol != opts.only:
            continue
        r = runs[protocol] = run_one(protocol, hidden, epochs, opts)
        what = f"{protocol} MNIST {r['sizes']}, {epochs} epochs: test accuracy {100 * r['test_accuracy']:.2f} %"
        if protocol == "scff":
            what += f" (random device {100 * r['random_probe_accuracy']:.2f} %)"
        print(f"{what}, target {100 * r['target']:.1f} %, wall time {r['wall_time_s']:.0f} s")
    path = write_result("forward_only_mnist", {"what": "hil-train ff / scff on MNIST over HTTP", "runs": runs})
    print(f"  -> {path}")


if __name__ == "__main__":
    main()
