"""The Driver contract: the one interface through which the server reaches a device.

A device is a chip on a bench with a fixed topology, non-volatile state (programmed weights),
volatile state (neuron states) and limits (DESIGN.md §2). A driver implements some of the
operations below and lists them in ``capabilities``; routes never branch on the driver's type.

Every operation returns an :class:`OpResult`: named arrays and a report holding at least
``device_time_s`` (the chip's own time), ``instrument_time_s`` (the bench's time) and
``energy_j`` with its terms. The server adds the rest of the provenance (device id, lease,
wall time). Drivers hold no HTTP: they raise the errors defined here, which the server maps
to problem details.

Error tree::

    DriverError
    ├── InvalidArgument   a well-formed request the device cannot take (shape, range): 422
    ├── UnknownName       a layer or array the device does not have: 404
    └── DeviceFault       the instrument is faulted or offline: 503

A driver that breaks the contract itself (a report without energy, say) is a bug on the lab's
side, not the caller's: the server answers 500 with the rule that was broken
(:class:`ContractViolation`), and the conformance kit (:mod:`device_server.testing`) catches it
before a lab ever serves the driver.

Drivers are plugins: a package registers its driver class under the entry-point group
``spinhil.drivers`` and a lab file names it (``driver = "name"``); see
:mod:`device_server.drivers.registry` and docs/drivers.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


class DriverError(Exception):
    """Base of the errors a driver raises; ``field`` names the offending input."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class InvalidArgument(DriverError):
    """Well-formed but invalid input: wrong shape, beyond a limit."""


class UnknownName(DriverError):
    """A layer or weight array the device does not have."""


class DeviceFault(DriverError):
    """The instrument cannot serve now (faulted, offline); the caller may retry later."""

    def __init__(self, field: str, detail: str, retry_after_s: float = 5.0) -> None:
        super().__init__(field, detail)
        self.retry_after_s = retry_after_s


