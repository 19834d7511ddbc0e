"""The conformance kit: every registered driver passes it; each planted bug fails the rule it breaks.

Each broken driver below is the emulated crossbar with one deliberate fault. The kit must fail
it, and name the rule that fault breaks — proof that the kit can fail, rule by rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from device_server.drivers.base import OpResult
from device_server.drivers.emulated import EmulatedCrossbar
from device_server.drivers.registry import load_driver, registered
from device_server.testing import RULES, assert_conforms, run_conformance

ENTRY = EmulatedCrossbar.conformance_entry


@pytest.mark.parametrize("name", sorted(registered()))
def test_every_registered_driver_passes_the_kit(name: str) -> None:
    cls = load_driver(name)
    assert cls.conformance_entry is not None, f"driver {name!r} declares no conformance_entry"
    report = assert_conforms(cls, cls.conformance_entry, name)
    assert {"declaration", "shapes", "provenance", "limits", "determinism"} <= report.checked


class WrongShape(EmulatedCrossbar):
    """Answers forward outputs transposed (neurons × batch)."""

    def forward(self, x: np.ndarray, layers: Sequence[int] | None) -> OpResult:
        result = super().forward(x, layers)
        result.arrays["outputs"] = [np.ascontiguousarray(o.T) for o in result.arrays["outputs"]]
        return result


class MissingProvenance(EmulatedCrossbar):
    """Forgets the energy in every report."""

    def _strip(self, result: OpResult) -> OpResult:
        result.report.pop("energy_j", None)
        return result

    def forward(self, x: np.ndarray, layers: Sequence[int] | None) -> OpResult:
        return self._strip(super().forward(x, layers))

    def relax(self, *args: Any) -> OpResult:
        return self._strip(super().relax(*args))

    def program(self, targets: Mapping[str, np.ndarray]) -> OpResult:
        return self._strip(super().program(targets))

    def read_weights(self) -> OpResult:
        return self._strip(super().read_weights())


class UndeclaredLimit(EmulatedCrossbar):
    """Takes a nudging strength β in relax but declares no limit for it."""

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["limits"] = {k: v for k, v in info["limits"].items() if k != "beta"}
        return info


class NonIdempotentWrite(EmulatedCrossbar):
    """Each program call drifts one more notch: writes are not verified against what is already there."""

    writes = 0

    def program(self, targets: Mapping[str, np.ndarray]) -> OpResult:
        drift = 0.1 * self.writes
        self.writes += 1
        w_max = self.model.w_max
        return super().program({n: t + drift * w_max[self.model.layer_of(n)] for n, t in targets.items()})


class LeakyRefusal(EmulatedCrossbar):
    """Draws read noise before checking the layers it was asked for, so a refused call moves the noise stream."""

    def forward(self, x: np.ndarray, layers: Sequence[int] | None) -> OpResult:
        self.model.noise.take("read", 8)  # the planted bug
        return super().forward(x, layers)


class Unseeded(EmulatedCrossbar):
    """Reads with noise from an unseeded generator: two devices from one seed differ."""

    def forward(self, x: np.ndarray, layers: Sequence[int] | None) -> OpResult:
        result = super().forward(x, layers)
        noise = np.random.default_rng()
        result.arrays["outputs"] = [o + noise.normal(0, 1e-3, o.shape).astype(o.dtype) for o in result.arrays["outputs"]]
        return result


class IgnoresUnknownLayers(EmulatedCrossbar):
    """Answers a forward of a layer it does not have with all its layers instead of refusing."""

    def forward(self, x: np.ndarray, layers: Sequence[int] | None) -> OpResult:
        if layers is not None and max(layers) >= self.model.n_crossbars:
            layers = None
        return super().forward(x, layers)


class UnderstatedNoise(EmulatedCrossbar):
    """Declares a programming error ten times smaller than the one it has."""

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        program = info["noise"]["program"]
        program["std"] = {n: v / 10 for n, v in program["std"].items()}
        program["resolution"] = {n: 0.0 for n in program["resolution"]}
        return info


class LossyRestore(EmulatedCrossbar):
    """Restores the programmed conductances through float32: close, but not the state it exported."""

    def restore_state(self, state: Mapping[str, np.ndarray]) -> None:
        super().restore_state({k: v.astype(np.float32).astype(np.float64) for k, v in state.items()})


class ForgetsBiasWrites(EmulatedCrossbar):
    """Lists the cells it wrote, but not those of the bias column (a durable server would journal too few)."""

    def state_changes(self):  # noqa: ANN201
        changes = super().state_changes()
        if changes is None:
            return None
        out = {}
        for name, (index, values) in changes.items():
            if name.endswith(".target"):  # a pair's index; the bias column is the last of each row
                n_in = self.model.sizes[int(name[1])]
                keep = index % (n_in + 1) != n_in
                out[name] = (index[keep], values[keep])
            else:
                out[name] = (index, values)
        return out


class NudgesFromScratch(EmulatedCrossbar):
    """Runs the nudged phases of a relax from zero states instead of the state the first phase settled in."""

    def relax_nudged(self, x, beta, target, steps, init, nudges, layers) -> OpResult:
        first = self.relax(x, beta, target, steps, init)
        nudged = [self.relax(x, b, target, t, None).arrays["states"] for b, t in nudges]
        keep = range(len(first.arrays["states"])) if layers is None else layers
        return OpResult({"states": [first.arrays["states"][k] for k in keep], "nudged": nudged}, first.report)


@pytest.mark.parametrize(
    ("broken", "rule"),
    [
        (WrongShape, "shapes"),
        (MissingProvenance, "provenance"),
        (UndeclaredLimit, "declaration"),
        (NonIdempotentWrite, "idempotent-writes"),
        (LeakyRefusal, "state-untouched"),
        (Unseeded, "determinism"),
        (LossyRestore, "state-restore"),
        (IgnoresUnknownLayers, "limits"),
        (UnderstatedNoise, "read-after-program"),
        (NudgesFromScratch, "phases"),
        (ForgetsBiasWrites, "state-changes"),
    ],
)
def test_a_broken_driver_fails_the_rule_it_breaks(broken: type[EmulatedCrossbar], rule: str) -> None:
    report = run_conformance(broken, ENTRY)
    assert rule in RULES
    assert report.failed_rules == [rule], report.summary()
    assert rule in report.summary() and "FAIL" in report.summary()
    with pytest.raises(AssertionError, match=rule):
        assert_conforms(broken, ENTRY)


def test_undeclared_limit_names_the_missing_input() -> None:
    report = run_conformance(UndeclaredLimit, ENTRY)
    assert any("beta" in m for m in report.failures["declaration"])


def test_kit_cli_runs_on_a_registered_driver(capsys: pytest.CaptureFixture[str]) -> None:
    from device_server.testing.__main__ import main

    assert main(["--driver", "mtj-crossbar"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and all(rule in out for rule in RULES)
    assert main(["--driver", "no-such-driver"]) == 2
