"""Test junctions beside a chip: single binary MTJs one can pulse and read, as on a wafer's test structure.

Why: the synapse cells of a crossbar are many junctions in parallel behind a differential pair;
their switching physics (R–V loop, switching probability against pulse length and amplitude,
dwell times) is measured on separate single junctions of the same stack, the way a process is
characterised. Each row of a ``pulse`` call drives one test junction with a sequence of voltage
pulses; after each pulse a verify read at the read bias measures its resistance (the read is
itself a pulse that may disturb the state).

Physics from :mod:`device_models.mtj`: bias-dependent TMR; each pulse flips the junction with the
exact two-state probability :func:`mtj.pulse_flip_probability` (thermally assisted switching with
its own ``I_c0`` per direction, positive voltage pushing P → AP). The junctions keep their state
between calls (they start in P, the reset state); their spread of ``R_P`` and ``TMR₀`` is drawn
once from the device seed, on a stream of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device_models import mtj


@dataclass(frozen=True)
class JunctionParams:
    """Nominal physics of one binary test junction (SI units)."""

    r_p_ohm: float  # [Ω] parallel resistance
    tmr0: float  # [1] zero-bias TMR
    v_h_v: float  # [V] half-TMR bias
    delta: float  # [1] thermal stability Δ
    tau0_s: float  # [s] attempt time τ0
    i_c0_p2ap_a: float  # [A] critical current P → AP (positive voltage)
    i_c0_ap2p_a: float  # [A] critical current AP → P (negative voltage)
    v_read_v: float  # [V] verify-read bias
    t_read_s: float  # [s] verify-read integration time
    read_std: float = 0.0  # [1] relative read noise on each measured resistance
    r_p_dtod: float = 0.0  # [1] relative spread of R_P between junctions (drawn once)
    tmr_dtod: float = 0.0  # [1] relative spread of TMR0 between junctions (drawn once)


class TestJunctions:
    """``count`` test junctions of one stack, their states, and the pulse sequences applied to them."""

    __test__ = False  # not a pytest class

    def __init__(self, params: JunctionParams, count: int, seed_sequence: np.random.SeedSequence) -> None:
        fab, ops = seed_sequence.spawn(2)
        fab_rng = np.random.default_rng(fab)
        self.params = params
        self.count = int(count)
        self.r_p_ohm = params.r_p_ohm * np.maximum(1.0 + params.r_p_dtod * fab_rng.standard_normal(count), 0.1)
        self.tmr0 = params.tmr0 * np.maximum(1.0 + params.tmr_dtod * fab_rng.standard_normal(count), 0.0)
        self.state = np.full(count, mtj.P, dtype=np.int8)
        self._rng = np.random.default_rng(ops)

    def resistance_ohm(self, rows: np.ndarray, state: np.ndarray, v_v: np.ndarray) -> np.ndarray:
        """Resistance [Ω] of junctions ``rows`` in ``state`` at bias ``v_v`` [V] (no noise)."""
        p = self.params
        r_p = self.r_p_ohm[rows]
        return np.where(state == mtj.AP, r_p * (1.0 + mtj.tmr(v_v, self.tmr0[rows], p.v_h_v)), r_p)

    def _flip(self, rows: np.ndarray, v_v: np.ndarray, t_s: np.ndarray) -> None:
        p = self.params
        prob = mtj.pulse_flip_probability(v_v, t_s, self.state[rows], self.r_p_ohm[rows], self.tmr0[rows], p.v_h_v,
                                          p.delta, p.tau0_s, p.i_c0_p2ap_a, p.i_c0_ap2p_a)
        flips = self._rng.random(rows.size) < prob
        self.state[rows] = np.where(flips, 1 - self.state[rows], self.state[rows])

    def _measure(self, r: np.ndarray) -> np.ndarray:
        std = self.params.read_std
        return r if std == 0 else r * (1.0 + std * self._rng.standard_normal(r.shape))

    def pulse(self, v_v: np.ndarray, t_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Apply pulse ``j`` of row ``i`` (``v_v[i, j]`` [V] for ``t_s[i, j]`` [s]) to test junction ``i``.

        Returns the measured resistances, each ``(rows, pulses)``: ``r_ohm`` at the end of each pulse
        under its own bias (the R–V loop), ``r_read_ohm`` from the verify read after it; and the cost
        ``{device_time_s, energy_pulse_j, energy_read_j}`` (``Σ V²/R·t`` of every pulse and read).
        """
        p = self.params
        v_v = np.asarray(v_v, dtype=np.float64)
        t_s = np.broadcast_to(np.asarray(t_s, dtype=np.float64), v_v.shape)
        n_rows, n_pulses = v_v.shape
        rows = np.arange(n_rows)
        r_bias = np.empty(v_v.shape)
        r_read = np.empty(v_v.shape)
        v_read = np.full(n_rows, p.v_read_v)
        t_read = np.full(n_rows, p.t_read_s)
        e_pulse = e_read = 0.0
        for j in range(n_pulses):  # a time series: each pulse acts on the state the previous one left
            r_before = self.resistance_ohm(rows, self.state[rows], v_v[:, j])
            self._flip(rows, v_v[:, j], t_s[:, j])
            r_bias[:, j] = self.resistance_ohm(rows, self.state[rows], v_v[:, j])
            # the junction conducts at its state before the pulse until it switches: bound by the two
            e_pulse += float(np.sum(v_v[:, j] ** 2 * t_s[:, j] / np.minimum(r_before, r_bias[:, j])))
            self._flip(rows, v_read, t_read)  # the verify read is a (weak) pulse too: read disturb
            r_read[:, j] = self.resistance_ohm(rows, self.state[rows], v_read)
            e_read += float(np.sum(p.v_read_v**2 * p.t_read_s / r_read[:, j]))
        device_time = float(t_s.sum()) + v_v.size * p.t_read_s
        out = {"r_ohm": self._measure(r_bias), "r_read_ohm": self._measure(r_read)}
        return out, {"device_time_s": device_time, "energy_pulse_j": e_pulse, "energy_read_j": e_read}
