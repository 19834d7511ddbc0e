"""``hil-server``: serve a lab over HTTP; ``hil-server keys …``: manage its API keys."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from device_server.drivers.registry import DriverNotFound, load_driver, registered
from device_server.lab import LabError, load_lab
from device_server.settings import Settings
from device_server.store import StateMismatch


def _state_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    # a sub-command's options get their own names: argparse would let its defaults overwrite the main ones
    p.add_argument("--state-dir", dest=f"{prefix}state_dir", type=Path, default=None, metavar="STATE_DIR",
                   help="folder of the state database (default $XDG_STATE_HOME/spinhil, ~/.local/state/spinhil)")
    p.add_argument("--database-url", dest=f"{prefix}database_url", default=None, metavar="DATABASE_URL",
                   help="SQLAlchemy URL of the state database (overrides --state-dir)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hil-server",
        description="Serve spintronic devices (emulated or real) over HTTP. "
        "Without --lab the built-in default lab is served. 'hil-server keys …' manages API keys.",
    )
    p.add_argument("--lab", type=Path, help="lab config file (TOML)")
    p.add_argument("--host", default=None, help="interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default 8000)")
    p.add_argument("--latency", default=None,
                   help="'virtual' (default: answer at once), 'real' (pace on instrument time) or a scale factor")
    p.add_argument("--max-body-bytes", type=int, default=None, help="largest request body accepted [bytes]")
    p.add_argument("--lease-ttl", type=float, default=None, help="default lease time to live [s]")
    _state_options(p)
    p.add_argument("--open", action="store_true", default=None,
                   help="serve without API keys: every caller may do everything (a machine of one's own only)")
    p.add_argument("--ephemeral", action="store_true", default=None,
                   help="keep all state in memory: a restart resets the lab (demos, tests)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--check", action="store_true", help="load the lab, print its devices and exit")
    p.add_argument("--list-drivers", action="store_true",
                   help="print the registered driver plugins (entry-point group spinhil.drivers) and exit")
    sub = p.add_subparsers(dest="command", metavar="{keys}")
    keys = sub.add_parser("keys", help="create, list or revoke API keys (in the state database)")
    ksub = keys.add_subparsers(dest="keys_command", required=True, metavar="{create,list,revoke}")
    create = ksub.add_parser("create", help="make a key and print it (shown this once)")
    create.add_argument("--name", required=True, help="whose key (a person or a robot)")
    create.add_argument("--role", choices=["observer", "user", "admin"], default="user")
    create.add_argument("--expires-in-days", type=float, default=None, help="days until the key stops working")
    create.add_argument("--quota-device-s", type=float, default=None, help="device-seconds the key may hold devices")
    _state_options(create, "keys_")
    listing = ksub.add_parser("list", help="list keys (never their secrets)")
    _state_options(listing, "keys_")
    revoke = ksub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    _state_options(revoke, "keys_")
    return p


def _ts(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def run_keys(args: argparse.Namespace, settings: Settings) -> int:
    from device_server.auth import create_key, key_status
    from device_server.store import Store

    store = Store.open(settings.state_dir, settings.database_url)
    try:
        if args.keys_command == "create":
            expires = None if args.expires_in_days is None else args.expires_in_days * 86400.0
            key, row = create_key(store, args.name, args.role, expires, args.quota_device_s)
            print(key)
            print(f"key {row['key_id']} for {row['name']} (role {row['role']}, expires {_ts(row['expires_at'])}); "
                  "store it now: it is not shown again", file=sys.stderr)
        elif args.keys_command == "list":
            now = time.time()
            print(f"{'key_id':<13} {'name':<20} {'role':<9} {'status':<8} {'created':<17} {'expires':<17} "
                  f"{'last used':<17} quota_s")
            for row in store.keys():
                quota = "-" if row["quota_device_s"] is None else f"{row['quota_device_s']:g}"
                print(f"{row['key_id']:<13} {row['name'][:20]:<20} {row['role']:<9} {key_status(row, now):<8} "
                      f"{_ts(row['created_at']):<17} {_ts(row['expires_at']):<17} {_ts(row['last_used_at']):<17} {quota}")
        else:
            if not store.set_key(args.key_id, revoked_at=time.time()):
                print(f"hil-server: no API key {args.key_id!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
    finally:
        store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_drivers:
        return list_drivers()
    fields = {"lab": args.lab, "host": args.host, "port": args.port, "latency": args.latency,
              "max_body_bytes": args.max_body_bytes, "lease_ttl_s": args.lease_ttl, "state_dir": args.state_dir,
              "database_url": args.database_url, "open": args.open, "ephemeral": args.ephemeral}
    if args.command == "keys":  # the sub-command's own --state-dir wins
        fields |= {k: v for k, v in (("state_dir", args.keys_state_dir), ("database_url", args.keys_database_url)) if v}
    try:
        settings = Settings(**{k: v for k, v in fields.items() if v is not None})
        if args.command == "keys":
            return run_keys(args, settings)
        lab = load_lab(settings.lab)
    except (LabError, ValueError) as exc:
        print(f"hil-server: {exc}", file=sys.stderr)
        return 2
    if args.check:
        for device_id, d in lab.devices.items():
            print(f"{device_id}\t{d.kind}\t{d.describe().get('preset', '')}")
        return 0
    from device_server.app import create_app
    from device_server.serve import listening_socket, serve

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as exc:
        print(f"hil-server: {exc}", file=sys.stderr)
        return 2
    try:
        app = create_app(settings, lab)
    except (StateMismatch, OSError) as exc:
        sock.close()
        print(f"hil-server: {exc}", file=sys.stderr)
        return 2
    ctx = app.state.ctx
    logging.getLogger("device_server").info(
        "state: %s (%s); %s", ctx.store.engine.url.render_as_string(hide_password=True), "durable" if ctx.store.durable else "in memory, lost at exit",
        "OPEN: no API keys required" if settings.open else "API keys required")
    serve(app, sock, args.log_level)
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
