"""The conformance kit: does a driver honour the Driver contract, seen through the real server?

Given a driver class and a lab entry, the kit builds two devices from the same entry (same
seed), serves them with the real server on a loopback port, and drives them over HTTP the way
a client would. Each rule of :data:`RULES` is checked by behaviour, never by asking the driver
what it claims:

- the two twins, sent the same calls, must answer bit for bit the same (determinism);
- calls beyond every declared limit are sent to one twin only; the next call to both must still
  agree, which proves a refused call left the weights *and the noise stream* untouched;
- writes are replayed with their ``Idempotency-Key`` and repeated without it;
- reads after a program are compared with the achieved weights and with the targets, within the
  noise the driver declares (``describe()["noise"]``).

Why HTTP and not direct calls: limits are enforced by the server for every driver alike, so what
a user can rely on is the pair (server, driver); the kit checks exactly that pair.

Use it from a test::

    from device_server.testing import assert_conforms
    assert_conforms(MyDriver, {"resource": "TCPIP::bench-7", "seed": 0})

or from the command line: ``python -m device_server.testing --driver my-driver``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from device_server.drivers.base import Driver
from device_server.drivers.declaration import OPERATION_INPUTS, PROVENANCE_FIELDS, declaration_problems
from device_server.testing.serve import serve_in_thread
from trainer_client import codec

#: Every rule the kit checks, with what it means (the names appear in every failure message).
RULES: dict[str, str] = {
    "declaration": "describe() declares kind, topology, capabilities and a limit (unit, min/max, step, policy) "
                   "for every input of every declared operation",
    "capabilities": "every declared operation is served; an undeclared one is refused with a 4xx naming it",
    "shapes": "every answer has the declared shapes, a float dtype and finite values",
    "provenance": "every answer carries the provenance fields; times and energy are positive and grow with work",
    "limits": "a value beyond a declared limit is refused with 422 naming the field, or clipped and reported",
    "state-untouched": "a refused call changes nothing: afterwards the device answers as if it never came",
    "idempotent-writes": "a write replayed with its Idempotency-Key is applied once; the same program twice "
                         "leaves the device as once",
    "read-after-program": "read_weights agrees with the achieved weights, and those with the targets, within the "
                          "declared noise",
    "determinism": "two devices built from the same entry and seed answer the same calls identically",
    "phases": "a relax with nudged phases answers the measured layers of its first phase and every layer of each "
              "nudged phase; a write carried by a relax lands as the same PUT weights would; single cells are "
              "written as the same whole arrays would be, or refused with a 422 naming 'cells'",
    "state-restore": "export_state/restore_state (where implemented) round-trip the programmed state bit for bit "
                     "into a fresh device; a state that does not fit is refused with ValueError and changes nothing",
    "state-changes": "state_changes (where implemented) lists every cell the kit's calls changed: the state before "
                     "them, moved by the list, is the state after, bit for bit; after restore_state it answers None",
}
#: How far beyond a limit the kit probes, as a fraction of the limit's scale.
PROBE_MARGIN = 0.5
#: Tolerance on a measured spread against a declared one (the kit's samples are a few hundred values).
SPREAD_TOLERANCE = 1.5
#: Operations that measure: they always take device time and energy.
MEASUREMENTS = frozenset({"forward", "relax", "read_weights", "drive", "probe"})
#: Largest batch the kit sends to probe a batch limit (a larger declared limit is not probed).
MAX_PROBE_BATCH = 20_000
#: Largest input (values) the kit sends to probe a drive's batch or steps limit (32 MB of float32).
MAX_PROBE_VALUES = 8_000_000


class _Stop(Exception):
    """Ends the current check: its failure is already recorded (possibly under another rule)."""


@dataclass
class ConformanceReport:
    """Outcome of the kit on one driver: failures by rule, and rules that could not be checked."""

    driver: str
    failures: dict[str, list[str]] = field(default_factory=dict)
    checked: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failed_rules(self) -> list[str]:
        return sorted(self.failures)

    def fail(self, rule: str, message: str) -> None:
        self.failures.setdefault(rule, []).append(message)

    def summary(self) -> str:
        lines = [f"conformance of driver {self.driver!r}: " + ("PASS" if self.ok else "FAIL")]
        for rule in RULES:
            if rule in self.failures:
                lines.append(f"  FAIL {rule}: {RULES[rule]}")
                lines += [f"       - {m}" for m in self.failures[rule][:8]]
            elif rule in self.checked:
                lines.append(f"  ok   {rule}")
            else:
                lines.append(f"  n/a  {rule} (not applicable to the declared capabilities)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def assert_conforms(driver_cls: type[Driver], entry: Mapping[str, Any], name: str | None = None) -> ConformanceReport:
    """Run the kit; raise ``AssertionError`` with the summary if any rule fails."""
    report = run_conformance(driver_cls, entry, name)
    if not report.ok:
        raise AssertionError(report.summary())
    return report


def run_conformance(driver_cls: type[Driver], entry: Mapping[str, Any], name: str | None = None) -> ConformanceReport:
    """Check ``driver_cls`` built from lab ``entry`` against every rule; never raises for a broken driver."""
    from device_server.app import create_app
    from device_server.lab import Lab
    from device_server.settings import Settings

    report = ConformanceReport(name or driver_cls.__name__)
    try:
        twins = [driver_cls.from_lab_entry(f"kit-{k}", dict(entry)) for k in "ab"]
    except Exception as exc:  # noqa: BLE001 - a driver that cannot be built fails the declaration rule
        report.fail("declaration", f"the driver cannot be built from the entry: {type(exc).__name__}: {exc}")
        return report
    report.checked.add("declaration")
    try:
        declaration = twins[0].describe()
        problems = declaration_problems(declaration, driver_cls.implemented_operations())
    except Exception as exc:  # noqa: BLE001
        problems = [f"describe() raised {type(exc).__name__}: {exc}"]
    for p in problems:
        report.fail("declaration", p)
    if problems:
        report.notes.append("the server refuses to load a driver whose declaration is broken: nothing else was checked")
        return report
    lab = Lab(name="conformance", source="kit", config_sha256="", devices={d.device_id: d for d in twins})
    app = create_app(Settings(latency="virtual", open=True, ephemeral=True), lab)  # a private, forgotten server
    tracks = driver_cls.export_state is not Driver.export_state and driver_cls.state_changes is not Driver.state_changes
    if tracks:
        twins[0].state_changes()  # the interval starts with the session
        start = {k: np.array(v, copy=True) for k, v in twins[0].export_state().items()}
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        _Session(http, declaration, report).run()
    if tracks:
        try:
            _check_state_changes(driver_cls, entry, start, twins[0], report)
        except Exception as exc:  # noqa: BLE001
            report.fail("state-changes", f"{type(exc).__name__}: {exc}")
    if driver_cls.export_state is not Driver.export_state:
        try:
            _check_state_restore(driver_cls, entry, twins[0], report)
        except Exception as exc:  # noqa: BLE001
            report.fail("state-restore", f"{type(exc).__name__}: {exc}")
    return report


def _check_state_changes(driver_cls: type[Driver], entry: Mapping[str, Any], start: dict[str, np.ndarray],
                         used: Driver, report: ConformanceReport) -> None:
    """The cells the driver lists as changed over the session must take ``start`` to its state now:
    a durable server journals exactly those (and catches a miss only at its next snapshot)."""
    changes = used.state_changes()
    if changes is None:
        report.notes.append("state_changes answered None after the session (more writes than it tracks): not checked")
        return
    report.checked.add("state-changes")
    moved = {k: np.array(v, copy=True) for k, v in start.items()}
    for name, (index, values) in changes.items():
        if name not in moved:
            report.fail("state-changes", f"lists {name!r}, which export_state does not have")
            return
        moved[name].reshape(-1)[np.asarray(index)] = values
    diff = _first_difference(moved, used.export_state())
    if diff:
        report.fail("state-changes", f"the listed cells miss a change at {diff}")
    fresh = driver_cls.from_lab_entry("kit-d", dict(entry))
    fresh.restore_state(start)
    if fresh.state_changes() is not None:
        report.fail("state-changes", "after restore_state it still lists cells (it cannot know what changed)")


def _check_state_restore(driver_cls: type[Driver], entry: Mapping[str, Any], used: Driver,
                         report: ConformanceReport) -> None:
    """What the server persists after a write must bring a fresh device back to the same weights.

    Checked in-process: the server's store only moves these arrays to disk and back (issue 8's
    tests kill it to prove that); whether they *are* the device's state is the driver's part.
    """
    report.checked.add("state-restore")
    state = {k: np.array(v, copy=True) for k, v in used.export_state().items()}
    fresh = driver_cls.from_lab_entry("kit-c", dict(entry))
    before = {k: np.array(v, copy=True) for k, v in fresh.export_state().items()}
    bad = {k: v[..., :0] for k, v in state.items()}  # right names, wrong shapes
    try:
        fresh.restore_state(bad)
        report.fail("state-restore", "restore_state accepted arrays of the wrong shape")
    except ValueError:
        if _first_difference(before, fresh.export_state()):
            report.fail("state-restore", "a refused restore_state changed the device")
    fresh.restore_state(state)
    diff = _first_difference(state, fresh.export_state())
    if diff:
        report.fail("state-restore", f"the restored state differs from the exported one at {diff}")
    if "read_weights" in used.capabilities:
        mine, theirs = fresh.read_weights().arrays, used.read_weights().arrays
        diff = _first_difference(mine, theirs) if not _declared_read_noise(used) else None
        if diff:
            report.fail("state-restore", f"a fresh device given the exported state reads other weights (at {diff})")


def _declared_read_noise(driver: Driver) -> bool:
    stds = ((driver.declaration().get("noise") or {}).get("read_weights") or {}).get("std") or {}
    return any(float(v) > 0 for v in stds.values())


class _Session:
    """One run of the kit against twins ``kit-a`` and ``kit-b`` served at ``http``."""

    def __init__(self, http: httpx.Client, declaration: dict[str, Any], report: ConformanceReport) -> None:
        self.http = http
        self.decl = declaration
        self.report = report
        self.caps = set(declaration["capabilities"])
        self.limits: dict[str, dict[str, Any]] = declaration["limits"]
        self.topology = declaration["topology"]
        self.noise = declaration.get("noise") or {}
        self.tokens: dict[str, str] = {}
        self.diverged = False
        self.rng = np.random.default_rng(20261129)

    # ------------------------------------------------------------------ transport
    def call(self, device: str, method: str, op: str, body: dict | None = None,
             key: str | None = None) -> httpx.Response:
        path = {"forward": "forward", "relax": "relax", "program": "weights", "update": "weights:update",
                "read_weights": "weights", "drive": "drive", "probe": "probe"}[op]
        headers = {"X-Lease-Token": self.tokens.get(device, ""), "Accept": codec.MSGPACK}
        content = None
        if body is not None:
            headers["Content-Type"] = codec.MSGPACK
            content = codec.encode(body)
        if key:
            headers["Idempotency-Key"] = key
        r = self.http.request(method, f"/v1/devices/{device}/{path}", content=content, headers=headers)
        if r.status_code == 500:
            # the write may have happened on one twin and not the other: stop comparing them
            self.diverged = True
            problem = r.json() if r.headers.get("content-type", "").startswith(codec.PROBLEM_JSON) else {}
            rule = problem.get("field") if problem.get("field") in RULES else "provenance"
            self.report.fail(rule, f"{op}: the server answered 500: {problem.get('detail', r.text[:200])}")
            raise _Stop
        return r

    def ok(self, rule: str, device: str, method: str, op: str, body: dict | None = None,
           key: str | None = None) -> dict[str, Any]:
        r = self.call(device, method, op, body, key)
        if r.status_code != 200:
            self.report.fail(rule, f"{op} on valid input answered {r.status_code}: {r.text[:300]}")
            raise _Stop
        out = codec.decode(r.content, r.headers.get("content-type", codec.MSGPACK))
        out["_replayed"] = r.headers.get("Idempotent-Replayed") == "true"
        self.check_provenance(op, device, out.get("report") or {})
        return out

    def both(self, rule: str, method: str, op: str, body: dict | None = None) -> dict[str, Any]:
        """The same call on both twins; their answers must be identical (``rule`` says why)."""
        a = self.ok(rule, "kit-a", method, op, body)
        b = self.ok(rule, "kit-b", method, op, body)
        if self.diverged:
            return a
        diff = _first_difference(_payload(a), _payload(b))
        if diff:
            self.report.fail(rule, f"{op}: twins built from the same seed answered differently at {diff}")
        self.report.checked.add(rule)
        return a

    # ------------------------------------------------------------------ inputs
    def x(self, batch: int, width: int) -> np.ndarray:
        lim = self.limits["x"]
        hi = 0.5 * (lim["max"] if lim.get("max") is not None else 1.0)
        lo = max(0.0, lim["min"]) if lim.get("min") is not None else 0.0
        return self.rng.uniform(lo, max(hi, lo), (batch, width)).astype(np.float32)

    def weights(self, scale: float = 0.5) -> dict[str, np.ndarray]:
        out = {}
        for name in self.topology["weights"]:
            lim = self.limits[name]
            lo, hi = lim.get("min", -1.0), lim.get("max", 1.0)
            mid, half = (lo + hi) / 2, (hi - lo) / 2
            shape = tuple(self.topology["shapes"][name])
            out[name] = (mid + scale * half * self.rng.uniform(-1, 1, shape)).astype(np.float32)
        return out

    def relax_body(self, batch: int = 4, steps: int = 5, beta: float = 0.0) -> dict[str, Any]:
        sizes = self.topology["sizes"]
        body: dict[str, Any] = {"x": self.x(batch, sizes[0]), "beta": beta, "steps": steps}
        if beta:
            body["target"] = self.rng.uniform(0.2, 0.8, (batch, sizes[-1])).astype(np.float32)
        return body

    def drive_body(self, batch: int = 3, steps: int = 20, **record: Any) -> dict[str, Any]:
        """Input sequences within the declared limits (positive currents: the chip does work)."""
        lim = self.limits["u"]
        hi = 0.5 * (lim["max"] if lim.get("max") is not None else 1.0)
        lo = max(0.0, lim["min"]) if lim.get("min") is not None else 0.0
        u = self.rng.uniform(lo, max(hi, lo), (batch, steps, int(self.topology["inputs"]))).astype(np.float32)
        return {"u": u, "dt": 0.5 * float(self.limits["dt"]["max"]), "record": record}

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        for device in ("kit-a", "kit-b"):
            r = self.http.post(f"/v1/devices/{device}/leases", json={"holder": "conformance-kit"})
            r.raise_for_status()
            self.tokens[device] = r.json()["token"]
        for check in (self.check_capabilities, self.check_program, self.check_forward, self.check_relax,
                      self.check_drive, self.check_phases, self.check_growth, self.check_idempotent,
                      self.check_update, self.check_probe,
                      self.check_limits):
            try:
                check()
            except _Stop:
                continue
            except Exception as exc:  # noqa: BLE001 - a crash of the driver is a finding, not a kit error
                self.report.fail(_rule_of(check), f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ rules
    def check_provenance(self, op: str, device: str, rep: Mapping[str, Any]) -> None:
        self.report.checked.add("provenance")
        missing = [f for f in PROVENANCE_FIELDS if f not in rep]
        if missing:
            self.report.fail("provenance", f"{op}: report lacks {missing}")
            raise _Stop
        # a measurement always takes time and energy; a write that changed nothing may take none
        positive = op in MEASUREMENTS
        for f in ("device_time_s", "instrument_time_s", "energy_j"):
            v = rep[f]
            if not (isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 if positive else v >= 0)):
                self.report.fail("provenance", f"{op}: report.{f} = {v!r} is not a {'positive' if positive else 'non-negative'} "
                                 "finite number")
                raise _Stop
        if rep["instrument_time_s"] < rep["device_time_s"]:
            self.report.fail("provenance", f"{op}: instrument_time_s {rep['instrument_time_s']:.4g} < device_time_s "
                             f"{rep['device_time_s']:.4g}: the bench cannot be faster than the chip it drives")
        if rep["device_id"] != device or rep["driver"] != self.decl.get("driver", rep["driver"]):
            self.report.fail("provenance", f"{op}: report names device {rep['device_id']!r}/{rep['driver']!r}")
        if rep["model_version"] != self.decl["model_version"]:
            self.report.fail("provenance", f"{op}: model_version {rep['model_version']!r} is not the declared one")

    def check_capabilities(self) -> None:
        self.report.checked.add("capabilities")
        for op in OPERATION_INPUTS:
            if op == "describe" or op in self.caps:
                continue
            body = {"x": np.zeros((1, 1), np.float32)} if op in ("forward", "relax") else (
                {"weights": {}} if op == "program" else ({"deltas": {}} if op == "update" else None))
            if op == "drive":
                body = {"u": np.zeros((1, 1, 1), np.float32), "dt": 1e-9}
            if op == "probe":
                body = {"structure": "none", "inputs": {}}
            method = {"program": "PUT", "read_weights": "GET"}.get(op, "POST")
            r = self.call("kit-a", method, op, body)
            if r.status_code < 400 or r.status_code >= 500 or op not in r.text:
                self.report.fail("capabilities", f"undeclared {op!r} answered {r.status_code} without naming it")

    def _check_shapes(self, op: str, arrays: list[np.ndarray], shapes: list[tuple[int, ...]]) -> None:
        self.report.checked.add("shapes")
        if len(arrays) != len(shapes):
            self.report.fail("shapes", f"{op}: {len(arrays)} arrays, expected {len(shapes)}")
            return
        for k, (a, shape) in enumerate(zip(arrays, shapes)):
            a = np.asarray(a)
            if a.shape != shape:
                self.report.fail("shapes", f"{op}[{k}]: shape {a.shape}, expected {shape}")
            elif a.dtype.kind != "f":
                self.report.fail("shapes", f"{op}[{k}]: dtype {a.dtype}, expected a float dtype")
            elif not np.all(np.isfinite(a)):
                self.report.fail("shapes", f"{op}[{k}]: non-finite values")

    def check_program(self) -> None:
        if "program" not in self.caps:
            return
        targets = self.weights()
        a = self.both("determinism", "PUT", "program", {"weights": targets})
        if not (a["report"]["device_time_s"] > 0 and a["report"]["energy_j"] > 0):
            self.report.fail("provenance", "program of new targets on a fresh device reports no device time or energy")
        names = list(targets)
        shapes = [tuple(self.topology["shapes"][n]) for n in names]
        achieved = a.get("achieved") or {}
        self._check_shapes("program.achieved", [achieved.get(n, np.empty(0)) for n in names], shapes)
        self.report.checked.add("read-after-program")
        failed = (a["report"].get("failed") or {})
        spec = self.noise.get("program") or {}
        for n in names:
            ok = np.ones(targets[n].shape, bool)
            ok.ravel()[np.asarray(failed.get(n, []), dtype=np.int64)] = False
            err = (np.asarray(achieved[n], np.float64) - targets[n])[ok]
            std = float((spec.get("std") or {}).get(n, 0.0))
            res = float((spec.get("resolution") or {}).get(n, 0.0))
            allowed = math.sqrt(std**2 + res**2 / 12)
            rms = float(np.sqrt(np.mean(err**2))) if err.size else 0.0
            scale = float(np.max(np.abs(targets[n]))) or 1.0
            if rms > SPREAD_TOLERANCE * allowed + 1e-6 * scale:
                self.report.fail("read-after-program",
                                 f"{n}: achieved − target rms {rms:.4g} beyond the declared {allowed:.4g} "
                                 f"(std {std:.4g}, resolution {res:.4g})")
        if "read_weights" in self.caps:
            read = self.both("determinism", "GET", "read_weights")["weights"]
            self._check_shapes("read_weights", [read.get(n, np.empty(0)) for n in names], shapes)
            rspec = self.noise.get("read_weights") or {}
            for n in names:
                std = float((rspec.get("std") or {}).get(n, 0.0))
                dev = float(np.max(np.abs(np.asarray(read[n], np.float64) - achieved[n])))
                if dev > 6 * std + 1e-6 * (float(np.max(np.abs(achieved[n]))) or 1.0):
                    self.report.fail("read-after-program", f"{n}: read_weights differs from the achieved weights "
                                     f"by {dev:.4g} (declared read noise {std:.4g})")

    def check_forward(self) -> None:
        if "forward" not in self.caps:
            return
        sizes = self.topology["sizes"]
        a = self.both("determinism", "POST", "forward", {"x": self.x(5, sizes[0])})
        self._check_shapes("forward.outputs", a["outputs"], [(5, n) for n in sizes[1:]])
        if len(sizes) > 2:  # one layer at a time, as FF drives it
            a = self.both("determinism", "POST", "forward", {"x": self.x(3, sizes[1]), "layers": [1]})
            self._check_shapes("forward.outputs[layers=[1]]", a["outputs"], [(3, sizes[2])])

    def check_relax(self) -> None:
        if "relax" not in self.caps:
            return
        sizes = self.topology["sizes"]
        for beta in (0.0, 0.5):
            a = self.both("determinism", "POST", "relax", self.relax_body(beta=beta))
            self._check_shapes(f"relax(beta={beta}).states", a["states"], [(4, n) for n in sizes[1:]])

    def check_drive(self) -> None:
        """Traces of the declared shapes, for everything and for a chosen subset, identical on both twins."""
        if "drive" not in self.caps:
            return
        n = int(self.topology["oscillators"])
        a = self.both("determinism", "POST", "drive", self.drive_body(3, 20))["traces"]
        self._check_shapes("drive.traces[power]", [a.get("power", np.empty(0)), a.get("time_s", np.empty(0))],
                           [(3, 20, n), (20,)])
        chosen = sorted({0, n - 1})
        body = self.drive_body(2, 24, oscillators=chosen, every=4, start=8,
                               quantities=["power", "amplitude", "phase", "spectrum"])
        a = self.both("determinism", "POST", "drive", body)["traces"]
        k = len(chosen)
        names = ["power", "amplitude", "phase", "spectrum", "frequency_hz", "time_s"]
        self._check_shapes("drive.traces[record]", [a.get(q, np.empty(0)) for q in names],
                           [(2, 4, k), (2, 4, k), (2, 4, k), (2, k, 4), (4,), (4,)])

    def check_phases(self) -> None:
        """Nudged phases in one relax, a write carried by a relax, single cells (see RULES['phases'])."""
        if "relax" not in self.caps:
            return
        sizes = self.topology["sizes"]
        body = {**self.relax_body(beta=0.5), "beta": 0.0, "nudges": [{"beta": 0.5, "steps": 4}, {"beta": -0.5, "steps": 4}],
                "layers": [len(sizes) - 2]}
        a = self.both("determinism", "POST", "relax", body)
        self._check_shapes("relax(nudges).states", a["states"], [(4, sizes[-1])])
        nudged = a.get("nudged") or []
        if len(nudged) != 2:
            self.report.fail("phases", f"relax with 2 nudged phases answered {len(nudged)} of them")
            return
        for j, phase in enumerate(nudged):
            self._check_shapes(f"relax(nudges).nudged[{j}]", phase, [(4, n) for n in sizes[1:]])
        self.report.checked.add("phases")
        # a nudged phase of β = 0 continues from where the first phase settled: the same as one
        # longer phase, up to the read noise of the measurements (and of a measured start)
        free = self.relax_body(steps=6)
        split = self.both("determinism", "POST", "relax", {**free, "nudges": [{"beta": 0.0, "steps": 2}]})
        whole = self.both("determinism", "POST", "relax", {**free, "steps": 8})
        std = float((self.noise.get("relax") or {}).get("std", 0.0))
        for k, (a, b) in enumerate(zip(split["nudged"][0], whole["states"])):
            miss = float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
            if miss > 10 * std + 1e-6:
                self.report.fail("phases", f"a nudged phase of beta 0 and 2 steps after 6 free steps differs from 8 "
                                 f"free steps by {miss:.4g} at layer {k}: it did not start where the first settled")
        if "program" not in self.caps or "read_weights" not in self.caps:
            return
        # first the same kind of write as a plain PUT: if that does not land, another rule says why
        before = self.both("determinism", "GET", "read_weights")["weights"]
        plain = self.weights(scale=0.3)
        self.both("determinism", "PUT", "program", {"weights": plain})
        if not self._check_landed("PUT weights", plain, before, quiet=True):
            self.report.notes.append("phases: a plain write does not read its targets; carried writes not checked")
            return
        before = self.both("determinism", "GET", "read_weights")["weights"]
        targets = self.weights(scale=0.3)
        carried = self.both("determinism", "POST", "relax", {**self.relax_body(), "program": {"weights": targets}})
        if not carried["report"].get("program"):
            self.report.fail("phases", "a relax carrying a write reports no program under report.program")
        self._check_landed("a write carried by a relax", targets, before)
        # single cells: the first cell of the first array moved across its range
        name = self.topology["weights"][0]
        lim = self.limits[name]
        moved = {name: targets[name].copy()}
        first = moved[name].reshape(-1)
        first[0] = 0.9 * (lim["max"] if first[0] < 0 else lim["min"])
        cells = {"cells": {name: {"index": np.array([0], np.int64), "value": first[:1]}}}
        r = self.call("kit-a", "PUT", "program", cells)
        if r.status_code == 422 and "cells" in r.text:
            self.report.notes.append("the driver takes whole arrays only (single cells refused with 422)")
            return
        if r.status_code != 200:
            self.report.fail("phases", f"program of single cells answered {r.status_code}: {r.text[:300]}")
            raise _Stop
        self.ok("phases", "kit-b", "PUT", "program", cells)
        self._check_landed("a single-cell write", moved, before)

    def _check_landed(self, what: str, targets: Mapping[str, np.ndarray], before: Mapping[str, np.ndarray],
                      quiet: bool = False) -> bool:
        """Both twins read the same weights, and the cells that moved (from what they were ``before``)
        read their targets within the declared program noise — all but a few (stuck, failed)."""
        landed = True
        read = self.both("determinism", "GET", "read_weights")["weights"]
        spec = self.noise.get("program") or {}
        for n, t in targets.items():
            std = float((spec.get("std") or {}).get(n, 0.0))
            res = float((spec.get("resolution") or {}).get(n, 0.0))
            err = np.abs(np.asarray(read[n], np.float64) - t)
            moved = np.abs(np.asarray(before[n], np.float64) - t) > 6 * math.sqrt(std**2 + res**2 / 12) + 1e-6
            # a stuck or failed cell may miss; most must land
            if moved.any() and np.mean(err[moved] <= 6 * math.sqrt(std**2 + res**2 / 12) + 1e-6) < 0.9:
                landed = False
                if not quiet:
                    self.report.fail("phases", f"{what}: {n} does not read its targets (largest miss {err.max():.4g})")
        return landed

    def check_growth(self) -> None:
        """Time and energy grow with work: a batch twice as large, a relax twice as long."""
        sizes = self.topology.get("sizes")
        cases: list[tuple[str, Callable[[int], dict]]] = []
        if "forward" in self.caps:
            cases.append(("forward", lambda k: {"x": self.x(4 * k, sizes[0])}))
        if "relax" in self.caps:
            cases.append(("relax", lambda k: self.relax_body(batch=4, steps=5 * k)))
        if "drive" in self.caps:
            cases.append(("drive", lambda k: self.drive_body(batch=2, steps=10 * k)))
        for op, body in cases:
            small, large = (self.both("determinism", "POST", op, body(k))["report"] for k in (1, 2))
            for f in ("device_time_s", "energy_j"):
                if not large[f] > small[f]:
                    self.report.fail("provenance", f"{op}: {f} did not grow with twice the work "
                                     f"({small[f]:.4g} -> {large[f]:.4g})")

    def check_idempotent(self) -> None:
        if "program" not in self.caps:
            return
        self.report.checked.add("idempotent-writes")
        targets = self.weights(0.3)
        first = self.ok("idempotent-writes", "kit-a", "PUT", "program", {"weights": targets}, key="kit-program-1")
        again = self.ok("idempotent-writes", "kit-a", "PUT", "program", {"weights": targets}, key="kit-program-1")
        if not again["_replayed"] or _first_difference(_payload(first), _payload(again)):
            self.report.fail("idempotent-writes", "a program replayed with its Idempotency-Key was not answered "
                             "with the first result")
        self.ok("idempotent-writes", "kit-b", "PUT", "program", {"weights": targets})
        repeat = self.ok("idempotent-writes", "kit-a", "PUT", "program", {"weights": targets}, key="kit-program-2")
        self.ok("idempotent-writes", "kit-b", "PUT", "program", {"weights": targets})
        spec = self.noise.get("program") or {}
        for n in targets:
            std = float((spec.get("std") or {}).get(n, 0.0))
            res = float((spec.get("resolution") or {}).get(n, 0.0))
            dev = np.abs(np.asarray(repeat["achieved"][n], np.float64) - first["achieved"][n])
            if float(np.median(dev)) > 3 * math.sqrt(2) * std + res + 1e-6:
                self.report.fail("idempotent-writes", f"{n}: programming the same targets again moved the weights "
                                 f"by {float(np.median(dev)):.4g} (median), beyond the declared noise {std:.4g}")
        if "read_weights" in self.caps:  # the replay applied nothing: both twins hold the same state
            self.both("idempotent-writes", "GET", "read_weights")

    def check_update(self) -> None:
        if "update" not in self.caps:
            return
        deltas = {n: (0.05 * self.limits[n]["step"] * self.rng.standard_normal(tuple(self.topology["shapes"][n])))
                  .astype(np.float32) for n in self.topology["weights"]}
        a = self.both("determinism", "POST", "update", {"deltas": deltas})
        names = list(deltas)
        self._check_shapes("update.achieved", [a["achieved"].get(n, np.empty(0)) for n in names],
                           [tuple(self.topology["shapes"][n]) for n in names])
        one = {names[0]: deltas[names[0]]}
        first = self.ok("idempotent-writes", "kit-a", "POST", "update", {"deltas": one}, key="kit-update-1")
        again = self.ok("idempotent-writes", "kit-a", "POST", "update", {"deltas": one}, key="kit-update-1")
        self.ok("idempotent-writes", "kit-b", "POST", "update", {"deltas": one})
        if not again["_replayed"] or _first_difference(_payload(first), _payload(again)):
            self.report.fail("idempotent-writes", "an update replayed with its Idempotency-Key was not answered "
                             "with the first result")
        if "read_weights" in self.caps:
            self.both("idempotent-writes", "GET", "read_weights")

    def probe_body(self, structure: str) -> dict[str, Any]:
        """Inputs of a test structure inside their limits, shaped as the structure's ``example_shape``."""
        sdecl = self.decl["structures"][structure]
        shape = tuple(sdecl.get("example_shape") or (2, 3))
        inputs = {}
        for name in sdecl.get("inputs") or []:
            lim = self.limits[f"{structure}.{name}"]
            lo, hi = lim.get("min"), lim.get("max")
            lo = -1.0 if lo is None else lo
            hi = lo + 2.0 if hi is None else hi
            inputs[name] = self.rng.uniform(lo + 0.25 * (hi - lo), hi - 0.25 * (hi - lo), shape)
        return {"structure": structure, "inputs": inputs}

    def check_probe(self) -> None:
        if "probe" not in self.caps:
            return
        for structure in self.decl.get("structures") or {}:
            a = self.both("determinism", "POST", "probe", self.probe_body(structure))
            self._check_shapes(f"probe({structure}).outputs", list((a.get("outputs") or {}).values()),
                               [np.asarray(v).shape for v in (a.get("outputs") or {}).values()])
            if not a.get("outputs"):
                self.report.fail("shapes", f"probe of {structure!r} answered no outputs")

    def check_limits(self) -> None:
        """Every declared limit, probed beyond on twin a only; then both twins must still agree."""
        self.report.checked.add("limits")
        for op, field, name, method, body in self._probes():
            r = self.call("kit-a", method, op, body)
            policy = self.limits[name].get("policy", "reject")
            if policy == "reject":
                problem = _json(r)
                if r.status_code != 422 or not str(problem.get("field", "")).startswith(field):
                    self.report.fail("limits", f"{op}: {field} beyond the limit of {name!r} answered {r.status_code} "
                                     f"(field {problem.get('field')!r}), expected 422 naming {field!r}")
                self._after_refusal(r, method, op, body, f"after a refused {op} ({field})")
            else:
                if r.status_code != 200:
                    self.report.fail("limits", f"{op}: {field} beyond a clip limit answered {r.status_code}")
                    continue
                clipped = (codec.decode(r.content, r.headers["content-type"])["report"].get("clipped") or {})
                if not any(k.startswith(field) for k in clipped):
                    self.report.fail("limits", f"{op}: {field} was beyond its limit but the report names no clip")
                self.ok("limits", "kit-b", method, op, body)  # keep the twins in step
        if "forward" in self.caps:  # refused by the driver itself (a layer it does not have)
            n_layers = len(self.topology["sizes"]) - 1
            body = {"x": self.x(3, self.topology["sizes"][0]), "layers": [n_layers]}
            r = self.call("kit-a", "POST", "forward", body)
            if not 400 <= r.status_code < 500 or _json(r).get("field") != "layers":
                self.report.fail("limits", f"forward of layer {n_layers} (beyond the topology) answered "
                                 f"{r.status_code}, expected a 4xx naming 'layers'")
            self._after_refusal(r, "POST", "forward", body, "after a forward refused for a layer the device does not have")
        if "drive" in self.caps:  # refused by the driver itself: what only it knows (inputs, sequence length)
            wrong = self.drive_body(2, 10)
            wrong["u"] = np.zeros((2, 10, int(self.topology["inputs"]) + 1), np.float32)
            late = self.drive_body(2, 10, start=10)
            for body, field in ((wrong, "u"), (late, "record.start")):
                r = self.call("kit-a", "POST", "drive", body)
                if not 400 <= r.status_code < 500 or _json(r).get("field") != field:
                    self.report.fail("limits", f"drive with a bad {field} answered {r.status_code}, expected a 4xx "
                                     f"naming {field!r}")
                self._after_refusal(r, "POST", "drive", body, f"after a drive refused by the driver ({field})")
        rejecting = [n for n in self.topology.get("weights") or [] if self.limits[n].get("policy", "reject") == "reject"]
        if "program" in self.caps and rejecting:  # a refused write with one bad array among good ones writes nothing
            body = {"weights": self.weights()}
            name = rejecting[0]
            body["weights"][name] = body["weights"][name] + np.float32(2 * _span(self.limits[name]))
            r = self.call("kit-a", "PUT", "program", body)
            if r.status_code != 422:
                self.report.fail("limits", f"program with {name} beyond its limit answered {r.status_code}")
            self._after_refusal(r, "PUT", "program", body, "after a refused program of several arrays")

    def _after_refusal(self, r: httpx.Response, method: str, op: str, body: dict, when: str) -> None:
        """A refused call must have changed nothing; one wrongly answered is sent to the twin too."""
        if r.status_code < 400:  # already a `limits` failure: keep the twins in step, judge nothing more
            self.call("kit-b", method, op, body)
            return
        self._still_twins(when)

    def _still_twins(self, when: str) -> None:
        if self.diverged or "determinism" in self.report.failures:
            return  # twins that differ anyway cannot show what a refused call did
        self.report.checked.add("state-untouched")
        probes: list[tuple[str, str, dict | None]] = []
        if "read_weights" in self.caps:
            probes.append(("GET", "read_weights", None))
        if "forward" in self.caps:
            probes.append(("POST", "forward", {"x": self.x(3, self.topology["sizes"][0])}))
        if "drive" in self.caps:  # draws thermal and read noise: shows a noise stream moved by a refusal
            probes.append(("POST", "drive", self.drive_body(2, 10)))
        for method, op, body in probes:
            a = self.ok("state-untouched", "kit-a", method, op, body)
            b = self.ok("state-untouched", "kit-b", method, op, body)
            diff = _first_difference(_payload(a), _payload(b))
            if diff:
                self.report.fail("state-untouched", f"{when}: {op} no longer matches the twin that never got "
                                 f"the refused call (at {diff})")
                raise _Stop

    def _probes(self) -> list[tuple[str, str, str, str, dict]]:
        """(operation, field, limit name, method, body) for a value beyond each declared limit."""
        out: list[tuple[str, str, str, str, dict]] = []
        sizes = self.topology.get("sizes")
        for op in ("forward", "relax"):
            if op not in self.caps:
                continue
            make = (lambda: {"x": self.x(3, sizes[0])}) if op == "forward" else (lambda: self.relax_body(3, 5, 0.5))
            for name in OPERATION_INPUTS[op]:
                lim = self.limits[name]
                if name == "batch":
                    rows = int(lim["max"]) + 1 if lim.get("max") is not None else None
                    if rows is None or rows > MAX_PROBE_BATCH:
                        self.report.notes.append(f"{op}: batch limit {lim.get('max')} too large to probe")
                        continue
                    out.append((op, "x", name, "POST", {**make(), "x": self.x(rows, sizes[0])}))
                    continue
                body = make()
                value = _beyond(lim)
                if name == "init":
                    body["init"] = [np.full((3, n), value, np.float32) for n in sizes[1:]]
                    field = "init"
                elif name in ("x", "target"):
                    body[name] = np.full_like(body[name], value)
                    field = name
                elif name == "steps":
                    body[name], field = int(math.ceil(value)), name
                else:
                    body[name], field = float(value), name
                out.append((op, field, name, "POST", body))
        if "drive" in self.caps:
            out += self._drive_probes()
        if "probe" in self.caps:
            for structure, sdecl in (self.decl.get("structures") or {}).items():
                for name in sdecl.get("inputs") or []:
                    body = self.probe_body(structure)
                    body["inputs"][name] = np.full_like(body["inputs"][name],
                                                        _beyond(self.limits[f"{structure}.{name}"]))
                    out.append(("probe", f"inputs.{name}", f"{structure}.{name}", "POST", body))
        for name in self.topology.get("weights") or []:
            shape = tuple(self.topology["shapes"][name])
            if "program" in self.caps:
                out.append(("program", f"weights.{name}", name, "PUT",
                            {"weights": {name: np.full(shape, _beyond(self.limits[name]), np.float32)}}))
            if "update" in self.caps:
                step = float(self.limits[name]["step"])
                out.append(("update", f"deltas.{name}", name, "POST",
                            {"deltas": {name: np.full(shape, 1.5 * step, np.float32)}}))
        return out


    def _drive_probes(self) -> list[tuple[str, str, str, str, dict]]:
        """A drive beyond each of its declared limits (the recording ones named ``record.<name>``)."""
        out: list[tuple[str, str, str, str, dict]] = []
        for name in OPERATION_INPUTS["drive"]:
            lim = self.limits[name]
            body = self.drive_body(2, 10)
            if name in ("batch", "steps"):
                size = int(lim["max"]) + 1 if lim.get("max") is not None else None
                if size is None or size * int(self.topology["inputs"]) * (2 if name == "steps" else 10) > MAX_PROBE_VALUES:
                    self.report.notes.append(f"drive: {name} limit {lim.get('max')} too large to probe")
                    continue
                shape = (size, 10) if name == "batch" else (2, size)
                body["u"] = np.zeros((*shape, int(self.topology["inputs"])), np.float32)
                out.append(("drive", "u", name, "POST", body))
                continue
            value = _beyond(lim)
            if name == "u":
                body["u"] = np.full_like(body["u"], value)
                field = "u"
            elif name == "dt":
                body["dt"], field = float(value), "dt"
            elif name == "oscillators":
                body["record"] = {"oscillators": [int(math.ceil(value))]}
                field = "record.oscillators"
            else:
                body["record"] = {name: int(math.ceil(value))}
                field = f"record.{name}"
            out.append(("drive", field, name, "POST", body))
        return out


