"""Write-and-verify of differential pairs of multi-level MTJ cells (DESIGN.md §4), vectorised over pairs.

A cell of ``levels`` states is ``levels − 1`` binary junctions in parallel; the lower cell of a pair
sits at its floor (reset state), the other is set to ``floor + |w|·G_unit``. Each junction that must
change state gets current-controlled pulses of ``t_pulse_s`` (the current the nominal junction draws
at ``v_write_v`` in the state it leaves), each followed by a verify read, until the read confirms
the switch or ``write_attempts_max`` pulses are spent. A pulse switches with
``P_sw = 1 − exp(−t_p/τ)``, ``τ = τ₀ exp[Δ(1 − I/I_c0)]`` (:mod:`device_models.mtj`), so a
junction's pulses are geometric: ``G = ⌊E/λ⌋ + 1`` with ``λ = −ln(1 − P_sw)`` and ``E`` a standard
exponential (:func:`device_models.noise.exponential`). ``P_sw`` takes one value per direction (all
junctions get the nominal current), and 0 for a stuck cell, which never confirms: the
transcendental functions run on two numbers, not on every junction, and the exponentials come from
a pool drawn ahead. The switched cell lands with the cycle-to-cycle error ``prog_std`` of the range.
A target beyond the cell's reach (device-to-device spread, stuck cells) or a junction that never
switched is reported as a failure.

Energy: ``V·I·t_pulse = I²·R_j·t_pulse`` per pulse on the junction being switched (``R_j`` its own
resistance in the state it leaves), and a verify read ``V_read²·G·t_read`` of its cell after each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device_models import mtj, write_kernels
from device_models.config import CrossbarConfig
from device_models.crossbar_array import CrossbarArray
from device_models.noise import NoiseStreams

#: Whether a write of one-level moves runs compiled (:func:`_write_one_level`); False: the NumPy
#: path, the reference the compiled one is tested against (tests/test_write_kernels.py)
COMPILED = True

#: Above this fraction of pairs rewritten in one write, the read matrices are recomputed whole
#: (a few passes) rather than patched cell by cell (gathers and scatters of every changed cell).
DENSE_WRITE_FRACTION = 0.25


@dataclass
class WriteOutcome:
    """What write-and-verify of some pairs of one crossbar did: failures, pulses, energy."""

    failed: np.ndarray  # flat pair indices reported failed
    pulses: int  # write pulses (each with its verify read)
    switches: int  # junction switches asked for
    junction_failures: int  # junctions that did not switch within the attempt limit
    most_attempts: int  # pulses of the pair that took the most
    e_write_j: float
    e_verify_j: float

    @staticmethod
    def nothing() -> "WriteOutcome":
        return WriteOutcome(np.zeros(0, np.int64), 0, 0, 0, 0, 0.0, 0.0)


def junctions_per_cell(config: CrossbarConfig) -> int:
    """Binary MTJs in parallel in one cell: ``levels − 1`` (one analog element for continuous levels)."""
    return max(config.levels - 1, 1)


def pulse_physics(c: CrossbarConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """Per direction (index 0: P → AP, 1: AP → P): the nominal junction's write current [A], the
    inverse switching rate per pulse ``1/λ = −1/ln(1 − P_sw)``, and the AP conductance's bias factor
    at the write voltage."""
    n_j = junctions_per_cell(c)
    i_nom = mtj.junction_current_a(c.v_write_v, np.array([mtj.P, mtj.AP]), n_j * c.r_p_ohm, c.tmr0, c.v_h_v)
    p_sw = mtj.switching_probability(c.t_pulse_s, mtj.dwell_time_s(i_nom, np.array([c.i_c0_p2ap_a, c.i_c0_ap2p_a]),
                                                                   c.delta, c.tau0_s))
    with np.errstate(divide="ignore"):
        inv_rate = -1.0 / np.log1p(-p_sw)  # 0 when P_sw = 1 (one pulse); finite: P_sw > 0 for every setting in range
    return i_nom, inv_rate, float(mtj.ap_bias_factor(np.array(c.v_write_v), c.v_read_v, c.tmr0, c.v_h_v))


def cell_levels(w: np.ndarray, w_max: float, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Junctions in the P state of the + and − cell of pairs at grid weight ``w`` (NaN: reset, 0), as
    floats, on a grid of ``levels`` (> 0; continuous cells: :func:`_general_moves`)."""
    q = np.multiply(w, (levels - 1) / w_max)
    np.rint(q, out=q)
    q[np.isnan(q)] = 0.0
    return np.maximum(q, 0.0), np.maximum(-q, 0.0)


