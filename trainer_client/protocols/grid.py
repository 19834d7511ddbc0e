"""The trainer's record of what a device with a weight grid holds, and the writes that move it.

A device that declares a grid (``describe()['noise']['program']['resolution']``: the level
spacing ``r`` of each weight array, DESIGN.md §7 ``levels``) holds every cell at a level
``q ∈ [−q_max, q_max]``, the weight ``q·r``; ``q_max·r = w_max``. The trainer decides the level of
each cell from its hidden weight ``w`` — ``q = rint(clip(w/r, ±q_max))``, the nearest level of the
clipped weight, computed in float32 (a level boundary sits within ``q_max·2⁻²³`` of a level of the
exact ``(q ± ½)·r``) — and sends levels, never floats for the device to
re-quantise: a single-cell write is a packed mask of the cells whose level changed and their
levels as small integers (docs/api.md, ``cells``; or their indices, when fewer bytes), a whole write is every cell that way (or, to a
device that takes no single cells, the weights ``q·r`` that sit exactly on its grid). What the
device was told to hold is then exactly the record, whatever rounding its driver would apply to
floats, and a write that follows needs only the cells whose level differs from it.

The record is kept only once a write is acknowledged (:meth:`GridRecord.commit`) and dropped
after any write whose fate is unknown (:meth:`GridRecord.forget`): the next write is then whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class GridRecord:
    """Levels of every cell of the named weight arrays, as the device was last told to hold them.

    ``resolution[name]``: level spacing ``r`` (weight units), ``w_max[name]``: the array's range.
    """

    def __init__(self, resolution: Mapping[str, float], w_max: Mapping[str, float]) -> None:
        self.resolution = {name: float(r) for name, r in resolution.items()}
        self._inverse = {name: np.float32(1.0 / r) for name, r in self.resolution.items()}
        #: the outermost level ``q_max = w_max/r`` (an integer on a grid that ends at ``±w_max``)
        self.top = {name: int(np.rint(float(w_max[name]) / r)) for name, r in self.resolution.items()}
        #: levels travel in the smallest integer type that holds ``±q_max`` (a byte for 32 per polarity)
        self.dtype = {name: np.min_scalar_type(-top - 1) for name, top in self.top.items()}
        self.held: dict[str, np.ndarray] | None = None
        self.holder: Any = None
        self._scratch: dict[str, np.ndarray] = {}

    def levels(self, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Level of every cell: ``rint(clip(w/r, ±q_max))`` (three passes over float32, no float64)."""
        out = {}
        for name, w in weights.items():
            scaled = self._scratch.get(name)
            if scaled is None or scaled.shape != w.shape:
                scaled = self._scratch[name] = np.empty(w.shape, np.float32)
            np.multiply(w, self._inverse[name], out=scaled, casting="same_kind")
            np.rint(scaled, out=scaled)
            top = self.top[name]
            out[name] = np.clip(scaled, -top, top, out=np.empty(w.shape, self.dtype[name]), casting="unsafe")
        return out

    def cells(self, levels: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """The write that moves the device from the record to ``levels``: per array the cells whose
        level changed (every cell when there is no record) and their new levels — ``{"index",
        "level"}`` (flat indices, the smallest unsigned type that holds them) or ``{"mask",
        "level"}`` (a bit per cell, packed, row-major), whichever costs less: a mask is a fixed
        ``size/8`` bytes but the server unpacks and scans every cell of the array to read it
        (≈ 0.35 ms for 784×512), indices cost only their bytes; they are sent while they take at
        most twice the mask's bytes (a training step's ≈ 10k changed cells of W0, often).
        Arrays with no change are left out (an empty dict: nothing to write)."""
        out = {}
        for name, q in levels.items():
            flat = q.reshape(-1)
            if self.held is None:
                out[name] = {"mask": np.packbits(np.ones(flat.size, bool)), "level": flat}
                continue
            changed = np.not_equal(flat, self.held[name].reshape(-1))
            index = np.flatnonzero(changed)  # then a gather: a boolean index is ~6x slower at a 1-in-6 density
            if not index.size:
                continue
            small = np.min_scalar_type(flat.size - 1)
            if index.size * small.itemsize <= 2 * ((flat.size + 7) // 8):
                out[name] = {"index": index.astype(small), "level": flat.take(index)}
            else:
                out[name] = {"mask": np.packbits(changed), "level": flat.take(index)}
        return out

    def values(self, levels: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The weights the levels stand for, ``q·r`` (float32): a whole-array write on the grid."""
        return {name: np.multiply(q, np.float32(self.resolution[name]), dtype=np.float32)
                for name, q in levels.items()}

    def commit(self, levels: dict[str, np.ndarray], holder: Any) -> None:
        """The device acknowledged a write of ``levels`` under ``holder`` (a lease): the new record."""
        self.held, self.holder = levels, holder

    def forget(self) -> None:
        """What the device holds is unknown (a failed or unanswered write): the next write is whole."""
        self.held = None
