"""``hil-train ff`` and ``hil-train scff``: one run from options to ``report.json`` and ``curves.png``.

Without ``--url`` a run starts its own ``hil-server`` on a free loopback port with a lab of
one device shaped for the network (``ff-<dataset>`` with layers ``[features + classes,
*hidden]``, ``scff-<dataset>`` with ``[features, *hidden]``) under the chosen preset, seed and
``--set`` overrides; the lab file is written into the output folder. With ``--url`` the user
names a device of that server (``--device``) whose layers fit the network.

``--software`` trains the software reference instead: the same network (sizes, weight range and
activation read from the same device's description), in exact float64 arithmetic, no device.

:data:`SWEEP_RUNNERS` is the sweep contract: ``run(args, overrides, seed) -> dict`` with at least
``test_accuracy`` (SCFF: the probe's, with ``random_probe_accuracy`` beside it).
"""

from __future__ import annotations

import argparse
import contextlib
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from trainer_client.cli_common import lab_text, session_client
from trainer_client.client import Totals
from trainer_client.datasets import Dataset, load
from trainer_client.forward_plots import plot_forward_only
from trainer_client.forward_training import train_layerwise
from trainer_client.local_server import LocalServer
from trainer_client.probe import probe_accuracy
from trainer_client.protocols.ff import FFTrainer
from trainer_client.protocols.forward_only import ForwardOnlyConfig
from trainer_client.protocols.goodness import STNOActivation
from trainer_client.protocols.layers import DeviceLayers, Layers, SoftwareLayers
from trainer_client.protocols.scff import SCFFTrainer, mean_input
from trainer_client.provenance import provenance
from trainer_client.report import write_report

#: Defaults per protocol, chosen on digits (FF with the software reference, see docs/cli.md; SCFF on
#: the default-v1 device over many seeds, see docs/forward_only.md).
DEFAULTS: dict[str, dict[str, Any]] = {
    "ff": {"hidden": [256, 256], "epochs": 30, "batch_size": 64, "lr": 0.005, "threshold": 0.2, "sharpness": 20.0},
    "scff": {"hidden": [64], "epochs": 30, "batch_size": 32, "lr": 0.003, "threshold": 0.2, "sharpness": 50.0,
             "centre": True},
}


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``--set name=value`` items as a dict of device settings (numbers, true/false)."""
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set expects name=value, got {item!r}")
        if text.lower() in ("true", "false"):
            out[name] = text.lower() == "true"
            continue
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--set {name}: expected a number or true/false, got {text!r}") from None
        out[name] = int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value
    return out


def network_sizes(args: argparse.Namespace, protocol: str, data: Dataset) -> list[int]:
    n_in = data.x_train.shape[1] + (data.n_classes * args.label_repeat if protocol == "ff" else 0)
    return [n_in, *args.hidden]


@dataclass
class Session:
    layers: Layers
    info: dict[str, Any]
    totals: Totals
    url: str
    health: dict[str, Any]
    device_id: str


@contextlib.contextmanager
def session(args: argparse.Namespace, protocol: str, sizes: list[int], overrides: Mapping[str, Any],
            out_dir: Path) -> Iterator[Session]:
    """A server (given or embedded), the device's description, and the layers to train on."""
    device_id = args.device or f"{protocol}-{args.dataset}"
    with contextlib.ExitStack() as stack:
        if args.url:
            if overrides:
                raise ValueError("--set changes the embedded server's device; a running server (--url) has its own lab")
            url = args.url
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            lab = out_dir / "lab.toml"
            lab.write_text(lab_text([{"id": device_id, "sizes": sizes, "preset": args.preset, "seed": args.device_seed,
                                      "overrides": dict(overrides)}]))
            url = stack.enter_context(LocalServer(lab=lab, log_path=out_dir / "server.log"))  # says why if it fails
            if not args.quiet:
                print(f"started a device server on {url} (lab: {lab}, log: {out_dir / 'server.log'})")
        run_id = f"{out_dir.name}-{uuid.uuid4().hex[:8]}"  # prefixes every request id: the audit finds the run
        client = stack.enter_context(session_client(args, url, run_id))
        health = client.health()
        info = client.describe(device_id)
        if list(info["topology"]["sizes"]) != list(sizes):
            raise ValueError(f"device {device_id!r} has layers {info['topology']['sizes']}; this {protocol} network "
                             f"on {args.dataset} needs {sizes}")
        if args.software:
            layers: Layers = SoftwareLayers(sizes, info["topology"]["w_max"], STNOActivation.from_describe(info))
        else:
            lease = stack.enter_context(client.lease(device_id, holder=f"hil-train {protocol}"))
            layers = DeviceLayers(lease, info)
        yield Session(layers, info, client.totals, url, health, device_id)


