"""``hil-train sweep <protocol>``: accuracy against one device setting, over seeds — the figure a
hardware paper needs (how much each non-ideality costs).

``hil-train sweep ep --param prog_std --values 0,0.005,0.01,0.02 --seeds 3 [ep options]`` trains
the protocol once per value and seed on a device of the embedded server whose preset (``--preset``,
default ``default-v1``) has that one setting changed, and writes

- ``points/<param>=<value>/seed=<seed>/``: each run's own folder and report;
- ``sweep.json``: every point's accuracy, and per value the mean, standard deviation and
  standard error over seeds;
- ``sweep.png``: test accuracy against the setting, mean ± standard deviation over seeds.

Rerunning the same command (with ``--resume``) skips the points already finished.

Protocols plug in through :func:`register`: a name, a function adding the protocol's own options
to a parser, and ``run(args, overrides, seed) -> report`` that trains once on a device with the
settings ``overrides`` and the seed ``seed`` (fabrication, initial weights, data order) and
returns a dict holding at least ``test_accuracy``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


RunFn = Callable[[argparse.Namespace, dict[str, Any], int], dict[str, Any]]


@dataclass(frozen=True)
class SweepProtocol:
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: RunFn


#: Protocol name -> how to add its options and how to run it once.
REGISTRY: dict[str, SweepProtocol] = {}


def register(name: str, add_arguments: Callable[[argparse.ArgumentParser], None], run: RunFn) -> None:
    """Make ``hil-train sweep <name>`` available."""
    REGISTRY[name] = SweepProtocol(add_arguments, run)


def declared_settings(preset: str) -> tuple[dict[str, dict[str, Any]], bool]:
    """The device settings as a server declares them (``GET /v1/devices/{id}`` → ``settings``:
    value, unit, meaning, limits), read from an embedded server's default lab — the HTTP API is
    the contract, the client knows no physics module. Taken from a device with preset ``preset``
    when the lab has one (then the values are that preset's: the second item says so)."""
    from trainer_client.client import DeviceClient
    from trainer_client.local_server import LocalServer

    with LocalServer() as url, DeviceClient(url) as client:
        described = [client.describe(d["id"]) for d in client.devices() if d["kind"] == "mtj-crossbar"]
    same = [d for d in described if d.get("preset") == preset]
    return (same or described)[0]["settings"], bool(same)


def sweepable(settings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The settings a sweep may vary: the numeric and on/off ones (not dtype or activation)."""
    return {name: d for name, d in settings.items()
            if isinstance(d["value"], (bool, int, float))}


def parse_values(param: str, text: str, settings: dict[str, dict[str, Any]]) -> list[Any]:
    """The grid of ``param``, each value typed as the declared setting (int, bool or float) and
    within its declared range; ``ValueError`` names the problem."""
    fields = sweepable(settings)
    if param not in fields:
        raise ValueError(f"--param {param!r} is not a device setting one can sweep; known: {sorted(fields)}")
    spec = fields[param]
    default = spec["value"]
    values: list[Any] = []
    for item in (v.strip() for v in text.split(",")):
        try:
            number = float(item)
        except ValueError:
            raise ValueError(f"--values: {item!r} is not a number") from None
        if isinstance(default, bool):
            if number not in (0.0, 1.0):
                raise ValueError(f"--values: {param} is on/off, give 0 or 1, got {item!r}")
            values.append(bool(number))
            continue
        if isinstance(default, int):
            if not number.is_integer():
                raise ValueError(f"--values: {param} is an integer setting, got {item!r}")
            number = int(number)
        lo, hi = spec.get("min"), spec.get("max")
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise ValueError(f"--values: {param} = {item} is outside [{lo}, {hi}] {spec.get('unit', '')}".rstrip())
        values.append(number)
    if len(set(values)) != len(values):
        raise ValueError(f"--values: repeated value in {text!r}")
    return values


def add_sweep_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", required=True, help="the device setting to vary (a default-v1 setting, e.g. prog_std)")
    p.add_argument("--values", required=True, help="comma-separated values of the setting, e.g. 0,0.005,0.01,0.02")
    p.add_argument("--seeds", type=int, default=3, help="runs per value, seeds --seed, --seed+1, … (default 3)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``hil-train sweep <protocol> …`` for every registered protocol."""
    sweep = sub.add_parser("sweep", help="accuracy against one device setting, over seeds (error-bar figure)",
                           description="Train a protocol once per value of a device setting and per seed on an "
                           "embedded server; writes sweep.json and sweep.png.")
    protocols = sweep.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")
    for name, proto in REGISTRY.items():
        p = protocols.add_parser(name, help=f"sweep {name} (takes every option of `hil-train {name}`)")
        proto.add_arguments(p)
        add_sweep_options(p)


def _point_dir(out: Path, param: str, value: Any, seed: int) -> Path:
    return out / "points" / f"{param}={value}" / f"seed={seed}"


def run_sweep(args: argparse.Namespace) -> dict[str, Any]:
    """Run the grid of ``args.param`` × seeds for ``args.protocol``; write ``sweep.json`` and ``sweep.png``."""
    from trainer_client.cli_common import output_dir

    if args.url:
        raise ValueError("a sweep changes device settings, which only the embedded server can: drop --url")
    if args.seeds < 1:
        raise ValueError("--seeds must be at least 1")
    settings, of_preset = declared_settings(args.preset)
    values = parse_values(args.param, args.values, settings)
    proto = REGISTRY[args.protocol]
    out = args.out or output_dir(args, f"sweep-{args.protocol}")
    out.mkdir(parents=True, exist_ok=True)
    seeds = [args.seed + i for i in range(args.seeds)]
    points: list[dict[str, Any]] = []
    for value in values:
        for seed in seeds:
            point = _point_dir(out, args.param, value, seed)
            report_path = point / "report.json"
            if report_path.is_file():
                report = json.loads(report_path.read_text())
                print(f"{args.param} = {value}, seed {seed}: done before ({report_path})")
            else:
                point_args = copy.copy(args)
                point_args.out = point
                point_args.resume = True  # a point killed midway continues from its checkpoint
                point_args.references = []
                print(f"== {args.protocol}: {args.param} = {value}, seed {seed}")
                report = proto.run(point_args, {args.param: value}, seed)
            points.append({"value": value, "seed": seed, "test_accuracy": float(report["test_accuracy"]),
                           "train_accuracy": report.get("train_accuracy"), "wall_time_s": report.get("wall_time_s"),
                           "report": str(report_path)})
    summary = []
    for value in values:
        acc = np.array([p["test_accuracy"] for p in points if p["value"] == value])
        std = float(acc.std(ddof=1)) if acc.size > 1 else 0.0
        summary.append({"value": value, "mean_test_accuracy": float(acc.mean()), "std": std,
                        "sem": std / math.sqrt(acc.size), "n": int(acc.size)})
    result = {"protocol": args.protocol, "param": args.param, "values": values, "seeds": seeds,
              "preset": args.preset, "preset_value": settings[args.param]["value"] if of_preset else None,
              "unit": settings[args.param]["unit"], "dataset": args.dataset, "summary": summary, "points": points}
    (out / "sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_sweep(result, out / "sweep.png")
    print(f"{'value':>10} {'test accuracy':>22}")
    for s in summary:
        print(f"{s['value']!s:>10} {100 * s['mean_test_accuracy']:>8.2f} ± {100 * s['std']:.2f} % (n={s['n']})")
    print(f"wrote {out / 'sweep.json'} and {out / 'sweep.png'}")
    return result


def plot_sweep(result: dict[str, Any], path: Path) -> Path:
    """Test accuracy against the swept setting: mean ± standard deviation over seeds, and each run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result["summary"]
    xs = [float(s["value"]) for s in summary]
    fig, ax = plt.subplots(figsize=(6, 4.2), constrained_layout=True)
    ax.errorbar(xs, [100 * s["mean_test_accuracy"] for s in summary], yerr=[100 * s["std"] for s in summary],
                fmt="o-", capsize=4, label=f"mean ± std over {len(result['seeds'])} seed(s)")
    ax.plot([float(p["value"]) for p in result["points"]], [100 * p["test_accuracy"] for p in result["points"]],
            ".", color="gray", alpha=0.6, label="single runs")
    preset_value = result.get("preset_value")
    if preset_value is not None:
        ax.axvline(float(preset_value), color="C3", linestyle=":", label=f"{result['preset']} value ({preset_value})")
    ax.set_xlabel(f"{result['param']} [{result['unit']}]" if result.get("unit") not in (None, "", "1") else result["param"])
    ax.set_ylabel("test accuracy [%]")
    ax.set_title(f"{result['protocol']} on {result['dataset']}: {result['param']} varied from {result['preset']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
