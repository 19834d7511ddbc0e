"""``hil-server``: serve a lab over HTTP."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from device_server.drivers.registry import DriverNotFound, load_driver, registered
from device_server.lab import LabError, load_lab
from device_server.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hil-server",
        description="Serve spintronic devices (emulated or real) over HTTP. "
        "Without --lab the built-in default lab is served.",
    )
    p.add_argument("--lab", type=Path, help="lab config file (TOML)")
    p.add_argument("--host", default=None, help="interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default 8000)")
    p.add_argument("--latency", default=None,
                   help="'virtual' (default: answer at once), 'real' (pace on instrument time) or a scale factor")
    p.add_argument("--max-body-bytes", type=int, default=None, help="largest request body accepted [bytes]")
    p.add_argument("--lease-ttl", type=float, default=None, help="default lease time to live [s]")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--check", action="store_true", help="load the lab, print its devices and exit")
    p.add_argument("--list-drivers", action="store_true",
                   help="print the registered driver plugins (entry-point group spinhil.drivers) and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_drivers:
        return list_drivers()
    fields = {"lab": args.lab, "host": args.host, "port": args.port, "latency": args.latency,
              "max_body_bytes": args.max_body_bytes, "lease_ttl_s": args.lease_ttl}
    try:
        settings = Settings(**{k: v for k, v in fields.items() if v is not None})
        lab = load_lab(settings.lab)
    except (LabError, ValueError) as exc:
        print(f"hil-server: {exc}", file=sys.stderr)
        return 2
    if args.check:
        for device_id, d in lab.devices.items():
            print(f"{device_id}\t{d.kind}\t{d.describe().get('preset', '')}")
        return 0
    import uvicorn

    from device_server.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings, lab)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level, access_log=False)
    return 0


def list_drivers() -> int:
    """One line per registered driver: name, kind, capabilities, where it comes from."""
    for name, ep in sorted(registered().items()):
        try:
            cls = load_driver(name)
        except DriverNotFound as exc:
            print(f"{name}\t(broken: {exc})")
            continue
        dist = ep.dist.name if ep.dist is not None else "?"
        print(f"{name}\tkind={cls.kind}\tcapabilities={','.join(sorted(cls.capabilities))}\tfrom {dist} ({ep.value})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
