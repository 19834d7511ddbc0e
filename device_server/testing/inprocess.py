"""A driver object behind the interface a trainer uses on a held lease — no HTTP, no codec, no server.

What benchmarks compare the HTTP path with (``in_process`` in benchmarks/ep_epoch.py), and what
tests use to check that a request over HTTP does exactly what the driver does. It runs the same
driver methods the server's routes call, in the same order, without the server's checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from device_server.drivers.base import Driver
from device_server.validation import decode_cells


class InProcessDevice:
    """``program``, ``program_cells`` and ``relax`` (with nudged phases and a carried write) on ``driver``."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def program(self, weights: Mapping[str, np.ndarray], return_achieved: bool = True) -> dict[str, Any]:
        r = self.driver.program(weights)
        return {**(r.arrays if return_achieved else {}), "report": r.report}

    def program_cells(self, cells: Mapping[str, Any], return_achieved: bool = True) -> dict[str, Any]:
        r = self.driver.program_cells(self._cells(cells))
        return {**(r.arrays if return_achieved else {}), "report": r.report}

    def _cells(self, cells: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``(index, value)`` per array from either form the API takes (as the server decodes them)."""
        decl = self.driver.declaration()
        out = {}
        for name, c in cells.items():
            if isinstance(c, Mapping):
                out[name] = decode_cells(decl, name, c.get("index"), c.get("mask"), c.get("value"), c.get("level"),
                                         f"cells.{name}")
            else:
                out[name] = (np.asarray(c[0]), np.asarray(c[1]))
        return out

    def relax(self, x: np.ndarray, beta: float = 0.0, target: np.ndarray | None = None, steps: int = 20,
              init: Sequence[np.ndarray] | None = None, nudges: Sequence[tuple[float, int]] | None = None,
              layers: Sequence[int] | None = None, program_weights: Mapping[str, np.ndarray] | None = None,
              program_cells: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if program_weights is not None:
            self.driver.program(program_weights)
        if program_cells is not None:
            self.driver.program_cells(self._cells(program_cells))
        x = np.asarray(x)
        if nudges is None and layers is None:
            r = self.driver.relax(x, beta, target, steps, init)
        else:
            r = self.driver.relax_nudged(x, beta, target, steps, init, list(nudges or []), layers)
        return {**r.arrays, "report": r.report}
