"""``hil-train characterize``: measure a device through its own operations over HTTP, plot to PNG.

Characterisation is how a user checks an emulated (or real) device against its datasheet and the
physics of DESIGN.md §4 before training on it: the curves come from HTTP calls like any training
run, so a real driver behind the same server is characterised the same way.

Each device kind registers one *characteriser* here (:func:`register`): a function that gets a
leased device and an output folder, makes its measurements, writes its PNGs and returns a
JSON-able summary. The command looks up the device's ``kind`` (``GET /v1/devices/{id}``), leases
it, runs the characteriser and writes ``characterization.json`` beside the plots.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from trainer_client.client import DeviceClient, Lease
from trainer_client.cli_common import show_queue
from trainer_client.local_server import LocalServer


@dataclass
class Bench:
    """What a characteriser gets: the leased device, its description, where to write, the seed."""

    lease: Lease
    info: dict[str, Any]
    out_dir: Path
    seed: int
    quick: bool


#: A characteriser: measures the device on the bench, writes PNGs into ``bench.out_dir`` and
#: returns a JSON-able summary (figures measured, file names written).
Characteriser = Callable[[Bench], dict[str, Any]]

#: Device kind (as ``GET /v1/devices`` reports it) → its characteriser.
CHARACTERISERS: dict[str, Characteriser] = {}


def register(kind: str, characteriser: Characteriser) -> None:
    """Make ``hil-train characterize`` able to measure devices of ``kind``."""
    CHARACTERISERS[kind] = characteriser


def add_parser(sub: Any) -> None:
    p = sub.add_parser("characterize", help="measure a device over HTTP and plot its characteristics (PNG)",
                       description="Measure a device through its operations over HTTP (what is measured depends "
                       "on its kind) and write PNG plots and characterization.json.")
    p.add_argument("--device", required=True, help="device id (see `hil-train devices`)")
    p.add_argument("--url", help="device server to use (default: start one serving the default lab on a free "
                   "loopback port)")
    p.add_argument("--api-key", help="API key of a shared lab server (default: $SPINHIL_API_KEY)")
    p.add_argument("--out", type=Path, help="output folder (default runs/<timestamp>-characterize/)")
    p.add_argument("--seed", type=int, default=0, help="seeds the random choices of the measurement")
    p.add_argument("--quick", action="store_true", help="fewer points and shorter records (tests, a first look)")


def _characterise(client: DeviceClient, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    info = client.describe(args.device)
    kind = info.get("kind")
    if kind not in CHARACTERISERS:
        known = ", ".join(sorted(CHARACTERISERS)) or "none"
        raise ValueError(f"device {args.device!r} is of kind {kind!r}, which hil-train cannot characterise "
                         f"(kinds it can: {known})")
    with client.lease(args.device, holder="hil-train characterize", wait=True, on_queue=show_queue) as lease:
        summary = CHARACTERISERS[kind](Bench(lease, info, out_dir, args.seed, args.quick))
    return {"device": args.device, "kind": kind, "seed": args.seed, "quick": args.quick, **summary}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """``hil-train characterize``: the summary also written to ``<out>/characterization.json``."""
    out_dir = args.out or Path("runs") / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-characterize"
    out_dir.mkdir(parents=True, exist_ok=True)
    run_id = f"{out_dir.name}-{uuid.uuid4().hex[:8]}"
    if args.url:
        with DeviceClient(args.url, api_key=args.api_key, run_id=run_id) as client:
            summary = _characterise(client, args, out_dir)
    else:
        with LocalServer(log_path=out_dir / "server.log") as url, DeviceClient(url, run_id=run_id) as client:
            print(f"started a device server on {url} (default lab, log: {out_dir / 'server.log'})")
            summary = _characterise(client, args, out_dir)
    (out_dir / "characterization.json").write_text(json.dumps(summary, indent=2))
    print(f"measured on {summary['device']} ({summary['kind']}):")
    for name, value in _figures(summary):
        print(f"  {name} = {value:.4g}")
    pngs = ", ".join(str(p) for p in sorted(out_dir.glob("*.png")))
    print(f"wrote {out_dir / 'characterization.json'} and {pngs}")
    return summary


def _figures(summary: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    """The scalar figures of a summary (nested keys dotted), the curves and settings left to the JSON."""
    out: list[tuple[str, float]] = []
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _figures(value, f"{name}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key != "seed":
            out.append((name, float(value)))
    return out


from trainer_client.characterize import mtj as _mtj, rf as _rf, stno as _stno  # noqa: E402  (each registers below)

register("mtj-crossbar", _mtj.characterise_mtj_crossbar)
register("rf-network", _rf.characterise_rf_network)
register("stno-array", _stno.characterise_stno)
