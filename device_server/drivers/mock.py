"""A driver that wraps another and records every call: the server's and the client's test double.

The pattern of ophyd-async's mock backends: the device behaves as the wrapped one (same
declaration, same physics), and a test can look at what reached it and make the next call fail.
Lab entry::

    [[devices]]
    id = "recorded"
    driver = "mock"
    wraps = { driver = "mtj-crossbar", topology = { sizes = [8, 4, 2] }, seed = 1 }

Why: tests can then assert on what the *instrument* saw — a refused request never reached it,
a retried write reached it once — rather than on what the server answered.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device_server.drivers.base import Driver, DriverError, OpResult


@dataclass
class RecordedCall:
    """One call that reached the wrapped driver: its arguments (copied) and what came of it."""

    operation: str
    args: dict[str, Any]
    result: OpResult | None = None
    error: DriverError | None = None
    injected: bool = field(default=False)


class RecordingDriver(Driver):
    """Delegates every operation to ``inner`` and records it; ``fail_next`` injects a failure."""

    kind = "mock"
    driver_type = "mock"
    conformance_entry = {"wraps": {"driver": "mtj-crossbar", "topology": {"sizes": [6, 5, 3]}, "seed": 4}}

    def __init__(self, device_id: str, inner: Driver) -> None:
        super().__init__(device_id, inner.seed)
        self.inner = inner
        self.kind = inner.kind
        self.capabilities = inner.capabilities
        self.calls: list[RecordedCall] = []
        self._failures: dict[str, DriverError] = {}
        self._failures_after: dict[str, Exception] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_lab_entry(cls, device_id: str, params: Mapping[str, Any]) -> RecordingDriver:
        from device_server.drivers.registry import load_driver

        unknown = set(params) - {"wraps"}
        if unknown or "wraps" not in params:
            raise ValueError(f"a mock entry takes one key, wraps = {{driver = ..., ...}}; got {sorted(params)}")
        wrapped = dict(params["wraps"])
        name = wrapped.pop("driver", None)
        if not isinstance(name, str):
            raise ValueError("wraps.driver must name the registered driver to wrap")
        return cls(device_id, load_driver(name).from_lab_entry(device_id, wrapped))

    # ------------------------------------------------------------------ test controls
    def fail_next(self, operation: str, error: DriverError) -> None:
        """Make the next call of ``operation`` raise ``error`` without reaching the wrapped driver."""
        with self._lock:
            self._failures[operation] = error

    def fail_after(self, operation: str, error: Exception) -> None:
        """Make the next call of ``operation`` reach the wrapped driver, then raise ``error``.

        An instrument that did the work but whose answer was lost: what the server must not
        acknowledge, and must not let become durable behind the caller's back.
        """
        with self._lock:
            self._failures_after[operation] = error

    def calls_to(self, operation: str) -> list[RecordedCall]:
        with self._lock:
            return [c for c in self.calls if c.operation == operation]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._failures.clear()
            self._failures_after.clear()

    def _call(self, operation: str, args: dict[str, Any], run: Callable[[], OpResult]) -> OpResult:
        record = RecordedCall(operation, copy.deepcopy(args))
        with self._lock:
            self.calls.append(record)
            injected = self._failures.pop(operation, None)
        if injected is not None:
            record.error, record.injected = injected, True
            raise injected
        try:
            record.result = run()
        except DriverError as exc:
            record.error = exc
            raise
        with self._lock:
            after = self._failures_after.pop(operation, None)
        if after is not None:
            record.injected = True
            raise after
        return record.result

    # ------------------------------------------------------------------ contract
    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "driver": self.driver_type, "wraps": self.inner.driver_type}

    def forward(self, x: np.ndarray, layers: Sequence[int] | None) -> OpResult:
        return self._call("forward", {"x": x, "layers": layers}, lambda: self.inner.forward(x, layers))

    def relax(self, x: np.ndarray, beta: float, target: np.ndarray | None, steps: int,
              init: Sequence[np.ndarray] | None) -> OpResult:
        args = {"x": x, "beta": beta, "target": target, "steps": steps, "init": init}
        return self._call("relax", args, lambda: self.inner.relax(x, beta, target, steps, init))

    def program(self, targets: Mapping[str, np.ndarray]) -> OpResult:
        return self._call("program", {"targets": dict(targets)}, lambda: self.inner.program(targets))

    def update(self, deltas: Mapping[str, np.ndarray]) -> OpResult:
        return self._call("update", {"deltas": dict(deltas)}, lambda: self.inner.update(deltas))

    def read_weights(self) -> OpResult:
        return self._call("read_weights", {}, self.inner.read_weights)

    def drive(self, u: np.ndarray, dt: float, oscillators: Sequence[int] | None, every: int, start: int,
              quantities: Sequence[str]) -> OpResult:
        args = {"u": u, "dt": dt, "oscillators": oscillators, "every": every, "start": start, "quantities": quantities}
        return self._call("drive", args, lambda: self.inner.drive(u, dt, oscillators, every, start, quantities))

    def probe(self, structure: str, inputs: Mapping[str, np.ndarray]) -> OpResult:
        return self._call("probe", {"structure": structure, "inputs": dict(inputs)},
                          lambda: self.inner.probe(structure, inputs))

    # non-volatile state: the wrapped device's, so a mock survives a restart like what it wraps
    def export_state(self) -> dict[str, np.ndarray]:
        return self.inner.export_state()

    def restore_state(self, state: Mapping[str, np.ndarray]) -> None:
        self._call("restore_state", {}, lambda: (self.inner.restore_state(state), OpResult({}))[1])

    def state_identity(self) -> str:
        return self.inner.state_identity()
