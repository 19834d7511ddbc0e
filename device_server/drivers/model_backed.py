"""What every emulated driver does the same way: its chip model keeps the non-volatile state.

An emulated driver wraps a model from :mod:`device_models` (``self.model``) that measures its
own couplings and exports and restores them; the driver only adds the checks of its operations.
Mixed in before :class:`~device_server.drivers.base.Driver`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from device_server.drivers.base import OpResult


class ModelBacked:
    """``read_weights``, ``export_state`` and ``restore_state`` delegated to ``self.model``; the
    calibration id and the identity part of ``describe()`` built alike."""

    model: Any
    kind: str
    device_id: str
    driver_type: str
    preset: str
    seed: int
    calibration_id: str
    capabilities: frozenset[str]

    def identity(self, model_version: str, topology: Mapping[str, Any]) -> dict[str, Any]:
        """The head of every ``describe()``: which device, built how, able to do what."""
        return {"id": self.device_id, "kind": self.kind, "driver": self.driver_type, "model_version": model_version,
                "calibration_id": self.calibration_id, "preset": self.preset, "seed": self.seed,
                "capabilities": sorted(self.capabilities), "topology": topology}

    def calibration_of(self, topology: Mapping[str, Any], preset: str, seed: int, config: Any) -> str:
        """Calibration id: a digest of everything the chip was built from (kind, topology, preset, seed, settings)."""
        text = json.dumps([self.kind, dict(topology), preset, seed, config.__dict__], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def read_weights(self) -> OpResult:
        weights, report = self.model.read_weights()
        return OpResult({"weights": weights}, report)

    def export_state(self) -> dict[str, np.ndarray]:
        return self.model.export_state()

    def restore_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.model.restore_state(state)
