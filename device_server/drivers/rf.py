"""Emulated RF spin-diode network behind the Driver contract (physics in :mod:`device_models.rf_network`).

Programmable arrays are the resonance frequencies ``F{l}`` [Hz] of every chain resonator; ``forward``
takes input tone powers in units of ``P_max``; the test structure ``resonator`` is a single spin
diode whose rectified voltage one measures against frequency (``hil-train characterize``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from device_models.config import settings_table
from device_models.rf_network import MODEL_VERSION, RF_PRESETS, RFConfig, RFNetwork
from device_server.drivers.base import Driver, InvalidArgument, OpResult, UnknownName
from device_server.drivers.model_backed import ModelBacked

#: Largest batch of one forward.
MAX_BATCH = 8192
#: Largest work of one forward (sample × layer).
MAX_SAMPLE_LAYERS = 200_000
#: Largest number of points one resonator probe may measure.
MAX_PROBE_POINTS = 1_000_000


class EmulatedRFNetwork(ModelBacked, Driver):
    """An :class:`~device_models.rf_network.RFNetwork` served as an instrument.

    Lab entry: ``topology = {sizes = [n_inputs, hidden…, n_outputs]}``, ``preset`` (``default-v1`` or
    ``ideal``), ``seed``, ``overrides`` of single settings.
    """

    kind = "rf-network"
    driver_type = "emulated"
    capabilities = frozenset({"describe", "forward", "program", "read_weights", "probe"})
    conformance_entry = {"topology": {"sizes": [8, 6, 3]}, "preset": "default-v1", "seed": 5}

    def __init__(self, device_id: str, topology: Mapping[str, Any], preset: str = "default-v1", seed: int = 0,
                 overrides: Mapping[str, Any] | None = None) -> None:
        super().__init__(device_id, seed)
        unknown = set(topology) - {"sizes"}
        if unknown or "sizes" not in topology:
            raise ValueError(f"device {device_id!r}: topology takes exactly 'sizes', got {sorted(topology)}")
        if preset not in RF_PRESETS:
            raise ValueError(f"device {device_id!r}: unknown preset {preset!r}; known: {sorted(RF_PRESETS)}")
        self.preset = preset
        self.config: RFConfig = RF_PRESETS[preset].with_overrides(dict(overrides or {}))
        self.model = RFNetwork(topology["sizes"], self.config, seed)
        self.calibration_id = self.calibration_of(topology, preset, seed, self.config)

    def describe(self) -> dict[str, Any]:
        m, c = self.model, self.config
        limits: dict[str, dict[str, Any]] = {
            "x": {"label": "input tone power", "min": 0.0, "max": 1.0, "unit": "P_max", "policy": "reject",
                  "doc": f"power of each input tone; 1.0 = {c.p_max_w} W"},
            "batch": {"label": "batch", "min": 1, "max": MAX_BATCH, "unit": "sample", "policy": "reject"},
            "resonator.f_hz": {"label": "drive frequency", "min": 1e8, "max": 1e11, "unit": "Hz", "policy": "reject"},
            "resonator.p_w": {"label": "drive power", "min": 0.0, "max": 10 * c.p_max_w, "unit": "W",
                              "policy": "reject"},
            "resonator.f_r_hz": {"label": "resonance frequency", "min": 1e8, "max": 1e11, "unit": "Hz",
                                 "policy": "reject"},
            "resonator.position": {"label": "position in the chain", "min": 0, "max": 4096, "unit": "1",
                                   "policy": "reject", "doc": "k (rounded down to a whole number): the sign of the response is (−1)^k"},
        }
        std, resolution = {}, {}
        for name in m.weight_names():
            lo, hi = m.frequency_range_hz(m.layer_of(name))
            limits[name] = {"label": f"resonance frequencies {name}", "min": lo, "max": hi, "unit": "Hz",
                            "policy": "reject"}
            std[name] = c.f_prog_std * hi
            resolution[name] = 0.0
        return {
            **self.identity(MODEL_VERSION, {"sizes": list(m.sizes), "weights": m.weight_names(),
                                            "shapes": {n: list(s) for n, s in m.weight_shapes().items()},
                                            "input_frequencies_hz": m.f_in_hz.tolist(),
                                            "bias_frequencies_hz": list(m.f_bias_hz),
                                            "neuron_frequencies_hz": [f.tolist() for f in m.f0_hz]}),
            "limits": limits,
            "noise": {"forward": {"std": c.read_std, "unit": "1"},
                      "program": {"std": std, "resolution": resolution, "unit": "Hz",
                                  "doc": "achieved − target of each resonance frequency retuned"},
                      "read_weights": {"std": {n: 0.0 for n in std}, "unit": "Hz"}},
            "settings": settings_table(c),  # type: ignore[arg-type]
            "structures": {"resonator": {
                "inputs": ["f_hz", "p_w", "f_r_hz", "position"],
                "outputs": {"v_v": "V, rectified DC voltage"},
                "example_shape": [2, 5],
                "doc": "a test spin diode of nominal α and K, tuned to f_r_hz, at chain position k, driven by "
                       "one tone (f_hz, p_w); the inputs broadcast against each other",
            }},
        }

    def forward(self, x: np.ndarray, layers: Sequence[int] | None) -> OpResult:
        m = self.model
        if layers is not None:
            layers = [int(k) for k in layers]
            if not layers:
                raise InvalidArgument("layers", "give at least one layer, or omit it for all")
            for k in layers:
                if not 0 <= k < m.n_layers:
                    raise UnknownName("layers", f"layer {k} does not exist; layers are 0..{m.n_layers - 1}")
            if any(b != a + 1 for a, b in zip(layers, layers[1:])):
                raise InvalidArgument("layers", f"layers must be consecutive and ascending, got {layers}")
        first = 0 if layers is None else layers[0]
        width = m.sizes[first]
        if x.ndim != 2 or x.shape[1] != width or x.shape[0] < 1:
            raise InvalidArgument("x", f"expected shape (batch, {width}), got {tuple(x.shape)}")
        if x.shape[0] * (m.n_layers if layers is None else len(layers)) > MAX_SAMPLE_LAYERS:
            raise InvalidArgument("x", f"batch × layers beyond the {MAX_SAMPLE_LAYERS} one call may take; split it")
        outputs, report = m.forward(x, layers)
        return OpResult({"outputs": outputs, "layers": list(range(m.n_layers)) if layers is None else layers}, report)

    def program(self, targets: Mapping[str, np.ndarray]) -> OpResult:
        m = self.model
        if not targets:
            raise InvalidArgument("weights", f"name at least one array ({m.weight_names()})")
        for name, a in targets.items():
            if name not in m.weight_names():
                raise UnknownName(f"weights.{name}", f"no such array; the device has {m.weight_names()}")
            shape = m.weight_shapes()[name]
            if tuple(a.shape) != shape:
                raise InvalidArgument(f"weights.{name}", f"expected shape {shape}, got {tuple(a.shape)}")
        achieved, report = m.program(targets)
        return OpResult({"achieved": achieved}, report)

    def probe(self, structure: str, inputs: Mapping[str, np.ndarray]) -> OpResult:
        if structure != "resonator":
            raise UnknownName("structure", f"no test structure {structure!r}; the device has ['resonator']")
        try:
            f, p, f_r, k = np.broadcast_arrays(*(np.asarray(inputs[n], dtype=np.float64)
                                                 for n in ("f_hz", "p_w", "f_r_hz", "position")))
        except ValueError:
            raise InvalidArgument("inputs", "f_hz, p_w, f_r_hz and position must broadcast to one shape") from None
        if f.size > MAX_PROBE_POINTS:
            raise InvalidArgument("inputs", f"the inputs broadcast to {f.size} points, beyond the {MAX_PROBE_POINTS} "
                                  "one call may take")
        c = self.config
        v = self.model.resonator_v(f, p, f_r, np.floor(k))
        device_time = f.size * c.t_integrate_s
        energy = float(p.sum()) * c.t_integrate_s
        report = {"device_time_s": device_time, "instrument_time_s": c.t_bus_s + f.size * c.t_sample_s + device_time,
                  "energy_j": energy, "energy_terms_j": {"rf": energy}}
        return OpResult({"outputs": {"v_v": v}}, report)
