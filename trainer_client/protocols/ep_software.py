"""The software reference of an EP run: the same network and maths in NumPy, no device.

Every device run is shown beside this one (DESIGN.md §7: "as good as the software network").
It implements the two operations EP uses (:class:`~trainer_client.protocols.ep.EPDevice`) so the
very same :class:`~trainer_client.protocols.ep.EPTrainer` drives it: weights are stored exactly
as sent (clipped to the device's range, no grid, no programming error), and ``relax`` iterates the
synchronous dynamics of the device (Laborieux et al., Front. Neurosci. 15:633674 (2021))

    s_n ← (1−κ) s_n + κ ρ(W_{n−1} s_{n−1} + b_{n−1} + W_nᵀ s_{n+1} [+ β (y − s_N) for n = N]),

with the input drive ``W₀x + b₀`` computed once per call, in float32, without read noise.
The neuron response ``ρ`` is the device's own (its digital twin, :func:`device_models.stno.response`),
read from the device's declared settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from device_models.stno import response


class SoftwareDevice:
    """An ideal, noiseless, in-process stand-in for a crossbar network described by ``settings``."""

    def __init__(self, sizes: Sequence[int], w_max: Sequence[float], settings: Mapping[str, Any]) -> None:
        def value(name: str) -> Any:
            entry = settings[name]
            return entry["value"] if isinstance(entry, Mapping) else entry

        self.sizes = tuple(sizes)
        self.w_max = tuple(w_max)
        self.activation = str(value("activation")) if "activation" in settings else "stno"
        self.q = float(value("q_damping"))
        self.zeta_max = float(value("zeta_max"))
        self.rate = float(value("relax_rate"))
        self.weights: dict[str, np.ndarray] = {}

    def program(self, weights: Mapping[str, np.ndarray], return_achieved: bool = True) -> dict[str, Any]:
        for name, w in weights.items():
            bound = self.w_max[int(name[1:])]
            self.weights[name] = np.clip(np.asarray(w, dtype=np.float32), -bound, bound)
        out: dict[str, Any] = {"report": {"device_time_s": 0.0, "instrument_time_s": 0.0, "energy_j": 0.0}}
        if return_achieved:
            out["achieved"] = {k: self.weights[k].copy() for k in weights}
        return out

    def relax(self, x: np.ndarray, beta: float = 0.0, target: np.ndarray | None = None, steps: int = 20,
              init: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
        w = self.weights
        n = len(self.sizes) - 1
        x = np.asarray(x, dtype=np.float32)
        batch = x.shape[0]
        states = ([np.zeros((batch, self.sizes[k + 1]), np.float32) for k in range(n)] if init is None
                  else [np.array(s, dtype=np.float32) for s in init])
        drive = x @ w["W0"].T + w["b0"]
        for _ in range(steps):
            new = []
            for k in range(n):
                if k + 1 == n and beta != 0.0:  # the device's order: (W s + (b + βy)) − βs
                    pull = np.float32(beta) * np.asarray(target, np.float32)
                    if k:
                        h = states[k - 1] @ w[f"W{k}"].T
                        h += w[f"b{k}"] + pull
                    else:  # a single crossbar: its bias is in the drive
                        h = drive.copy()
                        h += pull
                    h -= np.float32(beta) * states[k]
                else:
                    h = drive.copy() if k == 0 else states[k - 1] @ w[f"W{k}"].T + w[f"b{k}"]
                if k + 1 < n:
                    h += states[k + 1] @ w[f"W{k + 1}"]
                s = response(self.activation, h, self.q, self.zeta_max)
                if self.rate != 1.0:
                    s = states[k] + np.float32(self.rate) * (s - states[k])
                new.append(s)
            states = new
        return {"states": states, "report": {"device_time_s": 0.0, "instrument_time_s": 0.0, "energy_j": 0.0}}
