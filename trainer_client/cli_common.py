"""What every ``hil-train`` training command shares: its options, its devices, its output folder.

A protocol command (``ep`` here; ``ff``, ``scff`` … alike) calls :func:`add_common_options` on its
parser, then :func:`device_session` to get a client and a device:

- with ``--url``, the devices of that server (``--device``, and its ideal twin ``<device>-ideal``
  when the lab has one);
- without it, an embedded ``hil-server`` on a free loopback port serving a lab written for the run:
  the device ``--device`` with layers ``[inputs, *--hidden, classes]`` of the data set, preset
  ``--preset``, fabrication seed ``seed`` and single settings ``overrides`` (what a sweep varies),
  and its ideal twin (every non-ideality off, same layers and seed) for the reference run.
"""

from __future__ import annotations

import argparse
import contextlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from trainer_client.client import DeviceClient
from trainer_client.datasets import DATASETS, Dataset
from trainer_client.local_server import LocalServer

#: Per data set: the device of the built-in lab and the hidden layers of an embedded one.
DATASET_DEVICES = {"digits": ("crossbar-digits", [256]), "mnist": ("crossbar-mnist", [512]),
                   "rf": ("crossbar-rf", [256])}


def _bounded(kind: type, ok, what: str):
    """An argparse type: ``kind(text)`` that must satisfy ``ok``; the message says ``what`` was expected."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    parse.__name__ = what.replace(" ", "_")  # argparse names the type in its messages
    return parse


positive_int = _bounded(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _bounded(int, lambda v: v >= 0, "a non-negative integer")
positive_float = _bounded(float, lambda v: 0 < v < float("inf"), "a positive number")
fraction = _bounded(float, lambda v: 0 < v < 1, "a number in (0, 1)")


def floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def positive_ints(text: str) -> list[int]:
    return [positive_int(v) for v in text.split(",")]


def show_queue(ticket: dict[str, Any]) -> None:
    """Tell the user where they stand while waiting in a busy device's queue (``lease(wait=True)``)."""
    print(f"{ticket['device_id']} is busy: position {ticket['position']} in its queue, "
          f"about {ticket['estimated_wait_s']:.0f} s to wait", flush=True)


def add_common_options(p: argparse.ArgumentParser, *, epochs: int | None = None,
                       batch_size: int | None = None) -> None:
    """Options of every training command. ``None`` defaults are filled per data set by the command."""
    p.add_argument("--dataset", choices=DATASETS, default="digits", help="data set (default digits)")
    p.add_argument("--device", help="device id (default crossbar-<dataset>)")
    p.add_argument("--url", help="device server to use (default: start one on a free loopback port, "
                   "serving a lab written for the run)")
    p.add_argument("--api-key", help="API key of a shared lab server (default: $SPINHIL_API_KEY)")
    p.add_argument("--preset", default="default-v1",
                   help="named non-idealities of the embedded server's device: default-v1 (default) or ideal "
                   "(the server's list; ignored with --url)")
    p.add_argument("--hidden", type=positive_ints, help="hidden layer sizes of the embedded server's device, "
                   "e.g. 512 or 256,128 (default 256 for digits and rf, 512 for mnist; ignored with --url)")
    p.add_argument("--epochs", type=positive_int, default=epochs, help="passes over the training set")
    p.add_argument("--batch-size", type=positive_int, default=batch_size, help="samples per step")
    p.add_argument("--seed", type=int, default=0, help="seeds the initial weights, the batch order, the "
                   "random draws of the protocol and (embedded server) the device's fabrication and noise")
    p.add_argument("--data-dir", type=Path, help="folder with the MNIST and RF files (default $SPINHIL_DATA_DIR)")
    p.add_argument("--out", type=Path, help="output folder (default runs/<timestamp>-<command>/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--encoding", choices=["msgpack", "json"], default="msgpack", help="body encoding")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")


def output_dir(args: argparse.Namespace, command: str) -> Path:
    """The run's folder: ``--out`` or a new ``runs/<timestamp>-<command>/``; checks ``--resume``."""
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out: the folder of the run to continue")
    out = args.out or Path("runs") / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{command}"
    if not args.resume and (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
        raise ValueError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def lab_text(devices: list[dict[str, Any]]) -> str:
    """A lab file (TOML) for ``devices``: dicts of id, sizes, preset, seed and overrides."""
    lines = ['[lab]\nname = "hil-train"\n']
    for d in devices:
        lines += ["[[devices]]", f'id = "{d["id"]}"', 'kind = "mtj-crossbar"', f'preset = "{d["preset"]}"',
                  f'seed = {int(d["seed"])}', f'topology = {{ sizes = {list(d["sizes"])} }}']
        if d.get("overrides"):
            body = ", ".join(f"{k} = {_toml_value(v)}" for k, v in d["overrides"].items())
            lines.append(f"overrides = {{ {body} }}")
        lines.append("")
    return "\n".join(lines)


@dataclass
class DeviceSession:
    """A client and the devices a run uses (``ideal_id`` None when there is no ideal twin).

    ``run_id`` prefixes every request id of the run's clients: the server's audit finds the run
    (``GET /v1/audit?request_id_prefix=<run_id>-``)."""

    client: DeviceClient
    url: str
    device_id: str
    ideal_id: str | None
    health: dict[str, Any]
    info: dict[str, Any]
    run_id: str = ""
    ideal_info: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def session_client(args: argparse.Namespace, url: str, run_id: str) -> DeviceClient:
    """A client of the run's server with the run's encoding, API key and request-id prefix."""
    return DeviceClient(url, encoding=args.encoding, api_key=args.api_key, run_id=run_id)


@contextlib.contextmanager
def device_session(args: argparse.Namespace, data: Dataset, out_dir: Path, overrides: Mapping[str, Any],
                   seed: int, want_ideal: bool) -> Iterator[DeviceSession]:
    """A client on the run's server and its device(s); an embedded server is stopped on exit."""
    device_id = args.device or DATASET_DEVICES[data.name][0]
    ideal_id = f"{device_id}-ideal"
    with contextlib.ExitStack() as stack:
        if args.url:
            if overrides:
                raise ValueError("device settings can only be changed on the embedded server: drop --url")
            url = args.url
        else:
            hidden = args.hidden or DATASET_DEVICES[data.name][1]
            sizes = [int(data.x_train.shape[1]), *hidden, int(data.n_classes)]
            devices = [{"id": device_id, "sizes": sizes, "preset": args.preset, "seed": seed,
                        "overrides": dict(overrides)}]
            if want_ideal:
                devices.append({"id": ideal_id, "sizes": sizes, "preset": "ideal", "seed": seed})
            lab = out_dir / "lab.toml"
            lab.write_text(lab_text(devices))
            url = stack.enter_context(LocalServer(lab=lab, log_path=out_dir / "server.log"))
            print(f"started a device server on {url} (lab: {lab}, log: {out_dir / 'server.log'})")
        run_id = f"{out_dir.name}-{uuid.uuid4().hex[:8]}"
        client = stack.enter_context(session_client(args, url, run_id))
        health = client.health()
        info = client.describe(device_id)
        known = {d["id"] for d in client.devices()}
        session = DeviceSession(client, url, device_id, None, health, info, run_id)
        if want_ideal:
            if ideal_id in known:
                session.ideal_id = ideal_id
                session.ideal_info = client.describe(ideal_id)
            else:
                session.notes.append(f"no ideal twin {ideal_id!r} on {url}: ideal-device reference skipped")
        yield session
