"""The crossbar's fast paths compute what the plain formulas say (they run at every relax update)."""

from __future__ import annotations

import numpy as np
import pytest

from device_models import mtj, stno
from device_models.crossbar import CrossbarNetwork
from device_models.presets import DEFAULT_V1, IDEAL


def test_bias_excess_is_the_bias_factor_minus_one_times_the_input():
    x = np.linspace(-1.3, 1.3, 1001)
    direct = x * (mtj.ap_bias_factor(x * 0.15, 0.15, 1.5, 0.4) - 1.0)
    assert np.allclose(mtj.ap_bias_excess(x, 0.15, 1.5, 0.4), direct, rtol=1e-12, atol=1e-15)
    assert mtj.ap_bias_excess(x.astype(np.float32), 0.15, 1.5, 0.4).dtype == np.float32
    # at the read bias itself there is no excess; below it the AP cell conducts less (s < 1)
    assert mtj.ap_bias_excess(np.array([1.0]), 0.15, 1.5, 0.4)[0] == pytest.approx(0.0, abs=1e-15)
    assert mtj.ap_bias_excess(np.array([0.5]), 0.15, 1.5, 0.4)[0] < 0


def test_neuron_energy_is_the_sum_of_r_i_squared_t():
    h = np.random.default_rng(0).uniform(-3, 3, (64, 50))
    zeta = stno.supercriticality(h, 4.0)
    direct = 100.0 * (0.5e-3) ** 2 * 5e-9 * float(np.sum(zeta**2))
    assert stno.neuron_energy_j(h, 4.0, 0.5e-3, 100.0, 5e-9) == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("config", [IDEAL, DEFAULT_V1.with_overrides({"read_std": 0.0, "prog_std": 0.0})])
def test_reused_input_drive_follows_a_reprogrammed_first_crossbar(config):
    """The free and nudged phases share W₀x; after W₀ or b₀ is rewritten the drive must be recomputed."""
    sizes = [12, 8, 3]
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (5, 12))
    first = {"W0": rng.uniform(-0.3, 0.3, (8, 12)), "b0": np.full(8, 0.2), "W1": rng.uniform(-0.3, 0.3, (3, 8)),
             "b1": np.full(3, 0.2)}
    second = {"W0": -first["W0"], "b0": np.full(8, 0.4)}
    reused = CrossbarNetwork(sizes, config, seed=4)
    reused.program(first)
    reused.relax(x, steps=30)
    reused.program(second)
    after, _ = reused.relax(x, steps=30)
    fresh = CrossbarNetwork(sizes, config, seed=4)
    fresh.program({**first, **second})
    expected, _ = fresh.relax(x, steps=30)
    assert all(np.array_equal(a, b) for a, b in zip(after, expected))
    # and a different input with the same weights is not served the old drive
    other, _ = reused.relax(x[::-1].copy(), steps=30)
    assert all(np.allclose(a[::-1], b, atol=1e-6) for a, b in zip(other, expected))


def _trained_pair(seed: int = 6, sizes=(40, 24, 5)) -> tuple[CrossbarNetwork, CrossbarNetwork, np.random.Generator]:
    rng = np.random.default_rng(seed)
    nets = [CrossbarNetwork(list(sizes), DEFAULT_V1, seed=seed) for _ in range(2)]
    start = {"W0": rng.uniform(-0.3, 0.3, (sizes[1], sizes[0])), "b0": rng.uniform(-0.2, 0.2, sizes[1]),
             "W1": rng.uniform(-0.3, 0.3, (sizes[2], sizes[1])), "b1": rng.uniform(-0.2, 0.2, sizes[2])}
    for net in nets:
        net.program(start)
    return nets[0], nets[1], rng


