"""``hil-train ep``: Equilibrium Propagation on a device over HTTP, beside its references.

One run trains three networks with the same hyper-parameters, seed and data order:

- ``device``: on the device (``--device``) over HTTP, one request per phase;
- ``ideal``: on its ideal twin (every non-ideality off), when the server has one;
- ``software``: the same maths in NumPy in this process (:mod:`trainer_client.protocols.ep_software`);

(``--references`` picks which references run). It writes ``report.json``, ``curves.png`` (learning
curves of the three, device time and energy per epoch), ``states.png`` (free-phase neuron-state
histograms per layer, device and ideal) and ``checkpoints/`` (one per network, after every epoch;
``--resume`` continues from them). The protocol registers itself for ``hil-train sweep ep``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from trainer_client import sweep
from trainer_client.cli_common import (
    add_common_options,
    device_session,
    floats,
    output_dir,
    positive_float,
    positive_int,
    session_client,
    show_queue,
)
from trainer_client.client import DeviceClient
from trainer_client.datasets import load
from trainer_client.optim import LR_SCHEDULES, OPTIMIZERS
from trainer_client.protocols.ep import LOSSES, NUDGING, EPConfig, EPTrainer, program_resolution
from trainer_client.protocols.ep_software import SoftwareDevice
from trainer_client.provenance import provenance
from trainer_client.report import plot_curves, plot_state_histograms, write_report
from trainer_client.training import Checkpoint, EpochRecord, train_ep

#: Hyper-parameters per data set when not given (MNIST: tuned for ≤ 10 epochs, see docs/ep.md; batches of
#: 256 reach a little more than 64 did in ten epochs, and spread each request's fixed cost over 4× the samples).
EP_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 30, "batch_size": 32, "beta": 0.5, "t1": 30, "t2": 10, "lr": [0.1, 0.05], "optimizer": "sgd",
               "lr_schedule": "constant"},
    "mnist": {"epochs": 10, "batch_size": 256, "beta": 0.5, "t1": 30, "t2": 10, "lr": [1e-3, 5e-4], "optimizer": "adam",
              "lr_schedule": "cosine"},
    "rf": {"epochs": 30, "batch_size": 32, "beta": 0.5, "t1": 30, "t2": 10, "lr": [0.1, 0.05], "optimizer": "sgd",
           "lr_schedule": "constant"},
}
REFERENCES = ("ideal", "software")
#: Test samples whose free-phase states make the histograms.
HISTOGRAM_SAMPLES = 1000


def references(text: str) -> list[str]:
    if text == "none":
        return []
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = sorted(set(names) - set(REFERENCES))
    if bad:
        raise argparse.ArgumentTypeError(f"unknown reference(s) {bad}; choose from {list(REFERENCES)} or 'none'")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``hil-train ep`` (and of ``hil-train sweep ep``)."""
    add_common_options(p)
    p.add_argument("--beta", type=positive_float, help="nudging strength β (default 0.5)")
    p.add_argument("--t1", type=positive_int, help="free-phase steps (default 30)")
    p.add_argument("--t2", type=positive_int, help="nudged-phase steps (default 10)")
    p.add_argument("--nudging", choices=NUDGING, default="symmetric")
    p.add_argument("--lr", type=floats, help="per-crossbar learning rates, e.g. 0.1,0.05 (default per data set)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="sgd or adam on the hidden weights (default per data set)")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="constant, or cosine annealing per epoch "
                   "(default per data set)")
    p.add_argument("--loss", choices=LOSSES, default="mse", help="readout: mse or ce (cross-entropy of softmax(s/τ))")
    p.add_argument("--references", type=references, default=list(REFERENCES),
                   help="reference runs beside the device: ideal,software (default), one of them, or none")


def resolve(args: argparse.Namespace, n_crossbars: int, seed: int) -> tuple[EPConfig, int]:
    """The EP hyper-parameters and epochs of a run: the options given, else the data set's defaults."""
    d = EP_DEFAULTS[args.dataset]
    lrs = list(args.lr or d["lr"])
    if args.lr is None and len(lrs) < n_crossbars:  # extra hidden layers: the last rate again
        lrs += [lrs[-1]] * (n_crossbars - len(lrs))
    if len(lrs) != n_crossbars:
        raise ValueError(f"--lr: give one learning rate per crossbar ({n_crossbars}), got {len(lrs)}")
    config = EPConfig(beta=args.beta or d["beta"], t1=args.t1 or d["t1"], t2=args.t2 or d["t2"], nudging=args.nudging,
                      lrs=lrs, batch_size=args.batch_size or d["batch_size"], seed=seed,
                      optimizer=args.optimizer or d["optimizer"], lr_schedule=args.lr_schedule or d["lr_schedule"],
                      loss=args.loss)
    return config, args.epochs or d["epochs"]


def _free_states(trainer: EPTrainer, x: np.ndarray) -> list[np.ndarray]:
    trainer.program()
    return [np.asarray(s) for s in trainer.free_phase(x)]


def _summary(history: list[EpochRecord]) -> dict[str, Any]:
    last = history[-1]
    return {"train_accuracy": last.train_accuracy, "test_accuracy": last.test_accuracy,
            "best_test_accuracy": max(r.test_accuracy for r in history),
            "wall_time_s": sum(r.wall_time_s for r in history), "history": [r.as_dict() for r in history]}


