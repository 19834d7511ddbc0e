"""MTJ oracles (DESIGN.md §4): each measures the model by an independent path and has a negative control.

The measurements are Monte-Carlo runs of the test junctions (pulse by pulse, states read back from
the measured resistances); the predictions are the closed forms written out here again, from the
parameters. Tolerances are in standard errors of the measured estimate; each negative control
takes one parameter 20 % off and asserts that the same comparison then fails.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from device_models import mtj
from device_models.crossbar import CrossbarNetwork
from device_models.mtj_test_junctions import JunctionParams, TestJunctions
from device_models.presets import DEFAULT_V1

#: Tolerance of every oracle, in standard errors.
Z = 4.0

#: One binary junction of a default-v1 cell: 31 junctions in parallel make the 5 kΩ cell.
NOMINAL = JunctionParams(r_p_ohm=31 * 5e3, tmr0=1.5, v_h_v=0.4, delta=40.0, tau0_s=1e-9, i_c0_p2ap_a=3.37e-6,
                         i_c0_ap2p_a=2.12e-6, v_read_v=0.15, t_read_s=1e-15)


def _junctions(params: JunctionParams, count: int, seed: int) -> TestJunctions:
    return TestJunctions(params, count, np.random.SeedSequence(seed))


def _is_ap(r_ohm: np.ndarray, params: JunctionParams) -> np.ndarray:
    """State from a measured resistance: above the midpoint of R_P and R_AP at the read bias."""
    r_ap = params.r_p_ohm * (1 + params.tmr0 / (1 + (params.v_read_v / params.v_h_v) ** 2))
    return r_ohm > 0.5 * (params.r_p_ohm + r_ap)


def _within(measured: float, predicted: float, se: float) -> bool:
    print(f"measured {measured:.6g}, predicted {predicted:.6g}, z = {(measured - predicted) / se:+.2f}")
    return abs(measured - predicted) <= Z * se


def _dwell_runs(ap: np.ndarray) -> np.ndarray:
    """Lengths (in samples) of the complete runs of a state in each row (first and last runs cut off)."""
    runs = []
    for row in ap:  # a handful of rows; the runs of one row are found vectorised
        edges = np.flatnonzero(np.diff(row.astype(np.int8)) != 0)
        runs.append(np.diff(edges))
    return np.concatenate(runs)


def test_dwell_times_at_rest_are_exponential_with_the_neel_brown_mean():
    """A superparamagnetic junction (Δ = 4) at zero bias: telegraph dwell times, mean ``τ₀ e^Δ``.

    Sampled every ``dt = τ/20`` the dwell is a whole number of samples, geometric with the per-step
    flip probability ``q = (1 − e^{−2dt/τ})/2`` of the symmetric two-state chain: mean ``dt/q``,
    coefficient of variation ``√(1 − q)`` (→ 1, exponential, as dt → 0). 200 junctions × 2000 steps.
    """
    params = dataclasses.replace(NOMINAL, delta=4.0)
    tau = params.tau0_s * np.exp(params.delta)
    dt = tau / 20
    j = _junctions(params, 200, seed=11)
    out, _ = j.pulse(np.zeros((200, 2000)), np.full((200, 2000), dt))
    dwell = _dwell_runs(_is_ap(out["r_read_ohm"], params)) * dt
    assert dwell.size > 10_000

    def predicted(delta: float) -> tuple[float, float]:
        t = params.tau0_s * np.exp(delta)
        q = 0.5 * (1 - np.exp(-2 * dt / t))
        return dt / q, np.sqrt(1 - q)

    mean, se = float(dwell.mean()), float(dwell.std(ddof=1) / np.sqrt(dwell.size))
    cv = float(dwell.std(ddof=1) / dwell.mean())
    want_mean, want_cv = predicted(params.delta)
    assert _within(mean, want_mean, se), (mean, want_mean, se)
    # the CV of a geometric sample: standard error ≈ 1/√n (the spread of a spread), a few per cent here
    assert _within(cv, want_cv, 1.0 / np.sqrt(dwell.size)), (cv, want_cv)
    off_mean, _ = predicted(1.2 * params.delta)  # negative control: Δ off by 20 %
    assert not _within(mean, off_mean, se)


def test_dwell_time_under_a_current_follows_the_thermally_assisted_law():
    """A stable junction (Δ = 40) pushed out of P near ``I_c0``: time to switch is exponential with
    mean ``τ₀ exp[Δ(1 − I/I_c0)]``. 3000 junctions, each reset to P and pulsed in steps of τ/40."""
    p = NOMINAL
    v = 0.5
    i = v / p.r_p_ohm
    tau = p.tau0_s * np.exp(p.delta * (1 - i / p.i_c0_p2ap_a))
    dt = tau / 40
    j = _junctions(p, 3000, seed=12)
    steps = 400  # ten mean dwells: all but e^-10 switch
    out, _ = j.pulse(np.full((3000, steps), v), np.full((3000, steps), dt))
    ap = _is_ap(out["r_read_ohm"], p)
    assert ap[:, -1].all()
    first = (np.argmax(ap, axis=1) + 1) * dt  # switched during that step: the time is that many steps
    q = 1 - np.exp(-dt / tau)
    want = dt / q  # mean of whole steps to the first switch
    mean, se = float(first.mean()), float(first.std(ddof=1) / np.sqrt(first.size))
    assert _within(mean, want, se), (mean, want, se)
    cv = float(first.std(ddof=1) / first.mean())
    assert _within(cv, np.sqrt(1 - q), 1.0 / np.sqrt(first.size))
    tau_off = p.tau0_s * np.exp(1.2 * p.delta * (1 - i / p.i_c0_p2ap_a))  # negative control: Δ off by 20 %
    assert not _within(mean, dt / (1 - np.exp(-dt / tau_off)), se)


@pytest.mark.parametrize("direction", ["P->AP", "AP->P"])
def test_switching_probability_per_pulse_matches_the_closed_form(direction: str):
    """Per-pulse Monte-Carlo against ``P_sw = 1 − exp(−t_p/τ)``, five pulse lengths, 4000 junctions each.

    Each trial: a reset pulse far above ``I_c0`` (switches with certainty), then the write pulse,
    then the verify read; the switched fraction's standard error is ``√(P(1−P)/n)``.
    """
    p = NOMINAL
    n = 4000
    if direction == "P->AP":
        v_reset, v_write = -0.9, 0.5
        current, i_c0 = v_write / p.r_p_ohm, p.i_c0_p2ap_a
    else:
        v_reset, v_write = 0.9, -0.5
        tmr_w = p.tmr0 / (1 + (v_write / p.v_h_v) ** 2)
        current, i_c0 = abs(v_write) / (p.r_p_ohm * (1 + tmr_w)), p.i_c0_ap2p_a
    lengths = np.array([1e-9, 3e-9, 6e-9, 10e-9, 20e-9])
    j = _junctions(p, n, seed=13)
    volts = np.tile([v_reset, v_write], lengths.size)
    times = np.ravel([(100e-9, t) for t in lengths])
    out, _ = j.pulse(np.broadcast_to(volts, (n, volts.size)), np.broadcast_to(times, (n, times.size)))
    ap = _is_ap(out["r_read_ohm"][:, 1::2], p)
    switched = (ap if direction == "P->AP" else ~ap).mean(axis=0)

    def closed_form(delta: float) -> np.ndarray:
        tau = p.tau0_s * np.exp(delta * (1 - current / i_c0))
        return 1 - np.exp(-lengths / tau)

    want = closed_form(p.delta)
    se = np.sqrt(want * (1 - want) / n)
    print(direction, "P_sw measured", switched.round(4), "closed form", want.round(4), "z", ((switched - want) / se).round(2))
    assert np.all(np.abs(switched - want) <= Z * se), (switched, want, se)
    off = closed_form(1.2 * p.delta)  # negative control: Δ off by 20 %
    assert not np.all(np.abs(switched - off) <= Z * se)


def test_tmr_measured_at_the_half_tmr_bias_is_half_its_zero_bias_value():
    """Resistance under bias of AP and P junctions (read noise 0.5 %, 2000 junctions each)."""
    p = dataclasses.replace(NOMINAL, read_std=0.005)
    j = _junctions(p, 2000, seed=14)
    # put every junction in AP with one certain pulse, then measure under small biases at ±V_h, 0.01 V
    j.pulse(np.full((2000, 1), 0.9), np.full((2000, 1), 100e-9))
    ap, _ = j.pulse(np.tile([0.01, p.v_h_v], (2000, 1)), np.full((2000, 2), 1e-12))
    j.pulse(np.full((2000, 1), -0.9), np.full((2000, 1), 100e-9))
    par, _ = j.pulse(np.tile([0.01, p.v_h_v], (2000, 1)), np.full((2000, 2), 1e-12))
    r_ap, r_p = ap["r_ohm"], par["r_ohm"]
    tmr_low = r_ap[:, 0].mean() / r_p[:, 0].mean() - 1
    tmr_vh = r_ap[:, 1].mean() / r_p[:, 1].mean() - 1
    ratio = tmr_vh / tmr_low
    # error propagation of a ratio of means: relative SE of each mean is read_std/√n
    se = np.sqrt(4) * p.read_std / np.sqrt(2000) * (1 + tmr_vh) / tmr_vh * ratio
    want = 0.5 * (1 + (0.01 / p.v_h_v) ** 2)  # TMR(V_h)/TMR(0.01 V) in closed form
    assert _within(ratio, want, se), (ratio, want, se)
    off = mtj.tmr(p.v_h_v, 1.0, 1.2 * p.v_h_v) / mtj.tmr(0.01, 1.0, 1.2 * p.v_h_v)  # negative control: V_h off 20 %
    assert not _within(ratio, off, se)


def test_write_and_verify_of_a_784x512_crossbar_keeps_default_v1s_statistics():
    """Program all 401 408 weights of a 784×512 crossbar under default-v1 twice (two targets).

    Achieved − target of the pairs not reported failed has the standard deviation default-v1
    promises, ``prog_std·w_max`` (±10 %); pulses per junction switch are geometric, mean
    ``1/P_sw`` of the nominal junction (within the standard error); failures are few and each is a
    stuck cell or an out-of-reach target.
    """
    net = CrossbarNetwork([784, 512], DEFAULT_V1, seed=21)
    w_max = net.w_max[0]
    rng = np.random.default_rng(5)
    c = DEFAULT_V1
    first = rng.uniform(0.2, 0.8, (512, 784)) * w_max * rng.choice([-1, 1], (512, 784))
    net.program({"W0": first})
    first_grid = net.targets()["W0"]
    target = rng.uniform(0.2, 0.8, (512, 784)) * w_max * rng.choice([-1, 1], (512, 784))
    achieved, report = net.program({"W0": target})
    grid = net.targets()["W0"]
    ok = np.ones(grid.size, bool)
    ok[report["failed"]["W0"]] = False
    err = (achieved["W0"].astype(np.float64) - grid).ravel()[ok]
    assert err.size >= 100_000
    promised = c.prog_std * w_max
    print(f"achieved-weight error std / promised = {err.std() / promised:.4f} over {err.size} weights; "
          f"pulses {report['pulses']}, failures {report['failures']}, per switch {(report['pulses'] - report['junction_failures'] * c.write_attempts_max) / max(report['junction_switches'] - report['junction_failures'], 1):.4f}")
    assert abs(err.std() / promised - 1) <= 0.10, err.std() / promised
    assert abs(err.mean()) < 5 * promised / np.sqrt(err.size)
    # attempts, by an independent count: the junction switches each direction needs follow from the two
    # grids alone (level n of a cell = n of its 31 junctions in P); each non-stuck switch takes
    # Geometric(P_sw) pulses (mean 1/P_sw, variance (1 − P_sw)/P_sw²; truncation at 100 pulses is
    # (1 − P_sw)^100 ≈ 1e-80), a junction of a stuck cell the full 100 (the report's junction failures)
    def cell_levels(grid: np.ndarray) -> np.ndarray:
        q = np.rint(grid * ((c.levels - 1) / w_max)).astype(np.int64)
        return np.stack([np.maximum(q, 0), np.maximum(-q, 0)])

    moves = cell_levels(grid) - cell_levels(first_grid)
    n_ap2p, n_p2ap = int(moves[moves > 0].sum()), int(-moves[moves < 0].sum())
    assert n_ap2p + n_p2ap == report["junction_switches"]
    stuck_j = report["junction_failures"]
    measured = report["pulses"] - stuck_j * c.write_attempts_max

    def predicted(delta: float) -> tuple[float, float, float]:
        """Expected pulses of the non-stuck switches: (fewest, most) over how the stuck ones split by
        direction, and the standard error."""
        i_nom = mtj.junction_current_a(c.v_write_v, np.array([mtj.P, mtj.AP]), 31 * c.r_p_ohm, c.tmr0, c.v_h_v)
        p_p2ap, p_ap2p = 1 - np.exp(-c.t_pulse_s / (c.tau0_s * np.exp(delta * (1 - i_nom / [c.i_c0_p2ap_a,
                                                                                               c.i_c0_ap2p_a]))))
        splits = [(n_p2ap - stuck_j, n_ap2p), (n_p2ap, n_ap2p - stuck_j)]
        means = [a / p_p2ap + b / p_ap2p for a, b in splits]
        se = np.sqrt(n_p2ap * (1 - p_p2ap) / p_p2ap**2 + n_ap2p * (1 - p_ap2p) / p_ap2p**2)
        return min(means), max(means), float(se)

    def within(delta: float) -> bool:
        lo, hi, se = predicted(delta)
        print(f"pulses of non-stuck switches {measured}, predicted [{lo:.0f}, {hi:.0f}] ± {se:.0f} (Δ = {delta})")
        return lo - Z * se <= measured <= hi + Z * se

    assert n_ap2p > 10**6 and n_p2ap > 10**6
    assert within(c.delta)
    assert not within(1.2 * c.delta)  # negative control: Δ off by 20 %
    assert report["failures"] < 0.004 * 512 * 785
    assert report["device_time_s"] == pytest.approx(report["pulses"] * (c.t_pulse_s + c.t_read_s))
    assert report["energy_terms_j"]["write"] > 0 and report["energy_terms_j"]["verify"] > 0
    assert report["pulses_per_pair_max"] >= report["pulses"] / report["pairs_written"]


def test_above_i_c0_the_thermal_law_is_capped_at_one_attempt_time():
    """The thermally assisted law holds below ``I_c0`` only; above it (precessional switching, not
    modelled) the dwell is held at ``τ₀`` — continuous at ``I_c0``, never shorter, P_sw monotone in I."""
    p = NOMINAL
    i = np.linspace(0.5, 2.0, 301) * p.i_c0_p2ap_a
    tau = mtj.dwell_time_s(i, p.i_c0_p2ap_a, p.delta, p.tau0_s)
    below = i < p.i_c0_p2ap_a
    np.testing.assert_allclose(tau[below], p.tau0_s * np.exp(p.delta * (1 - i[below] / p.i_c0_p2ap_a)), rtol=1e-12)
    assert np.all(tau[~below] == p.tau0_s)
    assert np.all(np.diff(mtj.switching_probability(5e-9, tau)) >= 0)
    # and the test junctions use it: a 0.9 V pulse of 2 τ₀ (I ≈ 1.7 I_c0) switches with 1 − e^{−2}
    n = 20_000
    j = _junctions(p, n, seed=15)
    out, _ = j.pulse(np.full((n, 1), 0.9), np.full((n, 1), 2 * p.tau0_s))
    frac = float((out["r_ohm"] > p.r_p_ohm * (1 + 0.5 * mtj.tmr(0.9, p.tmr0, p.v_h_v))).mean())  # AP under 0.9 V
    want = 1 - np.exp(-2.0)
    assert _within(frac, want, np.sqrt(want * (1 - want) / n))
