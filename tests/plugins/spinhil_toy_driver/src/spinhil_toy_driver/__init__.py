"""An ideal linear layer ``y = W x`` behind the SpinHIL Driver contract.

What a minimal driver needs: a kind, the operations it implements (here forward, program and
read_weights, no relax or update), a declaration of every input's limits, time and energy in
each report, its programmed state exported and restored (so a write survives a restart), and a
small ``conformance_entry`` so the conformance kit can check it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from device_server.drivers.base import Driver, InvalidArgument, OpResult, UnknownName

T_READ_S = 10e-9  # integration time of one read of the whole array
T_BUS_S = 1e-3  # bench round trip
E_MAC_J = 1e-15  # energy of one multiply-accumulate
T_WRITE_CELL_S = 100e-9


class ToyLinear(Driver):
    kind = "toy-linear"
    driver_type = "emulated"
    capabilities = frozenset({"describe", "forward", "program", "read_weights"})
    conformance_entry = {"n_in": 5, "n_out": 3, "seed": 0}

    def __init__(self, device_id: str, n_in: int, n_out: int, seed: int = 0) -> None:
        super().__init__(device_id, seed)
        if n_in < 1 or n_out < 1:
            raise ValueError("n_in and n_out must be ≥ 1")
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.w = np.random.default_rng(seed).uniform(-0.1, 0.1, (self.n_out, self.n_in))

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.device_id, "kind": self.kind, "driver": self.driver_type, "model_version": "toy-1",
            "seed": self.seed, "capabilities": sorted(self.capabilities),
            "topology": {"sizes": [self.n_in, self.n_out], "weights": ["W0"], "shapes": {"W0": [self.n_out, self.n_in]}},
            "limits": {
                "x": {"label": "input", "unit": "V", "min": -1.0, "max": 1.0, "policy": "reject"},
                "batch": {"label": "batch", "unit": "sample", "min": 1, "max": 1024, "policy": "reject"},
                "W0": {"label": "weights", "unit": "1", "min": -1.0, "max": 1.0, "policy": "clip"},
            },
            "noise": {"forward": {"std": 0.0, "unit": "V"}, "program": {"std": {"W0": 0.0}, "unit": "1"},
                      "read_weights": {"std": {"W0": 0.0}, "unit": "1"}},
        }

    def _report(self, device_time_s: float, energy_j: float) -> dict[str, Any]:
        return {"device_time_s": device_time_s, "instrument_time_s": T_BUS_S + device_time_s, "energy_j": energy_j,
                "energy_terms_j": {"compute": energy_j}}

    def forward(self, x: np.ndarray, layers: Sequence[int] | None) -> OpResult:
        if layers is not None and list(layers) != [0]:
            raise UnknownName("layers", f"layers {list(layers)} do not exist; this device has one layer, 0")
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise InvalidArgument("x", f"expected shape (batch, {self.n_in}), got {tuple(x.shape)}")
        y = (x.astype(np.float64) @ self.w.T).astype(np.float32)
        batch = x.shape[0]
        return OpResult({"outputs": [y], "layers": [0]},
                        self._report(batch * T_READ_S, batch * self.w.size * E_MAC_J))

    def program(self, targets: Mapping[str, np.ndarray]) -> OpResult:
        w = np.asarray(targets["W0"], dtype=np.float64)
        if w.shape != self.w.shape:
            raise InvalidArgument("weights.W0", f"expected shape {self.w.shape}, got {w.shape}")
        changed = int(np.count_nonzero(w != self.w))
        self.w = w.copy()
        return OpResult({"achieved": {"W0": self.w.astype(np.float32)}},
                        self._report(changed * T_WRITE_CELL_S, changed * 1e-12))

    def read_weights(self) -> OpResult:
        return OpResult({"weights": {"W0": self.w.astype(np.float32)}},
                        self._report(self.w.size * T_READ_S, self.w.size * E_MAC_J))

    # non-volatile state: the server persists it after every acknowledged write
    def export_state(self) -> dict[str, np.ndarray]:
        return {"w": self.w}

    def restore_state(self, state: Mapping[str, np.ndarray]) -> None:
        w = np.asarray(state.get("w"))
        if set(state) != {"w"} or w.shape != self.w.shape or w.dtype != np.float64:
            raise ValueError(f"state must be {{'w': float64 {self.w.shape}}}")
        self.w = np.array(w, copy=True)