def _config(args: argparse.Namespace) -> ForwardOnlyConfig:
    return ForwardOnlyConfig(threshold=args.threshold, sharpness=args.sharpness, lr=args.lr,
                             batch_size=args.batch_size, seed=args.seed)


def _data(args: argparse.Namespace) -> Dataset:
    data = load(args.dataset, args.data_dir, seed=0)
    if args.train_samples:
        data.x_train, data.y_train = data.x_train[: args.train_samples], data.y_train[: args.train_samples]
    return data


def run_protocol(args: argparse.Namespace, protocol: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train ``protocol`` ("ff" or "scff") as the options say; write and return the report."""
    overrides = dict(overrides or {})
    out_dir = Path(args.out) if args.out else Path("runs") / datetime.now().strftime(f"%Y%m%d-%H%M%S-{protocol}")
    data = _data(args)
    sizes = network_sizes(args, protocol, data)
    config = _config(args)
    log = print if not args.quiet else (lambda _line: None)
    t0 = time.perf_counter()
    with session(args, protocol, sizes, overrides, out_dir) as s:
        backend = "software" if args.software else "device"
        log(f"training {protocol.upper()} on {s.device_id} ({s.info['preset']}, {backend}), layers {sizes}, "
            f"{len(data.x_train)} {data.name} samples, testing on {len(data.x_test)}")
        extra: dict[str, Any] = {}
        if protocol == "ff":
            trainer: FFTrainer | SCFFTrainer = FFTrainer(s.layers, config, data.n_classes, args.label_scale,
                                                           args.label_repeat, args.negatives)

            def evaluate(epoch: int) -> dict:
                due = args.eval_every > 0 and epoch % args.eval_every == 0
                if not due and epoch != args.epochs:
                    return {}
                r = trainer.evaluate(data.x_test, data.y_test)
                return {"test_accuracy": r["accuracy"], "layer_accuracy": r["layer_accuracy"]}

            history = train_layerwise(trainer, data.x_train, data.y_train, args.epochs, evaluate, s.totals,
                                      progress=not args.no_progress, log=log)
        else:
            offset = mean_input(data.x_train) if args.centre else 0.0
            trainer = SCFFTrainer(s.layers, config, input_offset=offset)
            if args.centre:
                log(f"inputs centred: the training set's mean input value {offset:.4f} is subtracted from every "
                    f"input (--no-centre: inputs as given)")

            def probe(weights: dict | None = None) -> float:
                f_train = trainer.features(data.x_train, weights)
                f_test = trainer.features(data.x_test, weights)
                return probe_accuracy(f_train, data.y_train, f_test, data.y_test)

            extra["random_probe_accuracy"] = probe(trainer.initial_weights)
            where = "the same network in software" if args.software else "the same device"
            log(f"linear probe on {where} with its random initial weights: "
                f"{100 * extra['random_probe_accuracy']:.2f} %")

            def evaluate(epoch: int) -> dict:
                due = args.eval_every > 0 and epoch % args.eval_every == 0
                return {"test_accuracy": probe()} if due or epoch == args.epochs else {}

            history = train_layerwise(trainer, data.x_train, None, args.epochs, evaluate, s.totals,
                                      progress=not args.no_progress, log=log)
            extra["probe_accuracy"] = history[-1].test_accuracy
            extra["probe_gain"] = extra["probe_accuracy"] - extra["random_probe_accuracy"]
        wall = time.perf_counter() - t0
        totals = s.totals
        last = history[-1]
        report = {
            "protocol": protocol,
            "dataset": data.name,
            "backend": backend,
            "device_id": s.device_id,
            "preset": s.info["preset"],
            "overrides": overrides,
            "sizes": sizes,
            "epochs": args.epochs,
            "test_accuracy": last.test_accuracy,
            "layer_accuracy": last.layer_accuracy,
            **extra,
            "train_samples": len(data.x_train),
            **totals.as_dict(),
            "wall_time_s": wall,
            "seed": args.seed,
            "device_seed": s.info.get("seed"),
            "hyperparameters": {"threshold": args.threshold, "sharpness": args.sharpness, "lr": args.lr,
                                "batch_size": args.batch_size, "optimizer": "adam", "encoding": args.encoding,
                                **({"label_scale": args.label_scale, "label_repeat": args.label_repeat,
                                    "negatives": args.negatives}
                                   if protocol == "ff" else {}),
                                **({"centre": args.centre, "input_offset": offset,
                                    "probe": "StandardScaler + LogisticRegression(max_iter=1000)"}
                                   if protocol == "scff" else {})},
            "device": {k: s.info.get(k) for k in ("kind", "topology", "model_version", "calibration_id", "driver")},
            "server_url": s.url,
            "history": [r.as_dict() for r in history],
            "provenance": provenance(s.health, data.sha256),
        }
    write_report(out_dir, report)
    name = "FF" if protocol == "ff" else "SCFF"
    title = f"{name} on {data.name}, {s.device_id} ({s.info['preset']}{', software' if args.software else ''})"
    plot_forward_only(history, out_dir / "curves.png", title, report.get("random_probe_accuracy"))
    summary = f"test accuracy {100 * last.test_accuracy:.2f} %"
    if protocol == "ff":
        summary += " (layers: " + ", ".join(f"{100 * a:.2f} %" for a in last.layer_accuracy) + ")"
    else:
        baseline = "network" if args.software else "device"
        summary = (f"linear probe {100 * extra['probe_accuracy']:.2f} % (random {baseline} "
                   f"{100 * extra['random_probe_accuracy']:.2f} %, gain {100 * extra['probe_gain']:+.2f} points)")
    log(f"{summary}, wall time {wall:.1f} s, device time {1e3 * totals.device_time_s:.2f} ms, "
        f"energy {1e6 * totals.energy_j:.2f} µJ, {totals.device_calls} device calls")
    log(f"wrote {out_dir / 'report.json'} and {out_dir / 'curves.png'}")
    return report


def _sweep_run(protocol: str, args: argparse.Namespace, overrides: dict[str, float], seed: int) -> dict:
    """One point of a sweep: the run with device settings ``overrides`` and ``seed`` (training and device).

    ``args`` may be another command's namespace (the sweep's): options of ``hil-train <protocol>``
    it does not carry keep their defaults. The run is written to ``args.out`` when given.
    """
    a = default_args(protocol)
    for name, value in vars(args).items():
        if hasattr(a, name) and name != "command":
            setattr(a, name, value)
    a.seed = a.device_seed = int(seed)
    a.url = None  # overrides are applied by building the device: always an embedded server
    if not getattr(args, "out", None):  # the caller (the sweep) names each point's folder
        tag = "-".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "preset"
        a.out = Path("runs") / "sweep" / f"{protocol}-{tag}-seed{seed}"
    return run_protocol(a, protocol, overrides)


def run_ff(args: argparse.Namespace, overrides: dict[str, float], seed: int) -> dict:
    return _sweep_run("ff", args, overrides, seed)


def run_scff(args: argparse.Namespace, overrides: dict[str, float], seed: int) -> dict:
    return _sweep_run("scff", args, overrides, seed)


#: The sweep contract (issue 6's ``hil-train sweep <protocol>``): ``run(args, overrides, seed) -> dict``.
SWEEP_RUNNERS = {"ff": run_ff, "scff": run_scff}


def default_args(protocol: str, **changes: Any) -> argparse.Namespace:
    """The options of ``hil-train <protocol>`` with their defaults, changed by ``changes`` (tests, benchmarks)."""
    from trainer_client.cli import build_parser

    args = build_parser().parse_args([protocol])
    for name, value in changes.items():
        if not hasattr(args, name):
            raise AttributeError(f"hil-train {protocol} has no option {name!r}")
        setattr(args, name, value)
    return args