class ContractViolation(Exception):
    """The driver itself broke the contract (a server-side bug): ``rule`` names what was broken."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


@dataclass
class OpResult:
    """Arrays measured or written by an operation, and its report (times, energy, extras)."""

    arrays: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)


def summed_report(first: Mapping[str, Any], then: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """``first``'s report with ``then``'s times and energy (and each energy term) added to it: the
    report of two operations run as one transaction. ``extra`` entries are set on the result."""
    out = dict(first)
    for key in ("device_time_s", "instrument_time_s", "energy_j"):
        out[key] = float(first.get(key, 0.0)) + float(then.get(key, 0.0))
    terms = dict(first.get("energy_terms_j", {}))
    for key, value in then.get("energy_terms_j", {}).items():
        terms[key] = terms.get(key, 0.0) + value
    out["energy_terms_j"] = terms
    out.update(extra)
    return out


#: The Driver methods that implement the operations of the contract (and keep non-volatile state).
OPERATION_METHODS = ("forward", "relax", "program", "update", "read_weights", "export_state", "restore_state",
                     "drive", "probe")


class Driver(ABC):
    """A device behind the server. Subclasses set ``kind`` and ``capabilities``.

    ``describe()`` returns the declaration: kind, topology, capabilities, limits of every input
    (see :mod:`device_server.drivers.declaration` for the format), settings, model version.
    """

    kind: str = ""
    #: ``"emulated"``, ``"real"`` or ``"mock"``: named in every result's provenance.
    driver_type: str = "emulated"
    capabilities: frozenset[str] = frozenset({"describe"})
    #: A small lab entry (everything but ``id`` and ``driver``) the conformance kit builds the
    #: driver from; every registered driver provides one, so CI can run the kit on it.
    conformance_entry: ClassVar[dict[str, Any] | None] = None

    @classmethod
    def from_lab_entry(cls, device_id: str, params: Mapping[str, Any]) -> Driver:
        """Build the driver from a lab file entry (its keys other than ``id``/``driver``/``kind``).

        The default passes them as keyword arguments; a ``TypeError`` (unknown or missing key)
        becomes a lab error naming the entry.
        """
        return cls(device_id, **dict(params))

    @classmethod
    def implemented_operations(cls) -> frozenset[str]:
        """Operations whose method this class (or a base other than :class:`Driver`) defines."""
        return frozenset(op for op in OPERATION_METHODS if getattr(cls, op) is not getattr(Driver, op))

    def __init__(self, device_id: str, seed: int | None = None) -> None:
        self.device_id = device_id
        self.seed = seed
        self._declared: dict[str, Any] | None = None

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Kind, topology, capabilities, declared limits (with units), settings, model version."""

    def declaration(self) -> dict[str, Any]:
        """``describe()`` read once: limits and model version are declared, not measured."""
        if self._declared is None:
            self._declared = self.describe()
        return self._declared

    def limits(self) -> dict[str, dict[str, Any]]:
        """Declared limits of each input field: ``{field: {min, max, unit, policy}}``.

        ``policy`` is ``"reject"`` (the server refuses values beyond the limit with 422) or
        ``"clip"`` (the server clips them and reports it). The server enforces these for every
        driver alike, before the driver is called.
        """
        return self.declaration().get("limits", {})

    def describe_brief(self) -> dict[str, Any]:
        """The provenance fields every result carries: driver type, model version, seed."""
        return {
            "driver": self.driver_type,
            "model_version": self.declaration().get("model_version", "unknown"),
            "seed": self.seed,
        }

    def forward(self, x: np.ndarray, layers: Sequence[int] | None) -> OpResult:
        raise NotImplementedError

    def relax(
        self,
        x: np.ndarray,
        beta: float,
        target: np.ndarray | None,
        steps: int,
        init: Sequence[np.ndarray] | None,
    ) -> OpResult:
        raise NotImplementedError

    def relax_nudged(
        self,
        x: np.ndarray,
        beta: float,
        target: np.ndarray | None,
        steps: int,
        init: Sequence[np.ndarray] | None,
        nudges: Sequence[tuple[float, int]],
        layers: Sequence[int] | None,
    ) -> OpResult:
        """A ``relax`` phase, then each nudged phase ``(β_j, steps_j)`` started from where it settled.

        Arrays: ``states`` (the first phase's neuron layers ``layers``, all when None) and
        ``nudged`` (per nudged phase, every layer). A chip keeps its state between phases, so a
        driver of real hardware (and the emulated one) starts the nudged phases from the settled
        state itself. This default, for drivers that can only run one phase per call, measures
        every layer of the first phase and starts each nudged phase from that measurement (what a
        client would have sent as ``init``); its report sums times and energy over the phases.
        """
        first = self.relax(x, beta, target, steps, init)
        free = list(first.arrays["states"])
        if layers is not None and (not layers or list(layers) != sorted(set(layers)) or layers[0] < 0
                                   or layers[-1] >= len(free)):
            raise InvalidArgument("layers", f"give neuron layers ascending, without repeats, within "
                                  f"0..{len(free) - 1}; got {list(layers)}")
        span = self.limits().get("init", {})
        start = [np.clip(s, span.get("min"), span.get("max")) if span else s for s in free]
        report = dict(first.report)
        nudged, info = [], []
        for b, t in nudges:
            r = self.relax(x, b, target, t, start)
            nudged.append(list(r.arrays["states"]))
            info.append({"beta": b, "steps": t, "residual": r.report.get("residual")})
            report = summed_report(report, r.report)
        if nudges:
            report["nudges"] = info
        keep = range(len(free)) if layers is None else layers
        return OpResult({"states": [free[k] for k in keep], "nudged": nudged}, report)

    def check_relax(
        self,
        x: np.ndarray,
        beta: float,
        target: np.ndarray | None,
        steps: int,
        init: Sequence[np.ndarray] | None,
        nudges: Sequence[tuple[float, int]] = (),
        layers: Sequence[int] | None = None,
    ) -> None:
        """Raise what ``relax``/``relax_nudged`` would raise for these inputs, without running them.

        Called before a write carried by a relax request is applied, so a refused request leaves
        the device untouched. The default checks nothing (the phases then check as they run).
        """

    def program(self, targets: Mapping[str, np.ndarray]) -> OpResult:
        raise NotImplementedError

    def drive(self, u: np.ndarray, dt: float, oscillators: Sequence[int] | None, every: int, start: int,
              quantities: Sequence[str]) -> OpResult:
        """Apply input sequences ``u`` (batch, steps, inputs) with step ``dt`` [s]; record the traces asked for.

        ``oscillators`` (None: all), every ``every`` steps from step ``start``, the named
        ``quantities``; answers ``{"traces": {quantity: array, "time_s": …}}`` and a report.
        """
        raise NotImplementedError

    def program_cells(self, cells: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> OpResult:
        """``program`` of single cells: ``cells[name] = (flat indices, target values)``; the other
        cells of the array keep what was programmed. Indices arrive checked (in range, strictly
        increasing) and values within the declared limits. Drivers of devices that are written
        whole arrays at a time leave this default, which refuses (the client sends ``weights``).
        """
        raise InvalidArgument("cells", f"device {self.device_id!r} is programmed with whole arrays; send 'weights'")

    def update(self, deltas: Mapping[str, np.ndarray]) -> OpResult:
        raise NotImplementedError

    def read_weights(self) -> OpResult:
        raise NotImplementedError

    def probe(self, structure: str, inputs: Mapping[str, np.ndarray]) -> OpResult:
        """Measure a test structure of the chip (``describe()["structures"]`` lists them and their
        inputs; each input ``name`` has its limit declared as ``"{structure}.{name}"``)."""
        raise NotImplementedError

    def idle(self) -> None:
        """Work the device may do between calls, while nobody waits for it (optional; default none).

        The server calls it after an answer has been sent, on the device's own thread (where its
        operations run one at a time), so it never runs beside an operation. It must not change anything a later call observes: an emulator
        may, say, draw ahead the noise its next call will use from the same streams (the values a
        call gets are then the same whether or not ``idle`` ran). Keep each call short (about a
        millisecond): a request that arrives meanwhile waits for it.
        """

    # Non-volatile state (optional, part of the contract for drivers that can be written):
    # the server persists it after every acknowledged write and restores it at start, so a
    # restart (or a crash) keeps what was programmed. A real instrument keeps its state in the
    # chip itself and need not implement these; the server then persists nothing for it.
    def export_state(self) -> dict[str, np.ndarray]:
        """The device's non-volatile state as named NumPy arrays (fixed names, shapes, dtypes).

        The arrays may be the driver's own (no copy); the caller reads them before the next
        operation and copies what it keeps. ``NotImplementedError``: nothing to persist.
        """
        raise NotImplementedError

    def state_changes(self) -> Mapping[str, tuple[np.ndarray, np.ndarray]] | None:
        """Optional: the cells of :meth:`export_state` that changed since the previous call, per
        array ``(flat indices, values now)``; ``None`` (the default) when the driver does not know,
        and the server compares the whole exported state with what it persisted last.

        A driver that tracks its writes saves a durable server that comparison at every write
        (milliseconds for a large chip). It must list every cell that changed (listing unchanged
        ones too is allowed), and answer ``None`` after :meth:`restore_state`. The server checks
        the tracked cells against a whole export whenever it writes a snapshot.
        """
        return None

    def restore_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Put back a state from :meth:`export_state` of the same device, bit for bit.

        Raises ``ValueError`` for a state that does not fit the device (names, shapes, range).
        """
        raise NotImplementedError

    def state_identity(self) -> str:
        """What a saved state belongs to: the calibration id (kind, topology, settings, seed).

        A state saved under another identity (the lab file changed) is not restored.
        """
        return str(self.declaration().get("calibration_id") or self.declaration().get("model_version", ""))
