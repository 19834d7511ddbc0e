"""``hil-train``: train networks on SpinHIL devices over HTTP.

Commands:

- ``hil-train demo [--url URL] [--out DIR] [--ideal]`` — EP on scikit-learn's digits on
  ``crossbar-digits``. Without ``--url`` it starts a real device server on a free loopback port.
- ``hil-train ff`` / ``hil-train scff`` — Forward-Forward (supervised) and Self-Contrastive
  Forward-Forward (unsupervised, judged by a linear probe beside the random device) from
  ``forward`` measurements only; their own server without ``--url``.
- ``hil-train ep --dataset {digits,mnist,rf} …`` — EP beside its ideal-device and software
  references, with checkpoints and ``--resume`` (:mod:`trainer_client.ep_command`).
- ``hil-train sweep ep --param P --values … --seeds N …`` — accuracy against a device setting
  (:mod:`trainer_client.sweep`).
- ``hil-train devices [--url URL]`` — the lab's devices and who holds them.
- ``hil-train download mnist --data-dir DIR`` — fetch MNIST (machines with internet only).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from trainer_client import characterize, ep_command, sweep
from trainer_client.cli_common import (
    floats,
    fraction,
    non_negative_int,
    positive_float,
    positive_int,
    positive_ints,
    show_queue,
)
from trainer_client.client import DeviceClient
from trainer_client.datasets import DatasetError, download_mnist, load
from trainer_client.errors import HILError
from trainer_client.forward_runs import DEFAULTS, SWEEP_RUNNERS, parse_overrides, run_protocol
from trainer_client.local_server import LocalServer
from trainer_client.protocols.ff import NEGATIVES
from trainer_client.protocols.ep import NUDGING, EPConfig, program_resolution
from trainer_client.provenance import provenance
from trainer_client.report import plot_curves, write_report
from trainer_client.training import train_ep

DEMO_DEFAULTS = {"epochs": 30, "batch_size": 32, "beta": 0.5, "t1": 30, "t2": 10, "lrs": [0.1, 0.05], "seed": 0}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hil-train", description="Train neural networks on SpinHIL devices over HTTP.")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="EP on digits on crossbar-digits (starts its own server without --url)",
                          description="Train Equilibrium Propagation on scikit-learn's 8x8 digits on an emulated "
                          "MTJ crossbar over HTTP; writes report.json and curves.png.")
    demo.add_argument("--url", help="device server to use (default: start one on a free loopback port)")
    demo.add_argument("--api-key", help="API key of a shared lab server (default: $SPINHIL_API_KEY)")
    demo.add_argument("--out", type=Path, help="output folder (default runs/<timestamp>/)")
    demo.add_argument("--ideal", action="store_true", help="use the ideal device (every non-ideality off)")
    demo.add_argument("--device", help="device id (default crossbar-digits, or crossbar-digits-ideal with --ideal)")
    demo.add_argument("--lab", type=Path, help="lab file for the embedded server (ignored with --url)")
    demo.add_argument("--epochs", type=positive_int, default=DEMO_DEFAULTS["epochs"])
    demo.add_argument("--batch-size", type=positive_int, default=DEMO_DEFAULTS["batch_size"])
    demo.add_argument("--beta", type=positive_float, default=DEMO_DEFAULTS["beta"], help="nudging strength β")
    demo.add_argument("--t1", type=positive_int, default=DEMO_DEFAULTS["t1"], help="free-phase steps")
    demo.add_argument("--t2", type=positive_int, default=DEMO_DEFAULTS["t2"], help="nudged-phase steps")
    demo.add_argument("--nudging", choices=NUDGING, default="symmetric")
    demo.add_argument("--lr", type=floats, default=DEMO_DEFAULTS["lrs"], help="per-layer learning rates, e.g. 0.1,0.05")
    demo.add_argument("--seed", type=int, default=DEMO_DEFAULTS["seed"])
    demo.add_argument("--encoding", choices=["msgpack", "json"], default="msgpack")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")

    ep = sub.add_parser("ep", help="Equilibrium Propagation on a device, beside ideal-device and software references",
                        description="Train Equilibrium Propagation on a device over HTTP (one request per phase), "
                        "beside the same run on its ideal twin and in software; writes report.json, curves.png, "
                        "states.png and checkpoints (--resume continues a killed run).")
    ep_command.add_arguments(ep)
    sweep.add_parser(sub)

    add_forward_only_commands(sub)
    characterize.add_parser(sub)

    devices = sub.add_parser("devices", help="list the lab's devices")
    devices.add_argument("--url", default="http://127.0.0.1:8000")
    devices.add_argument("--api-key", help="API key (default: $SPINHIL_API_KEY)")

    dl = sub.add_parser("download", help="fetch a data set (needs internet)")
    dl.add_argument("dataset", choices=["mnist"])
    dl.add_argument("--data-dir", type=Path, required=True)
    return p


# ---------------------------------------------------------------- ff / scff (forward-only protocols)
def add_forward_only_commands(sub: Any) -> None:
    """``hil-train ff`` and ``hil-train scff``: the same options, each with its own defaults."""
    about = {
        "ff": ("Forward-Forward (Hinton 2022): label in the input, wrong-label negatives, layer-local goodness",
               "Train Forward-Forward on an emulated MTJ crossbar over HTTP, one layer per forward request; "
               "reports the network's and each layer's test accuracy; writes report.json and curves.png."),
        "scff": ("Self-Contrastive Forward-Forward (no labels), judged by a linear probe beside the random device",
                 "Train SCFF (Chen et al. 2025) on an emulated MTJ crossbar over HTTP: positives (x, x), negatives "
                 "(x, x') from the batch, the device sent (x + x')/2; a LogisticRegression probe on standardised "
                 "features is reported beside the same probe on the same device with its random initial weights."),
    }
    for protocol, (short, long) in about.items():
        add_forward_only_arguments(sub.add_parser(protocol, help=short, description=long), protocol)


def add_forward_only_arguments(p: argparse.ArgumentParser, protocol: str) -> None:
    """The options of ``hil-train <protocol>`` (``ff`` or ``scff``), also taken by ``hil-train sweep <protocol>``."""
    d = DEFAULTS[protocol]
    p.set_defaults(resume=False)  # read by the sweep's output folder; a forward-only run has no checkpoints
    p.add_argument("--url", help="device server to use (default: start one on a free loopback port)")
    p.add_argument("--api-key", help="API key of a shared lab server (default: $SPINHIL_API_KEY)")
    p.add_argument("--device", help=f"device id (default {protocol}-<dataset>, the embedded server's device)")
    p.add_argument("--out", type=Path, help=f"output folder (default runs/<timestamp>-{protocol}/)")
    p.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files (default $SPINHIL_DATA_DIR)")
    p.add_argument("--train-samples", type=positive_int, help="train on the first N training samples only")
    p.add_argument("--preset", choices=["default-v1", "ideal"], default="default-v1",
                   help="non-idealities of the embedded server's device")
    p.add_argument("--set", dest="overrides", action="append", metavar="NAME=VALUE",
                   help="change one device setting of the embedded server (repeatable), e.g. --set read_std=0.02")
    p.add_argument("--device-seed", type=int, default=1, help="fabrication and noise seed of the embedded device")
    p.add_argument("--hidden", type=positive_ints, default=d["hidden"], help="hidden layer widths, e.g. 256,256")
    p.add_argument("--epochs", type=positive_int, default=d["epochs"])
    p.add_argument("--batch-size", type=positive_int, default=d["batch_size"])
    p.add_argument("--lr", type=positive_float, default=d["lr"], help="Adam step size")
    p.add_argument("--threshold", type=fraction, default=d["threshold"], help="goodness threshold θ (mean y²)")
    p.add_argument("--sharpness", type=positive_float, default=d["sharpness"], help="α in σ(α(G − θ))")
    if protocol == "ff":
        p.add_argument("--label-scale", type=positive_float, default=1.0,
                       help="drive of the label inputs (at most the device's input limit)")
        p.add_argument("--label-repeat", type=positive_int, default=1,
                       help="write the one-hot label this many times (more drive per label)")
        p.add_argument("--negatives", choices=NEGATIVES, default="random",
                       help="wrong label uniform, or drawn from the network's own goodness "
                       "(Hinton's hard negatives)")
    if protocol == "scff":
        p.add_argument("--centre", action=argparse.BooleanOptionalAction, default=d["centre"],
                       help="subtract the training set's mean input value (one number) from every input, so the "
                       "crossbar rows are driven with signed voltages (--no-centre: inputs as given)")
    p.add_argument("--eval-every", type=non_negative_int, default=1 if protocol == "ff" else 0,
                   help="test every N epochs (0: only after the last)" + ("" if protocol == "ff" else
                                                                          "; each is a probe fit"))
    p.add_argument("--software", action="store_true",
                   help="train the software reference (same network, float64, no device) instead")
    p.add_argument("--seed", type=int, default=0, help="initial weights, negatives and batch order")
    p.add_argument("--encoding", choices=["msgpack", "json"], default="msgpack")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


for _protocol in ("ff", "scff"):  # hil-train sweep ff|scff
    sweep.register(_protocol, functools.partial(add_forward_only_arguments, protocol=_protocol),
                   SWEEP_RUNNERS[_protocol])


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    device_id = args.device or ("crossbar-digits-ideal" if args.ideal else "crossbar-digits")
    out_dir = args.out or Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    config = EPConfig(beta=args.beta, t1=args.t1, t2=args.t2, nudging=args.nudging, lrs=args.lr,
                      batch_size=args.batch_size, seed=args.seed)
    data = load("digits", seed=0)
    with contextlib.ExitStack() as stack:
        if args.url:
            url = args.url
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            url = stack.enter_context(LocalServer(lab=args.lab, log_path=out_dir / "server.log"))
            print(f"started a device server on {url} (log: {out_dir / 'server.log'})")
        run_id = f"{out_dir.name}-{uuid.uuid4().hex[:8]}"  # prefixes every request id: the audit finds the run
        client = stack.enter_context(DeviceClient(url, encoding=args.encoding, api_key=args.api_key, run_id=run_id))
        health = client.health()
        info = client.describe(device_id)
        print(f"training EP on {device_id} ({info['kind']}, preset {info['preset']}, layers "
              f"{info['topology']['sizes']}) with {len(data.x_train)} digits, testing on {len(data.x_test)}")
        t0 = time.perf_counter()
        with client.lease(device_id, holder="hil-train demo", wait=True, on_queue=show_queue) as lease:
            _, history = train_ep(lease, info["topology"], data, config, args.epochs, totals=client.totals,
                                  progress=not args.no_progress, resolution=program_resolution(info))
        wall = time.perf_counter() - t0
        totals = client.totals
    last = history[-1]
    report = {
        "protocol": "ep",
        "dataset": data.name,
        "device_id": device_id,
        "preset": info["preset"],
        "epochs": args.epochs,
        "train_accuracy": last.train_accuracy,
        "test_accuracy": last.test_accuracy,
        **totals.as_dict(),
        "wall_time_s": wall,
        "seed": args.seed,
        "hyperparameters": {"beta": args.beta, "t1": args.t1, "t2": args.t2, "nudging": args.nudging,
                            "lrs": list(args.lr), "batch_size": args.batch_size, "encoding": args.encoding},
        "device": {"kind": info["kind"], "topology": info["topology"], "model_version": info["model_version"],
                   "calibration_id": info["calibration_id"], "driver": info["driver"]},
        "server_url": url,
        # what finds this run's calls in the server's audit (GET /v1/audit?request_id_prefix=…)
        "audit": {"request_id_prefix": f"{run_id}-", "lease_id": lease.lease_id, "fencing": lease.fencing,
                  "key_id": lease.info.get("owner")},
        "history": [r.as_dict() for r in history],
        "provenance": provenance(health, data.sha256),
    }
    write_report(out_dir, report)
    plot_curves(history, out_dir / "curves.png", f"EP on {data.name}, {device_id} ({info['preset']})")
    print(f"test accuracy {100 * last.test_accuracy:.2f} %, train {100 * last.train_accuracy:.2f} %, "
          f"wall time {wall:.1f} s, device time {1e3 * totals.device_time_s:.2f} ms, "
          f"energy {1e6 * totals.energy_j:.2f} µJ, {totals.device_calls} device calls")
    print(f"wrote {out_dir / 'report.json'} and {out_dir / 'curves.png'}")
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            run_demo(args)
        elif args.command == "ep":
            ep_command.main(args)
        elif args.command == "sweep":
            sweep.run_sweep(args)
        elif args.command in ("ff", "scff"):
            run_protocol(args, args.command, parse_overrides(args.overrides))
        elif args.command == "characterize":
            characterize.run(args)
        elif args.command == "devices":
            with DeviceClient(args.url, api_key=args.api_key) as client:
                for d in client.devices():
                    print(f"{d['id']:<24} {d['kind']:<14} {d['status']:<7} {d['holder'] or '':<16} "
                          f"queue {d['queue_length']}")
        elif args.command == "download":
            print(f"MNIST verified in {download_mnist(args.data_dir)}")
    except (HILError, DatasetError, ValueError) as exc:
        print(f"hil-train: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hil-train: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
