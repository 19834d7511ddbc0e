"""Emulated MTJ crossbar chip behind the Driver contract (physics in :mod:`device_models`)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from device_models.config import CrossbarConfig, settings_table
from device_models.crossbar import CrossbarNetwork
from device_models.mtj_test_junctions import JunctionParams, TestJunctions
from device_models.presets import get_preset
from device_server.drivers.base import Driver, InvalidArgument, OpResult, UnknownName
from device_server.drivers.model_backed import ModelBacked

#: Largest number of synchronous updates one ``relax`` call may ask for.
MAX_RELAX_STEPS = 100_000
#: Largest work of one call, in sample × update: a call holds the instrument, so it must end.
MAX_SAMPLE_UPDATES = 5_000_000
#: Largest batch of one call: bounds the memory of an answer (and of its JSON text).
MAX_BATCH = 8192
#: Largest |β| accepted (the nudge is an input current: beyond it the output neurons clip anyway).
MAX_ABS_BETA = 100.0
#: Test junctions beside the crossbar (one binary MTJ of the cells' stack each): rows of a probe.
TEST_JUNCTIONS = 4096
#: Largest number of pulses (rows × pulses) one probe of the test junctions may apply.
MAX_PROBE_PULSES = 2_000_000
#: Safe-operating limit of a test-junction pulse [V] (tunnel barrier breakdown near 1 V).
MAX_PULSE_V = 0.9
#: Longest pulse sequence of one test junction in one probe (the sequence is a Python loop over
#: pulses, vectorised over rows: about 0.1 ms a pulse, so one call holds the device ≲ 2 s).
MAX_PROBE_SEQUENCE = 20_000
#: Work one :meth:`EmulatedCrossbar.idle` may do between calls [s] (a request arriving meanwhile waits for it).
IDLE_BUDGET_S = 1e-3
#: Name of the test junctions' states in :meth:`EmulatedCrossbar.export_state`.
JUNCTION_STATE = "junctions.state"


class EmulatedCrossbar(ModelBacked, Driver):
    """An :class:`~device_models.crossbar.CrossbarNetwork` served as an instrument.

    Parameters come from a lab entry: ``topology = {sizes = [...], w_max = [...]?}``,
    a ``preset`` name, ``seed`` and ``overrides`` of single settings.
    """

    kind = "mtj-crossbar"
    driver_type = "emulated"
    capabilities = frozenset({"describe", "forward", "relax", "program", "update", "read_weights", "probe"})
    conformance_entry = {"topology": {"sizes": [12, 8, 4]}, "preset": "default-v1", "seed": 3}

    def __init__(
        self,
        device_id: str,
        topology: Mapping[str, Any],
        preset: str = "default-v1",
        seed: int = 0,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(device_id, seed)
        unknown = set(topology) - {"sizes", "w_max"}
        if unknown:
            raise ValueError(f"device {device_id!r}: unknown topology key(s) {sorted(unknown)}")
        if "sizes" not in topology:
            raise ValueError(f"device {device_id!r}: topology needs 'sizes'")
        self.preset = preset
        self.config: CrossbarConfig = get_preset(preset).with_overrides(dict(overrides or {}))
        self.model = CrossbarNetwork(topology["sizes"], self.config, seed, topology.get("w_max"))
        c = self.config
        self.junctions = TestJunctions(
            JunctionParams(r_p_ohm=self.model.junctions_per_cell() * c.r_p_ohm, tmr0=c.tmr0, v_h_v=c.v_h_v,
                           delta=c.delta, tau0_s=c.tau0_s, i_c0_p2ap_a=c.i_c0_p2ap_a, i_c0_ap2p_a=c.i_c0_ap2p_a,
                           v_read_v=c.v_read_v, t_read_s=c.t_read_s, read_std=c.read_std, r_p_dtod=c.r_p_dtod,
                           tmr_dtod=c.tmr_dtod),
            TEST_JUNCTIONS, np.random.SeedSequence(int(seed), spawn_key=(2,)),  # a stream of their own
        )
        self.calibration_id = self.calibration_of(topology, preset, seed, self.config)

    # ------------------------------------------------------------------ contract
    def describe(self) -> dict[str, Any]:
        m = self.model
        info = m.describe()
        input_max = info["input_max"]
        c = self.config
        limits: dict[str, dict[str, Any]] = {
            "x": {"label": "input drive", "min": -input_max, "max": input_max, "unit": "V_read", "policy": "reject",
                  "doc": f"read drive; 1.0 = {c.v_read_v} V, safe limit {c.v_read_max_v} V"},
            "init": {"label": "initial neuron states", "min": 0.0, "max": 1.0, "unit": "1", "policy": "clip",
                     "doc": "neuron states to start from (measured ones carry read noise: clipped)"},
            "target": {"label": "output target", "min": 0.0, "max": 1.0, "unit": "1", "policy": "reject"},
            "beta": {"label": "nudging strength", "min": -MAX_ABS_BETA, "max": MAX_ABS_BETA, "unit": "1",
                     "policy": "reject"},
            "steps": {"label": "relaxation steps", "min": 1, "max": MAX_RELAX_STEPS, "unit": "1", "policy": "reject"},
            "batch": {"label": "batch", "min": 1, "max": MAX_BATCH, "unit": "sample", "policy": "reject",
                      "doc": "rows of x in one call"},
            "junction.v_v": {"label": "test-junction pulse amplitude", "min": -MAX_PULSE_V, "max": MAX_PULSE_V,
                             "unit": "V", "policy": "reject",
                             "doc": "positive pushes P → AP, negative AP → P; breakdown near 1 V"},
            "junction.t_s": {"label": "test-junction pulse length", "min": 1e-10, "max": 1e-3, "unit": "s",
                             "policy": "reject"},
            "work": {"label": "work of one call", "min": 1, "max": MAX_SAMPLE_UPDATES, "unit": "sample·update",
                     "policy": "reject", "doc": "batch × steps of a relax, batch × layers of a forward (checked by the driver)"},
        }
        resolution = {}
        for k, w_max in enumerate(m.w_max):
            for name in (f"W{k}", f"b{k}"):
                limits[name] = {"label": f"weights {name}", "min": -w_max, "max": w_max, "step": 2 * w_max,
                                "unit": "weight", "policy": "reject",
                                "doc": "programmed value; step = the largest |delta| one update may apply"}
                resolution[name] = w_max / (c.levels - 1) if c.levels else 0.0
        measured = {"std": c.read_std, "unit": "1", "doc": "read noise on every measured neuron output"}
        return {
            **self.identity(info["model_version"], info["topology"]),
            "levels": info["levels"],
            "limits": limits,
            "noise": {
                "forward": measured,
                "relax": measured,
                "program": {"std": {n: c.prog_std * m.w_max[m.layer_of(n)] for n in resolution},
                            "resolution": resolution, "unit": "weight",
                            "doc": "achieved − target of each cell written and not reported failed"},
                "read_weights": {"std": {n: 0.0 for n in resolution}, "unit": "weight",
                                 "doc": "each cell is integrated long enough that read noise averages out"},
            },
            "settings": settings_table(self.config),
            "structures": {
                "junction": {
                    "inputs": ["v_v", "t_s"],
                    "outputs": {"r_ohm": "Ω, at the end of each pulse under its bias (R–V loop)",
                                "r_read_ohm": "Ω, verify read at v_read_v after each pulse"},
                    "rows": TEST_JUNCTIONS,
                    "example_shape": [3, 4],
                    "doc": "binary test MTJs of the cells' stack: row i of v_v (rows, pulses) [V] and t_s [s] is "
                           "the pulse sequence applied to junction i; junctions keep their state between calls "
                           "(reset: P)",
                },
            },
        }

    def forward(self, x: np.ndarray, layers: Sequence[int] | None) -> OpResult:
        n = self.model.n_crossbars
        if layers is not None:
            layers = [int(k) for k in layers]
            if not layers:
                raise InvalidArgument("layers", "give at least one layer, or omit it for all")
            for k in layers:
                if not 0 <= k < n:
                    raise UnknownName("layers", f"layer {k} does not exist; layers are 0..{n - 1}")
            if any(b != a + 1 for a, b in zip(layers, layers[1:])):
                raise InvalidArgument("layers", f"layers must be consecutive and ascending, got {layers}")
        first = 0 if layers is None else layers[0]
        batch = self._check_batch("x", x, self.model.sizes[first])
        self._check_work("x", batch * (n if layers is None else len(layers)))
        outputs, report = self.model.forward(x, layers)
        return OpResult({"outputs": outputs, "layers": list(range(n)) if layers is None else layers}, report)

    def relax(
        self,
        x: np.ndarray,
        beta: float,
        target: np.ndarray | None,
        steps: int,
        init: Sequence[np.ndarray] | None,
    ) -> OpResult:
        self._check_relax(x, beta, target, steps, init)
        states, report = self.model.relax(x, beta, target, steps, init)
        return OpResult({"states": states}, report)

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
        sizes = self.model.sizes
        self._check_relax(x, beta, target, steps + sum(t for _, t in nudges), init)
        if any(b != 0.0 for b, _ in nudges) and target is None:
            raise InvalidArgument("target", "a nudged phase (beta != 0) needs a target")
        if layers is not None:
            bad = [k for k in layers if not 0 <= k < len(sizes) - 1]
            if bad or list(layers) != sorted(set(layers)) or not layers:
                raise InvalidArgument("layers", f"give neuron layers ascending, without repeats, within "
                                      f"0..{len(sizes) - 2}; got {list(layers)}")

    def _check_relax(self, x: np.ndarray, beta: float, target: np.ndarray | None, updates: int,
                     init: Sequence[np.ndarray] | None) -> None:
        sizes = self.model.sizes
        batch = self._check_batch("x", x, sizes[0])
        self._check_work("steps", batch * updates)
        if beta != 0.0 and target is None:
            raise InvalidArgument("target", "a nudged phase (beta != 0) needs a target")
        if target is not None:
            self._check_batch("target", target, sizes[-1], batch)
        if init is not None:
            if len(init) != len(sizes) - 1:
                raise InvalidArgument("init", f"give one state per neuron layer ({len(sizes) - 1}), got {len(init)}")
            for k, s in enumerate(init):
                self._check_batch(f"init[{k}]", s, sizes[k + 1], batch)

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
        """The phases on the chip: the nudged ones start from the settled state the chip holds."""
        self.check_relax(x, beta, target, steps, init, nudges, layers)
        states, nudged, report = self.model.relax_nudged(x, beta, target, steps, init, nudges, layers)
        return OpResult({"states": states, "nudged": nudged}, report)

    def idle(self) -> None:
        """Draw ahead the noise the next calls will use (:meth:`CrossbarNetwork.idle`), a block at a
        time for at most :data:`IDLE_BUDGET_S`; no answer changes whether it ran or not."""
        deadline = time.perf_counter() + IDLE_BUDGET_S
        while self.model.idle() and time.perf_counter() < deadline:
            pass

    def program_cells(self, cells: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> OpResult:
        self._check_weights("cells", {name: value for name, (_, value) in cells.items()}, shapes=False)
        shapes = self.model.weight_shapes()
        for name, (index, value) in cells.items():
            size = int(np.prod(shapes[name]))
            if index.ndim != 1 or index.shape != value.shape:
                raise InvalidArgument(f"cells.{name}", f"index and value must be 1-D of one length, got "
                                      f"{index.shape} and {value.shape}")
            if index.size and (index[0] < 0 or index[-1] >= size or np.any(index[1:] <= index[:-1])):
                raise InvalidArgument(f"cells.{name}.index", f"indices must increase strictly within 0..{size - 1}")
        achieved, report = self.model.program_cells(cells)
        return OpResult({"achieved": achieved}, report)

    def program(self, targets: Mapping[str, np.ndarray]) -> OpResult:
        self._check_weights("weights", targets)
        achieved, report = self.model.program(targets)
        return OpResult({"achieved": achieved}, report)

    def update(self, deltas: Mapping[str, np.ndarray]) -> OpResult:
        self._check_weights("deltas", deltas, signed_range=True)
        achieved, report = self.model.update(deltas)
        return OpResult({"achieved": achieved}, report)

    def probe(self, structure: str, inputs: Mapping[str, np.ndarray]) -> OpResult:
        if structure != "junction":
            raise UnknownName("structure", f"no test structure {structure!r}; the device has ['junction']")
        v, t = np.asarray(inputs["v_v"]), np.asarray(inputs["t_s"])
        if v.ndim != 2 or not 1 <= v.shape[0] <= TEST_JUNCTIONS or v.shape[1] < 1:
            raise InvalidArgument("inputs.v_v", f"expected shape (rows ≤ {TEST_JUNCTIONS}, pulses ≥ 1), "
                                  f"got {tuple(v.shape)}")
        if v.shape[1] > MAX_PROBE_SEQUENCE:
            raise InvalidArgument("inputs.v_v", f"{v.shape[1]} pulses per junction exceed the {MAX_PROBE_SEQUENCE} "
                                  "one call may apply; split the sequence (junctions keep their state)")
        if v.size > MAX_PROBE_PULSES:
            raise InvalidArgument("inputs.v_v", f"{v.size} pulses exceed the {MAX_PROBE_PULSES} one call may apply")
        try:
            t = np.broadcast_to(t, v.shape)
        except ValueError:
            raise InvalidArgument("inputs.t_s", f"shape {tuple(t.shape)} does not broadcast to v_v's "
                                  f"{tuple(v.shape)}") from None
        outputs, cost = self.junctions.pulse(v, t)
        c = self.config
        device_time = cost["device_time_s"]
        report = {"device_time_s": device_time,
                  "instrument_time_s": c.t_bus_s + v.size * c.t_write_verify_s + device_time,
                  "energy_j": cost["energy_pulse_j"] + cost["energy_read_j"],
                  "energy_terms_j": {"pulse": cost["energy_pulse_j"], "read": cost["energy_read_j"]},
                  "pulses": int(v.size)}
        return OpResult({"outputs": outputs}, report)

    def export_state(self) -> dict[str, np.ndarray]:
        """The crossbar's programmed cells and the test junctions' states (``junctions.state``: 0 P, 1 AP).

        A test junction is a non-volatile MTJ like the cells: the state a probe's pulses left is
        part of what the caller was answered, so it is persisted with the cells.
        """
        return {**self.model.export_state(), JUNCTION_STATE: self.junctions.state}

    def state_changes(self) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
        """The written cells (:meth:`CrossbarNetwork.state_changes`) and every test junction (a few bytes)."""
        changes = self.model.state_changes()
        if changes is None:
            return None
        return {**changes, JUNCTION_STATE: (np.arange(self.junctions.count), self.junctions.state.copy())}

    def restore_state(self, state: Mapping[str, np.ndarray]) -> None:
        state = dict(state)
        junctions = state.pop(JUNCTION_STATE, None)  # absent in a state saved before junctions were persisted
        if junctions is not None:
            junctions = np.asarray(junctions)
            if junctions.shape != self.junctions.state.shape or not np.isin(junctions, (0, 1)).all():
                raise ValueError(f"{JUNCTION_STATE}: expected {self.junctions.count} states of 0 (P) or 1 (AP)")
        self.model.restore_state(state)
        if junctions is not None:
            self.junctions.state = junctions.astype(np.int8)

    # ------------------------------------------------------------------ checks
    def _check_batch(self, field: str, a: np.ndarray, width: int, batch: int | None = None) -> int:
        if a.ndim != 2 or a.shape[1] != width or a.shape[0] < 1:
            raise InvalidArgument(field, f"expected shape (batch, {width}), got {tuple(a.shape)}")
        if a.shape[0] > MAX_BATCH:
            raise InvalidArgument(field, f"batch of {a.shape[0]} exceeds the {MAX_BATCH} one call may take; split it")
        if batch is not None and a.shape[0] != batch:
            raise InvalidArgument(field, f"batch size {a.shape[0]} differs from x's {batch}")
        return a.shape[0]

    def _check_work(self, field: str, work: int) -> None:
        if work > MAX_SAMPLE_UPDATES:
            raise InvalidArgument(field, f"batch × steps = {work} exceeds the {MAX_SAMPLE_UPDATES} sample-updates one "
                                  "call may take; split the batch")

    def _check_weights(self, field: str, arrays: Mapping[str, np.ndarray], signed_range: bool = False,
                       shapes: bool = True) -> None:
        if not arrays:
            raise InvalidArgument(field, "name at least one array (W0, b0, …)")
        m = self.model
        for name, a in arrays.items():
            try:
                k = m.layer_of(name)
            except (KeyError, ValueError):
                raise UnknownName(f"{field}.{name}", f"no such array; the device has {m.describe()['topology']['weights']}") from None
            shape = m.weight_shapes()[name]
            if shapes and tuple(a.shape) != shape:
                raise InvalidArgument(f"{field}.{name}", f"expected shape {shape}, got {tuple(a.shape)}")
            if signed_range and np.any(np.abs(a) > 2 * m.w_max[k]):
                raise InvalidArgument(f"{field}.{name}", f"a delta beyond ±{2 * m.w_max[k]:.4g} cannot be applied")