def _rule_of(check: Callable[[], None]) -> str:
    return {"check_capabilities": "capabilities", "check_program": "read-after-program", "check_forward": "shapes",
            "check_relax": "shapes", "check_drive": "shapes", "check_phases": "phases", "check_growth": "provenance",
            "check_idempotent": "idempotent-writes",
            "check_update": "idempotent-writes", "check_limits": "limits"}.get(check.__name__, "determinism")


def _span(lim: Mapping[str, Any]) -> float:
    lo, hi = lim.get("min"), lim.get("max")
    if lo is not None and hi is not None:
        return max(hi - lo, 1e-12)
    return max(abs(lo if lo is not None else hi), 1.0)


def _beyond(lim: Mapping[str, Any]) -> float:
    """A value clearly beyond the limit: past ``max`` if there is one, else below ``min``."""
    if lim.get("max") is not None:
        return float(lim["max"]) + PROBE_MARGIN * _span(lim)
    return float(lim["min"]) - PROBE_MARGIN * _span(lim)


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        return r.json()
    except ValueError:
        return {}


def _payload(answer: Mapping[str, Any]) -> dict[str, Any]:
    """What two twins must agree on: the arrays, and the report's times, energy and counts."""
    rep = answer.get("report") or {}
    keep = {k: v for k, v in rep.items() if k not in ("device_id", "lease_id", "request_id", "wall_time_s", "fencing")}
    return {**{k: v for k, v in answer.items() if k not in ("report", "_replayed")}, "report": keep}


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two decoded answers differ (exactly), or None."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            return f"{path or '.'} (keys {sorted(set(a) ^ set(b))})"
        for k in a:
            d = _first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{path} (length)"
        for k, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, f"{path}[{k}]")
            if d:
                return d
        return None
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return None if np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True) else path
    return None if a == b else path
