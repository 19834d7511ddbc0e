"""Where a forward-only protocol gets its layer outputs: a device over HTTP, or exact software.

Forward-Forward and SCFF need two things from hardware: program the weights, and measure one
layer's output for an input (DESIGN.md §2, ``forward(x, layers=[k])``). :class:`DeviceLayers`
does both on a held lease; :class:`SoftwareLayers` is the software reference of the issue —
the same network (same activation, same weight range), float64, no device.

:class:`DeviceLayers` splits large batches so that one call stays within the device's declared
``batch`` and ``work`` limits, and sends arrays in the device's own float type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from trainer_client.protocols.goodness import STNOActivation


class Layers(Protocol):
    """What FF and SCFF need: a layered network ``sizes`` with weight range ``w_max``."""

    sizes: tuple[int, ...]
    w_max: tuple[float, ...]
    activation: STNOActivation

    def program(self, weights: Mapping[str, np.ndarray]) -> None: ...

    def forward_layer(self, k: int, u: np.ndarray) -> np.ndarray: ...


def clipped(weights: Mapping[str, np.ndarray], w_max: Sequence[float]) -> dict[str, np.ndarray]:
    """The weights clipped to each crossbar's declared range (what can be programmed)."""
    return {name: np.clip(w, -w_max[int(name[1:])], w_max[int(name[1:])]) for name, w in weights.items()}


class DeviceLayers:
    """Layers of a device held by a lease (:class:`trainer_client.client.Lease`)."""

    def __init__(self, lease: Any, info: Mapping[str, Any] | None = None) -> None:
        self.lease = lease
        info = info or lease.describe()
        self.sizes = tuple(info["topology"]["sizes"])
        self.w_max = tuple(info["topology"]["w_max"])
        self.activation = STNOActivation.from_describe(info)
        limits = info["limits"]
        self.input_max = float(limits["x"]["max"])
        self.max_batch = int(limits["batch"]["max"])
        self.max_work = int(limits["work"]["max"])
        #: the device computes in this type: arrays travel in it (half the bytes of float64 for float32)
        self.dtype = np.dtype(info.get("settings", {}).get("dtype", {}).get("value", "float64"))

    def program(self, weights: Mapping[str, np.ndarray]) -> None:
        self.lease.program({k: w.astype(self.dtype) for k, w in clipped(weights, self.w_max).items()},
                           return_achieved=False)

    def forward_layer(self, k: int, u: np.ndarray) -> np.ndarray:
        """Measured output of layer ``k`` (crossbar ``k`` and its neurons) for inputs ``u``."""
        if u.size and float(np.max(np.abs(u))) > self.input_max:
            raise ValueError(f"input to layer {k} reaches |x| = {np.max(np.abs(u)):.4g}, beyond the device's "
                             f"limit {self.input_max:.4g}; scale it on the client")
        step = min(self.max_batch, self.max_work)
        u = u.astype(self.dtype, copy=False)
        outs = [self.lease.forward(u[i:i + step], [k])["outputs"][0] for i in range(0, len(u), step)]
        return np.concatenate(outs) if len(outs) > 1 else outs[0]


class SoftwareLayers:
    """The software reference: ``y = ρ(W u + b)`` in float64, weights clipped to the same range."""

    def __init__(self, sizes: Sequence[int], w_max: Sequence[float], activation: STNOActivation) -> None:
        self.sizes = tuple(sizes)
        self.w_max = tuple(w_max)
        self.activation = activation
        self._weights: dict[str, np.ndarray] = {}

    def program(self, weights: Mapping[str, np.ndarray]) -> None:
        self._weights = {k: np.asarray(v, dtype=np.float64) for k, v in clipped(weights, self.w_max).items()}

    def forward_layer(self, k: int, u: np.ndarray) -> np.ndarray:
        return self.activation(np.asarray(u, dtype=np.float64) @ self._weights[f"W{k}"].T + self._weights[f"b{k}"])