def run(args: argparse.Namespace, overrides: dict[str, Any], seed: int) -> dict[str, Any]:
    """One ``hil-train ep`` run (device, then its references); returns the report it wrote."""
    t_start = time.perf_counter()
    out = output_dir(args, "ep")
    data = load(args.dataset, args.data_dir)
    progress = not args.no_progress
    refs = list(args.references)
    ckpt = out / "checkpoints"
    with device_session(args, data, out, overrides, seed, want_ideal="ideal" in refs) as session:
        client: DeviceClient = session.client
        info = session.info
        topology = info["topology"]
        config, epochs = resolve(args, len(topology["sizes"]) - 1, seed)
        for note in session.notes:
            print(note)
        print(f"training EP on {session.device_id} ({info['kind']}, preset {info['preset']}, layers "
              f"{topology['sizes']}) with {len(data.x_train)} {data.name} samples, testing on {len(data.x_test)}")
        x_hist = data.x_test[:HISTOGRAM_SAMPLES]
        with client.lease(session.device_id, holder="hil-train ep", wait=True, on_queue=show_queue) as lease:
            trainer, history = train_ep(lease, topology, data, config, epochs, totals=client.totals,
                                        checkpoint=Checkpoint(ckpt / "device"), progress=progress,
                                        resolution=program_resolution(info))
            states = {"device": _free_states(trainer, x_hist)}
            audit = {"request_id_prefix": f"{session.run_id}-", "lease_id": lease.lease_id, "fencing": lease.fencing,
                     "key_id": lease.info.get("owner")}
        runs: dict[str, list[EpochRecord]] = {"device": history}
        if session.ideal_id is not None:
            ideal_client = session_client(args, session.url, session.run_id)
            with ideal_client, ideal_client.lease(session.ideal_id, holder="hil-train ep (ideal)", wait=True,
                                                  on_queue=show_queue) as lease:
                trainer, runs["ideal"] = train_ep(lease, session.ideal_info["topology"], data, config, epochs,
                                                  totals=ideal_client.totals, checkpoint=Checkpoint(ckpt / "ideal"),
                                                  progress=progress, label="ideal ",
                                                  resolution=program_resolution(session.ideal_info))
                states["ideal"] = _free_states(trainer, x_hist)
    if "software" in refs:
        soft = SoftwareDevice(topology["sizes"], topology["w_max"], info["settings"])
        _, runs["software"] = train_ep(soft, topology, data, config, epochs, checkpoint=Checkpoint(ckpt / "software"),
                                       progress=progress, label="software ")
    last = history[-1]
    # the device run's totals over every epoch, those before a --resume included
    totals = {key: sum(getattr(r, key) for r in history)
              for key in ("device_time_s", "instrument_time_s", "energy_j", "device_calls")}
    report = {
        "protocol": "ep",
        "dataset": data.name,
        "device_id": session.device_id,
        "preset": info["preset"],
        "overrides": dict(overrides),
        "epochs": epochs,
        "train_accuracy": last.train_accuracy,
        "test_accuracy": last.test_accuracy,
        "best_test_accuracy": max(r.test_accuracy for r in history),
        "ideal_test_accuracy": runs["ideal"][-1].test_accuracy if "ideal" in runs else None,
        "software_test_accuracy": runs["software"][-1].test_accuracy if "software" in runs else None,
        **totals,
        "wall_time_s": sum(r.wall_time_s for r in history),
        "command_wall_time_s": time.perf_counter() - t_start,
        "seed": seed,
        "hyperparameters": {"beta": config.beta, "t1": config.t1, "t2": config.t2, "nudging": config.nudging,
                            "lrs": list(config.lrs), "batch_size": config.batch_size, "optimizer": config.optimizer,
                            "lr_schedule": config.lr_schedule, "loss": config.loss, "ce_temperature": config.ce_temperature,
                            "init_scale": config.init_scale, "encoding": args.encoding},
        "device": {"kind": info["kind"], "topology": topology, "model_version": info["model_version"],
                   "calibration_id": info["calibration_id"], "driver": info["driver"],
                   "settings": {k: v["value"] for k, v in info["settings"].items()}},
        "server_url": session.url,
        # what finds the device run's calls in the server's audit (GET /v1/audit?request_id_prefix=…)
        "audit": audit,
        "history": [r.as_dict() for r in history],
        "references": {name: _summary(h) for name, h in runs.items() if name != "device"},
        "notes": session.notes,
        "provenance": provenance(session.health, data.sha256),
    }
    write_report(out, report)
    title = f"EP on {data.name}, {session.device_id} ({info['preset']})"
    plot_curves(history, out / "curves.png", title, references={k: v for k, v in runs.items() if k != "device"})
    plot_state_histograms(states, out / "states.png", title)
    refs_line = ", ".join(f"{name} {100 * h[-1].test_accuracy:.2f} %" for name, h in runs.items() if name != "device")
    print(f"test accuracy {100 * last.test_accuracy:.2f} % (best {100 * report['best_test_accuracy']:.2f} %)"
          f"{'; ' + refs_line if refs_line else ''}; wall time {report['wall_time_s']:.1f} s, device time "
          f"{1e3 * totals['device_time_s']:.2f} ms, energy {1e6 * totals['energy_j']:.2f} µJ, "
          f"{totals['device_calls']} device calls")
    print(f"wrote {out / 'report.json'}, {out / 'curves.png'} and {out / 'states.png'}")
    return report


def main(args: argparse.Namespace) -> dict[str, Any]:
    return run(args, {}, args.seed)


sweep.register("ep", add_arguments, run)