def test_a_write_of_one_level_moves_is_the_general_write_and_verify(monkeypatch):
    """The fast path of a training step (each pair one junction of one cell, stuck cells and all)
    lands the same conductances, targets, read matrices, failures and pulses as the general path,
    from the same draws; energies agree to rounding."""
    from device_models import write_verify

    fast, general, rng = _trained_pair()
    w_max, n = fast.w_max[0], 40 * 24
    index = np.sort(rng.choice(n, 300, replace=False))
    moved = fast.targets()["W0"].reshape(-1)[index] + w_max / 31 * rng.choice([-1.0, 1.0], index.size)
    cells = {"W0": (index, np.clip(moved, -w_max, w_max))}
    got_fast, rep_fast = fast.program_cells(cells)
    monkeypatch.setattr(write_verify, "_one_level_moves", lambda *args: None)
    monkeypatch.setattr(write_verify, "COMPILED", False)  # the compiled path is the fast one too
    got_general, rep_general = general.program_cells(cells)
    assert rep_fast["pairs_written"] > 250 and rep_fast["junction_switches"] == rep_fast["pairs_written"]
    for key in ("pairs_written", "pulses", "junction_switches", "junction_failures", "pulses_per_pair_max", "failures"):
        assert rep_fast[key] == rep_general[key], key
    np.testing.assert_array_equal(rep_fast["failed"]["W0"], rep_general["failed"]["W0"])
    for term in ("write", "verify"):
        assert rep_fast["energy_terms_j"][term] == pytest.approx(rep_general["energy_terms_j"][term], rel=1e-12)
    np.testing.assert_array_equal(got_fast["W0"], got_general["W0"])
    for a, b in zip(fast.export_state().values(), general.export_state().values()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(fast._xbars, general._xbars):  # noqa: SLF001 - the derived matrices are what is under test
        np.testing.assert_array_equal(a.read, b.read)
        np.testing.assert_array_equal(a.b, b.b)


def test_conductance_sums_followed_write_by_write_are_the_sums_of_the_conductances():
    net, _, rng = _trained_pair(seed=8)
    for _ in range(20):
        index = np.sort(rng.choice(40 * 24, 50, replace=False))
        net.program_cells({"W0": (index, rng.uniform(-0.3, 0.3, index.size)), "b0": (np.arange(3), np.full(3, 0.1))})
        net.update({"W1": rng.normal(0, 0.05, (5, 24))})
    for xb in net._xbars:  # noqa: SLF001
        total = xb.g[0] + xb.g[1]
        np.testing.assert_allclose(xb.g_sums()[0], total.sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(xb.g_sums()[1], total[:, : xb.n_in].sum(axis=1), rtol=1e-12)


def test_the_input_drive_leaves_out_only_columns_that_are_zero_in_every_sample():
    net, _, rng = _trained_pair(seed=10, sizes=(64, 24, 5))
    x = rng.uniform(0, 1, (8, 64)).astype(np.float32)
    x[:, :20] = 0.0  # an image border: zero in every sample
    x[3, 30] = 0.0  # zero in one sample only: still read
    drive, energy = net._input_drive(x)  # noqa: SLF001
    np.testing.assert_allclose(drive, net._read_forward(0, x), rtol=1e-5, atol=1e-6)  # noqa: SLF001
    # the energy of a read of every column (zero ones draw nothing), from the conductances: Σ V²·G·t_read
    xb, c = net._xbars[0], net.config  # noqa: SLF001
    col_g = (xb.g[0] + xb.g[1]).sum(axis=0)  # [S] per input column and the bias column (held at V_read)
    v2 = np.square(x.astype(np.float64))
    want = c.v_read_v**2 * c.t_read_s * (float((v2 @ col_g[:64]).sum()) + x.shape[0] * col_g[64])
    assert energy == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("nudges", [[(0.5, 6), (-0.5, 6), (0.2, 3)], [(0.4, 5)], [(-0.4, 5)], [(0.0, 4), (0.3, 4)]])
def test_stacked_nudged_phases_are_the_phases_run_one_by_one(nudges):
    """Phases of equal length settle as one stacked batch; each answers, measures and reports what it
    would alone (read noise off, so measured = true states, bit for bit), in the order asked."""
    config = DEFAULT_V1.with_overrides({"read_std": 0.0})
    rng = np.random.default_rng(12)
    x, y = rng.uniform(0, 1, (6, 40)), np.eye(5)[rng.integers(0, 5, 6)]
    start = {"W0": rng.uniform(-0.3, 0.3, (24, 40)), "W1": rng.uniform(-0.3, 0.3, (5, 24))}
    one, apart = CrossbarNetwork([40, 24, 5], config, seed=2), CrossbarNetwork([40, 24, 5], config, seed=2)
    one.program(start)
    apart.program(start)
    free, nudged, report = one.relax_nudged(x, 0.0, y, 20, None, nudges)
    want_free, r0 = apart.relax(x, 0.0, y, 20)
    assert all(np.array_equal(a, b) for a, b in zip(free, want_free))
    total = {"read": r0["energy_terms_j"]["read"], "neuron": r0["energy_terms_j"]["neuron"]}
    for (beta, steps), got, info in zip(nudges, nudged, report["nudges"]):
        want, r = apart.relax(x, beta, y, steps, want_free)
        assert all(np.array_equal(a, b) for a, b in zip(got, want))
        assert info == {"beta": beta, "steps": steps, "residual": r["residual"]}
        for term in total:
            total[term] += r["energy_terms_j"][term]
    for term, value in total.items():
        assert report["energy_terms_j"][term] == pytest.approx(value, rel=1e-5)


def test_work_arrays_kept_between_relax_calls_leave_earlier_answers_alone():
    """The settle's buffers are kept per batch size: an answer must not be a view of them (a later
    call of the same size would rewrite it), and a call must not depend on what the last one left."""
    config = DEFAULT_V1.with_overrides({"read_std": 0.0})
    rng = np.random.default_rng(14)
    x, other = rng.uniform(0, 1, (6, 40)), rng.uniform(0, 1, (6, 40))
    y = np.eye(5)[rng.integers(0, 5, 6)]
    start = {"W0": rng.uniform(-0.3, 0.3, (24, 40)), "W1": rng.uniform(-0.3, 0.3, (5, 24))}
    net, fresh = CrossbarNetwork([40, 24, 5], config, seed=3), CrossbarNetwork([40, 24, 5], config, seed=3)
    net.program(start)
    fresh.program(start)
    first, nudged, _ = net.relax_nudged(x, 0.0, y, 12, None, [(0.5, 12)])  # both phases 6 rows: the same buffers
    kept = [a.copy() for a in first + nudged[0]]
    net.relax_nudged(other, 0.0, y, 12, None, [(-0.5, 12)])
    assert all(np.array_equal(a, b) for a, b in zip(first + nudged[0], kept))
    again, _ = net.relax(x, 0.0, y, 12)
    want, _ = fresh.relax(x, 0.0, y, 12)
    assert all(np.array_equal(a, b) for a, b in zip(again, want))
    assert all(np.array_equal(a, b) for a, b in zip(again, kept[:2]))


def test_continuous_cells_pulse_only_where_a_weight_changes_sign():
    """With continuous levels a cell is one analog element, on while it carries the weight: a write
    that keeps every pair's sign switches no junction (no pulse, no write energy) however far the
    weights move; flipping the sign of k pairs switches 2k junctions (one cell off, one on), and
    only those pairs take pulses. Twin chips given the same writes land the same bits."""
    from dataclasses import replace

    config = replace(DEFAULT_V1, levels=0)
    rng = np.random.default_rng(12)
    nets = [CrossbarNetwork([40, 24, 5], config, seed=3) for _ in range(2)]
    w = rng.uniform(0.05, 0.3, (24, 40)) * rng.choice([-1.0, 1.0], (24, 40))
    for net in nets:
        net.program({"W0": w})
    same_sign = w * rng.uniform(0.5, 1.5, w.shape)
    _, report = nets[0].program({"W0": same_sign})
    assert report["pairs_written"] == w.size and report["junction_switches"] == 0
    assert report["pulses"] == 0 and report["energy_terms_j"]["write"] == 0.0
    flipped = same_sign.copy()
    flips = rng.choice(w.size, 37, replace=False)
    flipped.reshape(-1)[flips] *= -1.0
    _, report = nets[0].program({"W0": flipped})
    assert report["junction_switches"] == 2 * flips.size
    assert report["pulses"] >= report["junction_switches"] and report["energy_terms_j"]["write"] > 0.0
    nets[1].program({"W0": same_sign})
    nets[1].program({"W0": flipped})
    for a, b in zip(nets[0].export_state().values(), nets[1].export_state().values()):
        np.testing.assert_array_equal(a, b)
