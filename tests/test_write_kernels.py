"""The compiled write of one-level moves (device_models/write_kernels.py) lands what the NumPy path lands.

Two chips of one seed take the same writes, one compiled and one through the NumPy path
(``write_verify.COMPILED``): conductances, targets, weights, biases, read matrices, conductance
sums, failures, pulse counts and junction switches must agree bit for bit, and both must have
drawn the same noise; the energies agree to the last bits (summation order).
"""

from __future__ import annotations

import numpy as np
import pytest

from device_models import write_verify
from device_models.crossbar import CrossbarNetwork
from device_models.presets import DEFAULT_V1

SIZES = [40, 24, 5]

CONFIGS = {
    "float32": DEFAULT_V1,
    "float64": DEFAULT_V1.with_overrides({"dtype": "float64"}),
    # many stuck cells and few pulses: stuck cells, junctions left behind and out-of-reach targets
    "faulty": DEFAULT_V1.with_overrides({"stuck_fraction": 0.2, "write_attempts_max": 2}),
    "faulty-float64": DEFAULT_V1.with_overrides({"stuck_fraction": 0.2, "write_attempts_max": 2, "dtype": "float64"}),
    "linear-exact": DEFAULT_V1.with_overrides({"bias_nonlinearity": False, "prog_std": 0.0, "levels": 8}),
}


def _moves(net: CrossbarNetwork, rng: np.random.Generator, fraction: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One level up or down for a random ``fraction`` of every array's written cells (a training step)."""
    cells = {}
    for name, target in net.targets().items():
        k = int(name[1:])
        step = net.w_max[k] / (net.config.levels - 1)
        flat = target.reshape(-1)
        index = np.flatnonzero((rng.random(flat.size) < fraction) & ~np.isnan(flat))
        delta = step * rng.choice([-1.0, 1.0], index.size)
        moved = flat[index] + delta
        outside = np.abs(moved) > net.w_max[k] * (1 + 1e-9)
        moved[outside] -= 2 * delta[outside]  # a cell at the end of the grid moves inwards
        cells[name] = (index, moved)
    return cells


def _same(a: CrossbarNetwork, b: CrossbarNetwork, rep_a: dict, rep_b: dict) -> None:
    for key in ("pairs_written", "pulses", "junction_switches", "junction_failures", "pulses_per_pair_max", "failures"):
        assert rep_a[key] == rep_b[key], key
    for name in rep_a["failed"]:
        np.testing.assert_array_equal(rep_a["failed"][name], rep_b["failed"][name])
    for term in ("write", "verify"):
        assert rep_a["energy_terms_j"][term] == pytest.approx(rep_b["energy_terms_j"][term], rel=1e-12, abs=0.0)
    state_a, state_b = a.export_state(), b.export_state()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        np.testing.assert_array_equal(state_a[key], state_b[key], err_msg=key)
    for xa, xb in zip(a._xbars, b._xbars):  # noqa: SLF001 - the derived matrices are what is under test
        np.testing.assert_array_equal(xa.records, xb.records)
        for got, want in ((xa.w, xb.w), (xa.b, xb.b), (xa.read, xb.read), *zip(xa.sums, xb.sums)):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    for name, pool in a.noise.pools.items():  # the same draws taken from every pool
        assert pool._taken == b.noise.pools[name]._taken, name  # noqa: SLF001


@pytest.mark.parametrize("name", list(CONFIGS))
def test_compiled_one_level_write_is_the_numpy_write(name, monkeypatch):
    from device_models import write_kernels

    config = CONFIGS[name]
    kernel, runs = write_kernels.write_one_level, []
    monkeypatch.setattr(write_kernels, "write_one_level", lambda *args: runs.append(args[17]) or kernel(*args))
    rng = np.random.default_rng(3)
    compiled, numpy_ = (CrossbarNetwork(SIZES, config, seed=11) for _ in range(2))
    # W0 written only in part: pairs never written stay NaN (a write that includes one goes the general way)
    start = {"W0": (np.sort(rng.choice(40 * 24, 700, replace=False)), rng.uniform(-0.3, 0.3, 700)),
             "b0": (np.arange(24), rng.uniform(-0.2, 0.2, 24)),
             "W1": (np.arange(5 * 24), rng.uniform(-0.3, 0.3, 5 * 24)), "b1": (np.arange(5), rng.uniform(-0.2, 0.2, 5))}
    for step in range(12):
        cells = start if step == 0 else _moves(compiled, rng, 0.6 if step == 5 else 0.15)
        if step == 7:  # a never-written pair among one-level moves: the general way, both
            index, value = cells["W0"]
            fresh = np.flatnonzero(np.isnan(compiled.targets()["W0"].reshape(-1)))[:3]
            order = np.argsort(np.concatenate([index, fresh]))
            cells["W0"] = (np.concatenate([index, fresh])[order], np.concatenate([value, np.full(3, 0.1)])[order])
        monkeypatch.setattr(write_verify, "COMPILED", True)
        _, rep_c = compiled.program_cells(cells)
        monkeypatch.setattr(write_verify, "COMPILED", False)
        _, rep_n = numpy_.program_cells(cells)
        if step:
            assert rep_c["pairs_written"] > 0
        _same(compiled, numpy_, rep_c, rep_n)
    assert True in runs and False in runs  # the compiled path ran, patching and writing whole
    if name.startswith("faulty"):  # the faults were exercised
        assert rep_c["junction_failures"] > 0


def test_one_level_check_decides_as_the_numpy_test():
    from device_models.write_kernels import one_level_check

    f, scale = 4, 31 / 0.5
    records = np.zeros((6, 8))
    records[:, f] = np.array([0.0, 1, 2, -3, np.nan, 5]) / scale
    idx = np.array([0, 1, 2, 3])
    for new, want in (([1, 0, 3, -2], 1), ([1, 1, 2, -3], 1), ([2, 1, 2, -3], 0), ([0, 1, 2, -3], 0)):
        w = np.array(new, float) / scale
        assert one_level_check(records, f, idx, w, scale) == want
        assert (write_verify._one_level_moves(w, records[idx, f], 0.5, 32) is not None) == bool(want)  # noqa: SLF001
    assert one_level_check(records, f, np.array([4]), np.array([0.0]), scale) == 0  # never written (NaN)
    assert one_level_check(records, f, np.array([6]), np.array([0.0]), scale) == -1  # out of range
