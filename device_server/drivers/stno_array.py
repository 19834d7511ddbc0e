"""Emulated STNO array chip behind the Driver contract (physics in :mod:`device_models.stno_array`).

Operations: ``drive`` (an input sequence in, recorded traces out), ``program`` and
``read_weights`` of the couplings ``W_in``, ``b``, ``W_rec``. Every input of ``drive`` has a
declared limit the server enforces for all drivers alike — the input current ``u`` within the
safe-operating ``|I| ≤ ζ_max·I_th``, the step ``dt`` within what the integration resolves, batch,
steps, what to record — and the driver checks what only it can (shapes, the work of one call,
the size of the answer) before the chip is touched, so a refused call draws no noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from device_models.config import settings_table
from device_models.presets.stno import SOURCES, get_stno_preset
from device_models.stno_array import QUANTITIES, StnoArray
from device_models.stno_config import StnoConfig
from device_models.stno_sde import MIN_SPECTRUM_SAMPLES
from device_server.drivers.base import Driver, InvalidArgument, OpResult, UnknownName
from device_server.drivers.model_backed import ModelBacked

#: Largest number of integration steps of one ``drive`` call.
MAX_STEPS = 1_000_000
#: Largest batch (sequences) of one call.
MAX_BATCH = 4096
#: Largest work of one call, in sequence × step × oscillator: a call holds the instrument.
MAX_WORK = 2_000_000_000
#: Largest number of values one answer may carry (traces of every quantity): 80 MB of float32.
MAX_VALUES = 20_000_000
#: The step must resolve the fastest relaxation by this margin (Γ_G(ζ_max+Q)·dt ≤ it; N·p·dt ≤ twice it).
DT_RESOLUTION = 0.05


class EmulatedStnoArray(ModelBacked, Driver):
    """A :class:`~device_models.stno_array.StnoArray` served as an instrument.

    Lab entry: ``topology = {oscillators = N, inputs = M}``, ``preset`` (``uniform-mgo`` or
    ``vortex-feb``), ``seed``, ``overrides`` of single settings.
    """

    kind = "stno-array"
    driver_type = "emulated"
    capabilities = frozenset({"describe", "drive", "program", "read_weights"})
    conformance_entry = {"topology": {"oscillators": 6, "inputs": 3}, "preset": "uniform-mgo", "seed": 5,
                         "overrides": {"coupling_prog_std": 0.001}}

    def __init__(self, device_id: str, topology: Mapping[str, Any], preset: str = "uniform-mgo", seed: int = 0,
                 overrides: Mapping[str, Any] | None = None) -> None:
        super().__init__(device_id, seed)
        unknown = set(topology) - {"oscillators", "inputs"}
        if unknown:
            raise ValueError(f"device {device_id!r}: unknown topology key(s) {sorted(unknown)}")
        if "oscillators" not in topology:
            raise ValueError(f"device {device_id!r}: topology needs 'oscillators' (and optionally 'inputs')")
        n = topology["oscillators"]
        m = topology.get("inputs", n)
        if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in (n, m)):
            raise ValueError(f"device {device_id!r}: oscillators and inputs must be integers in [1, 4096]")
        self.preset = preset
        self.config: StnoConfig = get_stno_preset(preset).with_overrides(dict(overrides or {}))
        self.model = StnoArray(n, m, self.config, seed)
        self.calibration_id = self.calibration_of(topology, preset, seed, self.config)

    def dt_max_s(self) -> float:
        """[s] largest step that resolves relaxation and rotation of the fastest oscillator."""
        osc, c = self.model.osc, self.config
        fastest = float(np.max(osc.gamma_g * osc.threshold_scale)) * (c.zeta_max + c.q_damping)
        rotation = float(np.max(np.abs(osc.n_shift)))  # N·p·dt with p ≤ 1
        return min(DT_RESOLUTION / fastest, 2 * DT_RESOLUTION / max(rotation, 1e-30))

    # ------------------------------------------------------------------ contract
    def describe(self) -> dict[str, Any]:
        m, c = self.model, self.config
        n = m.n
        w_max = m.weight_max()
        limits: dict[str, dict[str, Any]] = {
            "u": {"label": "input current", "min": -c.zeta_max, "max": c.zeta_max, "unit": "I_th", "policy": "reject",
                  "doc": f"current of each input line at each step, in units of I_th = {c.i_th_a:g} A: the "
                         f"safe-operating limit |I| ≤ ζ_max·I_th (the summed current of an oscillator is "
                         f"limited to the same by the source's compliance, counted in report.current_clipped)"},
            "dt": {"label": "time step", "min": 1e-15, "max": self.dt_max_s(), "unit": "s", "policy": "reject",
                   "doc": "duration of one input sample and integration step; the maximum resolves the "
                          "fastest relaxation Γ_G(ζ_max+Q) and the nonlinear rotation N·p"},
            "steps": {"label": "steps", "min": 1, "max": MAX_STEPS, "unit": "1", "policy": "reject",
                      "doc": "length of the input sequence (u.shape[1])"},
            "batch": {"label": "batch", "min": 1, "max": MAX_BATCH, "unit": "sequence", "policy": "reject",
                      "doc": "sequences in one call (u.shape[0])"},
            "every": {"label": "record every", "min": 1, "max": MAX_STEPS, "unit": "step", "policy": "reject",
                      "doc": "steps between two recorded samples"},
            "start": {"label": "record from", "min": 0, "max": MAX_STEPS, "unit": "step", "policy": "reject",
                      "doc": "first step recorded (skip a transient)"},
            "oscillators": {"label": "recorded oscillators", "min": 0, "max": n - 1, "unit": "index",
                            "policy": "reject", "doc": "indices of the oscillators to record (all when omitted)"},
            "work": {"label": "work of one call", "min": 1, "max": MAX_WORK, "unit": "sequence·step·oscillator",
                     "policy": "reject", "doc": "batch × steps × oscillators (checked by the driver)"},
            "values": {"label": "recorded values", "min": 0, "max": MAX_VALUES, "unit": "value", "policy": "reject",
                       "doc": "batch × samples × recorded oscillators × quantities (checked by the driver)"},
        }
        for name, w in w_max.items():
            limits[name] = {"label": f"coupling {name}", "min": -w, "max": w, "unit": "I_th" if name == "b" else
                            "I_th/unit", "policy": "reject", "doc": {
                                "W_in": "input coupling: I_th per unit of input current",
                                "b": "bias current of each oscillator",
                                "W_rec": "recurrent coupling: I_th per unit of the source oscillator's power p"}[name]}
        info = m.describe()
        return {
            **self.identity(info["model_version"], info["topology"]),
            "limits": limits,
            "quantities": list(QUANTITIES),
            "noise": {
                "drive": {"read_std": c.read_std, "unit": "1", "doc": "relative read noise of each power sample; "
                          "thermal noise is part of the physics (temperature_k)"},
                "program": {"std": {k: c.coupling_prog_std * 2 * w for k, w in w_max.items()},
                            "resolution": {k: 0.0 for k in w_max}, "unit": "I_th",
                            "doc": "achieved − target of each coupling written"},
                "read_weights": {"std": {k: 0.0 for k in w_max}, "unit": "I_th"},
            },
            "settings": settings_table(self.config),
            "sources": SOURCES.get(self.preset, {}),
        }

    def drive(self, u: np.ndarray, dt: float, oscillators: Sequence[int] | None, every: int, start: int,
              quantities: Sequence[str]) -> OpResult:
        m = self.model
        if u.ndim != 3 or u.shape[2] != m.m or u.shape[0] < 1 or u.shape[1] < 1:
            raise InvalidArgument("u", f"expected shape (batch, steps, {m.m}), got {tuple(u.shape)}")
        batch, steps, _ = u.shape
        if batch * steps * m.n > MAX_WORK:
            raise InvalidArgument("u", f"batch × steps × oscillators = {batch * steps * m.n} exceeds the {MAX_WORK} "
                                  "one call may take; split the batch or the sequence")
        if oscillators is not None:
            if len(oscillators) == 0:
                raise InvalidArgument("record.oscillators", "name at least one oscillator, or omit it for all")
            bad = [k for k in oscillators if not 0 <= k < m.n]
            if bad:
                raise UnknownName("record.oscillators", f"oscillator(s) {bad} do not exist; they are 0..{m.n - 1}")
        unknown = sorted(set(quantities) - set(QUANTITIES))
        if unknown or not quantities:
            raise InvalidArgument("record.quantities", f"unknown or no quantities {unknown}; known: {list(QUANTITIES)}")
        if start >= steps:
            raise InvalidArgument("record.start", f"start {start} is not before the end of the sequence ({steps} steps)")
        n_rec = m.n if oscillators is None else len(oscillators)
        samples = (steps - start) // every
        if samples < 1:
            raise InvalidArgument("record.every", f"every {every} from step {start} records no sample of {steps} steps")
        if "spectrum" in quantities and samples < MIN_SPECTRUM_SAMPLES:
            raise InvalidArgument("record.quantities", f"a spectrum needs at least {MIN_SPECTRUM_SAMPLES} samples, "
                                  f"every {every} from step {start} of {steps} steps records {samples}; record "
                                  "more often (every), from an earlier step (start) or a longer sequence")
        values = batch * samples * n_rec * len(set(quantities))
        if values > MAX_VALUES:
            raise InvalidArgument("record", f"{values} recorded values exceed the {MAX_VALUES} one answer may carry; "
                                  "record fewer oscillators, less often (every) or from a later step (start)")
        traces, report = m.drive(u, dt, oscillators, every, start, tuple(dict.fromkeys(quantities)))
        return OpResult({"traces": traces}, report)

    def program(self, targets: Mapping[str, np.ndarray]) -> OpResult:
        if not targets:
            raise InvalidArgument("weights", f"name at least one coupling array {list(self.model.weight_shapes())}")
        for name, a in targets.items():
            shape = self.model.weight_shapes().get(name)
            if shape is None:
                raise UnknownName(f"weights.{name}", f"no such array; the device has {list(self.model.weight_shapes())}")
            if tuple(a.shape) != shape:
                raise InvalidArgument(f"weights.{name}", f"expected shape {shape}, got {tuple(a.shape)}")
        achieved, report = self.model.program(targets)
        return OpResult({"achieved": achieved}, report)
