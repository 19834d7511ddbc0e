"""``python -m device_server.testing``: run the conformance kit on registered drivers.

Exit status 0 when every driver checked conforms, 1 when one does not, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys

from device_server.drivers.registry import DriverNotFound, load_driver, registered
from device_server.testing.conformance import run_conformance


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device_server.testing",
                                description="Check drivers against the Driver contract through the real server.")
    p.add_argument("--driver", action="append", help="registered driver name (repeatable; default: all registered)")
    p.add_argument("--entry", help="lab entry as JSON (the driver's own keys); default: the driver's conformance_entry")
    args = p.parse_args(argv)
    names = args.driver or sorted(registered())
    status = 0
    for name in names:
        try:
            cls = load_driver(name)
        except DriverNotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            entry = json.loads(args.entry) if args.entry else cls.conformance_entry
        except json.JSONDecodeError as exc:
            print(f"error: --entry is not valid JSON: {exc}", file=sys.stderr)
            return 2
        if entry is None:
            print(f"driver {name!r}: FAIL — it declares no conformance_entry; pass one with --entry")
            status = 1
            continue
        report = run_conformance(cls, entry, name)
        print(report.summary())
        status = status or (0 if report.ok else 1)
    return status


if __name__ == "__main__":
    sys.exit(main())