def _pick(mask: np.ndarray, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """``a`` where ``mask`` is 1.0, ``b`` where it is 0.0, exactly (finite ``a``, ``b``): arithmetic is
    several times faster than ``np.where`` on a random mask."""
    out = np.multiply(mask, a)
    out += (1.0 - mask) * b
    return out


def _pulse_trains(noise: NoiseStreams, inv_rate: np.ndarray, limit: float,
                  stuck: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pulses of junctions whose inverse switching rates ``inv_rate`` are given, each at most
    ``limit``, and which of them failed (did not switch within the limit); the junctions at
    positions ``stuck`` never switch.

    ``⌊E/λ⌋ + 1`` pulses with ``E`` exponential (pool ``"attempts"``, one value per junction).
    """
    tries = noise.take("attempts", inv_rate.size) * inv_rate
    np.floor(tries, out=tries)
    tries += 1.0
    tries[stuck] = np.inf
    failed = tries > limit
    np.minimum(tries, limit, out=tries)
    return tries, failed


def write_pairs(xb: CrossbarArray, idx: np.ndarray, w: np.ndarray, records: np.ndarray | None, c: CrossbarConfig,
                noise: NoiseStreams, pulses: tuple[np.ndarray, np.ndarray, float],
                w_idx: np.ndarray | None = None, b_idx: np.ndarray | None = None) -> WriteOutcome:
    """Write-and-verify the pairs at flat indices ``idx`` of ``xb`` to grid weights ``w``.

    ``records``: those pairs' records (:func:`device_models.crossbar_array.record_layout`) as they
    are before the write (their previous targets, their bounds), or None (gathered here when
    needed); ``pulses`` is :func:`pulse_physics` of ``c``.
    Updates ``xb`` (conductances, targets, read matrices; ``w_idx``/``b_idx`` as
    :meth:`CrossbarArray.store` takes them). Draws ``idx.size`` programming errors (pool
    ``"program"``) and one exponential per junction switch (pool ``"attempts"``).

    A write whose pairs all move one level on a grid (a training step) runs compiled
    (:func:`_write_one_level`, unless :data:`COMPILED` is False: the NumPy reference, for tests):
    the same draws and the same bits but for the last bits of the energies.
    """
    m = idx.size
    if m == 0:
        return WriteOutcome.nothing()
    if COMPILED and c.levels:
        status = write_kernels.one_level_check(xb.records, xb.target_column, idx, np.asarray(w, np.float64),
                                               (c.levels - 1) / xb.w_max)
        if status < 0:
            raise IndexError(f"pair index out of range 0..{xb.pairs - 1}")
        if status:
            return _write_one_level(xb, idx, w, c, noise, pulses)
    if records is None:
        records = xb.records.take(idx, axis=0)
    old = xb.old_targets(records)
    bounds = xb.fabrication(records)
    # the bounds, used many times: contiguous copies (element-wise work on strided columns is slower)
    floor_p, floor_m, ceil_p, ceil_m = (bounds[:, j].astype(np.float64) for j in range(4))
    dg = np.multiply(w, xb.g_unit_s, dtype=np.float64)
    gt_p = floor_m + dg
    plus_active = gt_p >= floor_p  # the + cell carries the weight; the lower cell stays at its floor
    np.maximum(gt_p, floor_p, out=gt_p)
    gt_m = gt_p - dg
    fail = (gt_p > ceil_p * (1 + 1e-12)) | (gt_m > ceil_m * (1 + 1e-12))
    if c.prog_std > 0:
        err = np.multiply(noise.take("program", m), c.prog_std * xb.g_range_s, dtype=np.float64)
        err_p = err * plus_active  # the error lands on the active cell of the pair
        gt_p += err_p
        err -= err_p
        gt_m += err
    i_nom, inv_rate, ap_boost = pulses
    n_j = junctions_per_cell(c)
    limit = float(c.write_attempts_max)
    one_step = _one_level_moves(w, old, xb.w_max, c.levels)
    if one_step is not None:  # a training step: each pair moves one junction of one cell
        plus, up = one_step
        on_plus, rising = plus.astype(np.float64), up.astype(np.float64)
        # the moving cell's floor and ceiling (G_AP and G_P of its junctions, unless it is stuck)
        f_mv, c_mv = _pick(on_plus, floor_p, floor_m), _pick(on_plus, ceil_p, ceil_m)
        stuck = np.flatnonzero(f_mv == c_mv)
        if stuck.size:  # a stuck cell never confirms; its junctions are its own G_P, G_AP
            sign, pair = 1 - plus[stuck], idx[stuck]
            f_mv[stuck] = xb.g_ap.reshape(2, -1)[sign, pair]
            c_mv[stuck] = xb.g_p.reshape(2, -1)[sign, pair]
        tries, failed_j = _pulse_trains(noise, _pick(rising, inv_rate[1], inv_rate[0]), limit, stuck)
        left = np.flatnonzero(failed_j)
        if left.size:  # a junction left behind keeps its cell one junction step short of the move
            short = (2.0 * rising[left] - 1.0) * (c_mv[left] - f_mv[left]) / n_j
            at_plus = plus[left]
            gt_p[left[at_plus]] -= short[at_plus]
            gt_m[left[~at_plus]] -= short[~at_plus]
            fail[left] = True
        per_ohm = tries / _pick(rising, f_mv, c_mv)  # pulses·G⁻¹ of the junction in the state it leaves
        to_p = float(per_ohm @ rising)
        e_write = c.t_pulse_s * n_j * (i_nom[1] ** 2 / ap_boost * to_p + i_nom[0] ** 2 * (float(per_ohm.sum()) - to_p))
        pair_attempts, switches, n_failed_j = tries, m, left.size
    else:
        # only the pairs with a junction to switch get pulses: with continuous levels (one analog element
        # per cell) that is a pair whose weight changed sign, a few of the whole array a training step rewrites
        moving, moves = _general_moves(w, old, xb.w_max, c.levels)
        tries_cells, failed_cells = np.zeros((2, m)), np.zeros((2, m))
        e_write, switches = 0.0, 0
        if moving.size:
            at = slice(None) if moving.size == m else moving
            tries_cells[:, at], failed_cells[:, at], e_write, switches = _cell_trains(
                xb, idx[at], bounds[at], moves, noise, i_nom, inv_rate, ap_boost, c)
        n_failed_j = int(failed_cells.sum())
        if n_failed_j:  # a junction left behind keeps its cell one junction step short of the move
            bad = np.flatnonzero(failed_cells.any(axis=0))
            step = (_junction_g(xb, idx[bad], bounds[bad], True) - _junction_g(xb, idx[bad], bounds[bad], False)) / n_j
            short = np.sign(moves[:, np.searchsorted(moving, bad)]) * failed_cells[:, bad] * step
            gt_p[bad] -= short[0]
            gt_m[bad] -= short[1]
            fail[bad] = True
        pair_attempts = tries_cells[0] + tries_cells[1]
    # within each cell's range (its bounds are float64 values of the emulation dtype)
    g_new = (np.minimum(np.maximum(gt_p, floor_p), ceil_p), np.minimum(np.maximum(gt_m, floor_m), ceil_m))
    if m > DENSE_WRITE_FRACTION * xb.pairs:  # most pairs: write the records, then rederive all at once
        xb.write_records(idx, g_new, w)
        xb.refresh()
    else:
        xb.store(idx, records, g_new, w, w_idx, b_idx)
    # a verify read of the cell after each pulse
    if one_step is not None:
        on_plus_tries = pair_attempts * on_plus
        verified = float(on_plus_tries @ g_new[0]) + float((pair_attempts - on_plus_tries) @ g_new[1])
    else:
        verified = float(tries_cells[0] @ g_new[0] + tries_cells[1] @ g_new[1])
    return WriteOutcome(
        failed=idx[fail],
        pulses=int(pair_attempts.sum()),
        switches=int(switches),
        junction_failures=int(n_failed_j),
        most_attempts=int(pair_attempts.max()),
        e_write_j=e_write,
        e_verify_j=c.v_read_v**2 * c.t_read_s * verified,
    )


def _write_one_level(xb: CrossbarArray, idx: np.ndarray, w: np.ndarray, c: CrossbarConfig, noise: NoiseStreams,
                     pulses: tuple[np.ndarray, np.ndarray, float]) -> WriteOutcome:
    """:func:`write_pairs` of pairs that each move one level (checked by the caller), compiled
    (:func:`device_models.write_kernels.write_one_level`): each pair switches one junction of one
    cell, so the draws are ``m`` programming errors and ``m`` exponentials, taken in that order as
    the NumPy path takes them. Its records are read and written in place (no gather).

    The energies are the NumPy path's sums in loop order: they may differ from it in the last bits
    (a BLAS dot product and pairwise sums there); everything else is bit for bit.
    """
    m = idx.size
    err = (noise.take("program", m) if c.prog_std > 0 else np.empty(0, np.float32))
    expo = noise.take("attempts", m)
    i_nom, inv_rate, ap_boost = pulses
    n_j = junctions_per_cell(c)
    patch = not m > DENSE_WRITE_FRACTION * xb.pairs  # most pairs: write the records, then rederive all at once
    split = xb.split is not None and patch
    read = xb.read.reshape(2, -1) if split else np.empty((2, 0), xb.dtype)
    linear, c_fac = (xb.split[0], -xb.split[1] / xb.split[3]) if split else (0.0, 0.0)
    failed = np.empty(m, np.int64)
    bias_delta = np.empty(m if patch else 0)
    sums = np.empty(5)
    n_failed, n_failed_j, n_b = write_kernels.write_one_level(
        xb.records, xb.records.view(xb.dtype), xb.target_column, idx, np.asarray(w, np.float64),
        err, float(c.prog_std * xb.g_range_s), expo, (c.levels - 1) / xb.w_max, float(xb.g_unit_s), 1 + 1e-12,
        float(inv_rate[0]), float(inv_rate[1]), float(c.write_attempts_max), n_j,
        xb.g_ap.reshape(2, -1), xb.g_p.reshape(2, -1), patch, xb.n_in, xb.n_out,
        xb.w.reshape(-1), xb.b, read, split, xb.input_major, float(linear), float(c_fac),
        xb.sums[0], xb.sums[1], failed, bias_delta, sums)
    if patch:  # the bias column's sum as CrossbarArray.store adds it (NumPy's pairwise sum)
        xb.sums[0][xb.n_in] += float(bias_delta[:n_b].sum())
    else:
        xb.refresh()
    to_p, per_ohm_sum, n_pulses, most, verified = (float(v) for v in sums)
    e_write = c.t_pulse_s * n_j * (i_nom[1] ** 2 / ap_boost * to_p + i_nom[0] ** 2 * (per_ohm_sum - to_p))
    return WriteOutcome(
        failed=idx.take(failed[:n_failed]),
        pulses=int(n_pulses),
        switches=m,
        junction_failures=int(n_failed_j),
        most_attempts=int(most),
        e_write_j=e_write,
        e_verify_j=c.v_read_v**2 * c.t_read_s * verified,
    )


def _one_level_moves(w: np.ndarray, old: np.ndarray, w_max: float, levels: int) -> tuple[np.ndarray, np.ndarray] | None:
    """If every pair moves by exactly one level (what a training step does), per pair whether its
    + cell is the one that moves and whether that cell gains a junction in P; else None."""
    if not levels:
        return None
    scale = (levels - 1) / w_max
    q_new = np.rint(w * scale)
    q_old = np.rint(old * scale)
    step = q_new - q_old
    if not np.abs(step).max() == 1.0:  # (a never-written pair, NaN, goes the general way)
        return None
    total = q_new + q_old  # = 2·q_old ± 1: positive on the + side of the grid
    return total > 0, total * step > 0


def _general_moves(w: np.ndarray, old: np.ndarray, w_max: float, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs with a junction to switch (positions, ascending) and their cells' junction switches,
    ``(2, len(positions))``: + AP → P, − P → AP.

    With continuous levels a cell is one analog element, its junction in P while it carries the
    weight: it switches only when the pair's weight changes sign (or leaves or reaches 0), found by
    comparing signs (byte-wide passes), the moves computed for those pairs only.
    """
    if not levels:
        new_p, new_m, old_p, old_m = w > 0, w < 0, old > 0, old < 0  # a never-written pair (NaN): reset, 0
        moving = np.flatnonzero((new_p != old_p) | (new_m != old_m))
        return moving, np.stack([new_p[moving].astype(np.float64) - old_p[moving],
                                 new_m[moving].astype(np.float64) - old_m[moving]])
    new_p, new_m = cell_levels(w, w_max, levels)
    old_p, old_m = cell_levels(old, w_max, levels)
    moves = np.stack([new_p - old_p, new_m - old_m])
    moving = np.flatnonzero((moves != 0).any(axis=0))
    return moving, (moves if moving.size == moves.shape[1] else moves[:, moving])


def _junction_g(xb: CrossbarArray, idx: np.ndarray, bounds: np.ndarray, parallel: bool) -> np.ndarray:
    """``(2, m)`` the junction conductances G_P (``parallel``) or G_AP of both cells of the pairs:
    their ceiling or floor (``bounds`` of their records), except for stuck cells (their own
    fabrication values)."""
    g = np.array(bounds[:, 2:4].T if parallel else bounds[:, 0:2].T, dtype=np.float64)
    stuck = np.nonzero(bounds[:, 0:2].T == bounds[:, 2:4].T)
    if stuck[0].size:
        g[stuck] = (xb.g_p if parallel else xb.g_ap).reshape(2, -1)[stuck[0], idx[stuck[1]]]
    return g


def _cell_trains(xb: CrossbarArray, idx: np.ndarray, bounds: np.ndarray, moves: np.ndarray, noise: NoiseStreams,
                 i_nom: np.ndarray, inv_rate: np.ndarray, ap_boost: float,
                 c: CrossbarConfig) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Pulses and failed junctions per cell ``(2, m)`` for any junction moves, the write energy [J]
    and the number of junction switches."""
    m = idx.size
    moves = moves.T.ravel()  # pair-major (cell 2k + i: cell i of pair k): junctions drawn in pair order
    owner = np.repeat(np.arange(2 * m), np.abs(moves).astype(np.int64))  # one entry per junction to switch
    up = moves > 0
    rate = _pick(up.astype(np.float64), inv_rate[1], inv_rate[0])
    stuck = (bounds[:, 0:2] == bounds[:, 2:4]).ravel()[owner]  # a stuck cell never confirms
    tries, failed = _pulse_trains(noise, rate[owner], float(c.write_attempts_max), np.flatnonzero(stuck))
    attempts = np.bincount(owner, weights=tries, minlength=2 * m)
    failed_cells = np.bincount(owner, weights=failed, minlength=2 * m)
    g_p, g_ap = _junction_g(xb, idx, bounds, True).T.ravel(), _junction_g(xb, idx, bounds, False).T.ravel()
    per_ohm = attempts / np.where(up, g_ap, g_p)
    to_p = float(per_ohm @ up)
    e_write = c.t_pulse_s * junctions_per_cell(c) * (i_nom[1] ** 2 / ap_boost * to_p
                                                     + i_nom[0] ** 2 * (float(per_ohm.sum()) - to_p))
    return attempts.reshape(m, 2).T, failed_cells.reshape(m, 2).T, e_write, owner.size
