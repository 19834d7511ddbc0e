"""The per-pair work of a training step's write as compiled loops (numba): a few passes where NumPy made sixty.

A training step of Equilibrium Propagation rewrites about 10⁴ pairs of the first crossbar, each by
one level (:func:`device_models.write_verify.write_pairs`, its one-level branch): per pair a
gather of its record, the targets of both cells and the programming error on the active one
(DESIGN.md §4), the moving junction's pulse count ``⌊E/λ⌋ + 1`` from a pre-drawn exponential
(:func:`device_models.noise.exponential`), a stuck cell's own ``G_P``/``G_AP``, the clip into the
cell's range, the read entries ``W``, ``W + L·B``, ``−(C/a)·B`` of the pair
(:func:`device_models.crossbar_array.read_entries`) and scatters into the records, the weights and
the read matrices. In NumPy that was some sixty passes over the pairs, a dozen of them gathers or
scatters at random places; here one loop computes the pair's new state from its record in place
(no gather: the lines the caller's check of the old targets loaded), then short loops scatter
it, one destination each (a short loop keeps more cache misses in flight than one that does all).
Every record is read before any is written, as NumPy's gather-then-scatter did: a pair listed
twice is written from its state before the write, the later one wins.

What it bought is modest (about 15 % of ``program_cells`` at batch 64 on the 784-512-10 chip): the
write is bound by the cache misses of its random accesses to the records (25 MB), the weights and
the input-major read matrices, which compiling does not remove.

Bits: every conductance, target, weight, read entry, failure and pulse count is the same IEEE
operation, in the same order and type, as the NumPy expression it replaces (``_pick``'s
``m·a + (1 − m)·b``, ``np.maximum``/``np.minimum`` with their NaN and −0.0 rules, the float32
fabrication numbers widened to float64 before use, float64 → float32 rounding on the store), with
no fast-math flag: no fused multiply-add changes a bit. The conductance sums per column and row
accumulate the changes in pair order into zeroed bins and then add them, as ``np.bincount`` did.
Only the energy sums (``Σ pulses/G`` per direction, the verify reads' ``Σ pulses·G``) run in
loop order where NumPy used a BLAS dot product or a pairwise sum: they may differ in the last bits.
``error_model="numpy"``: a division by zero gives inf/NaN as NumPy does.

Compiled when the first chip of a configuration is made (``crossbar._warm_writes``) and cached
where a cache can be written (:mod:`device_models.compiled`).
"""

from __future__ import annotations

import numpy as np

from device_models.compiled import kernel, maximum, minimum


@kernel()
def changed_pairs(records: np.ndarray, f: int, pair: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Mask of the pairs at flat indices ``pair`` whose grid target ``q`` differs from the one in
    their record (column ``f`` of ``records``; a never-written pair, NaN, counts as changed).

    Reads the old target where it lies instead of gathering whole records: an index out of range is
    clipped to the array, as ``take(mode="clip")`` did (the write then rejects it).
    """
    n = records.shape[0]
    out = np.empty(pair.size, dtype=np.bool_)
    for i in range(pair.size):
        p = min(max(pair[i], 0), n - 1)
        out[i] = not (q[i] == records[p, f])
    return out


@kernel()
def one_level_check(records: np.ndarray, f: int, idx: np.ndarray, w: np.ndarray, scale: float) -> int:
    """1 if the pairs at ``idx`` moving to grid weights ``w`` all move by one level at most and
    one at least moves by exactly one (``max |rint(w·s) − rint(old·s)| == 1``, NaN failing it, as
    :func:`device_models.write_verify._one_level_moves` decides); 0 otherwise; −1 if an index
    lies outside the records (the caller raises, as NumPy's scatter would have)."""
    n = records.shape[0]
    most = 0.0
    for i in range(idx.size):
        p = idx[i]
        if p < 0 or p >= n:
            return -1
        step = abs(np.rint(w[i] * scale) - np.rint(records[p, f] * scale))
        if step != step:
            return 0
        most = max(most, step)
    return 1 if most == 1.0 else 0


@kernel()
def write_one_level(records: np.ndarray, fab: np.ndarray, f: int, idx: np.ndarray, w: np.ndarray,
                    err: np.ndarray, err_scale: float, expo: np.ndarray, scale: float, g_unit: float,
                    tol: float, inv0: float, inv1: float, limit: float, n_j: int,
                    g_ap: np.ndarray, g_p: np.ndarray, patch: bool, n_in: int, n_out: int,
                    weights: np.ndarray, bias: np.ndarray, read: np.ndarray, split: bool, input_major: bool,
                    linear: float, c_fac: float, sums0: np.ndarray, sums1: np.ndarray,
                    failed: np.ndarray, bias_delta: np.ndarray, out: np.ndarray) -> tuple[int, int, int]:
    """Write-and-verify pairs that each move one level (see :func:`device_models.write_verify.write_pairs`).

    ``records`` (pairs, R) float64 and ``fab`` the same buffer in the emulation dtype
    (:func:`device_models.crossbar_array.record_layout`; ``f``: the target's column); ``idx`` the
    pairs' flat indices, ``w`` their grid weights; ``err`` the float32 programming-error draws (empty
    when ``prog_std`` is 0) times ``err_scale``; ``expo`` one exponential per pair (its moving
    junction); ``scale = (levels − 1)/w_max``; ``tol = 1 + 1e-12``; ``inv0``, ``inv1`` the inverse
    switching rates P → AP, AP → P; ``g_ap``, ``g_p`` ``(2, pairs)`` the fabrication conductances
    (a stuck cell's junctions). With ``patch``, the weights, biases, read matrices (``read``:
    ``(2, n_out·n_in)``, input-major or not; unused without ``split``) and conductance sums follow
    the pairs; else only the records are written (the caller rederives everything).

    Fills ``failed`` with the positions (into ``idx``) of the failed pairs, ``bias_delta`` with the
    bias pairs' changes of ``G⁺ + G⁻`` (in order: the caller sums them as NumPy did) and ``out``
    with ``[Σ pulses/G leaving AP, Σ pulses/G, Σ pulses, max pulses, Σ pulses·G of the verify reads]``;
    returns ``(failed pairs, failed junctions, bias pairs)``.
    """
    m = idx.size
    n1 = n_in + 1
    gn_p = np.empty(m)
    gn_m = np.empty(m)
    delta = np.empty(m)
    has_err = err.size > 0
    to_p = 0.0
    per_ohm_sum = 0.0
    pulses = 0.0
    most = 0.0
    verified_p = 0.0
    verified_m = 0.0
    n_failed = 0
    n_failed_j = 0
    # every record read before any is written (a NumPy gather, then its scatters)
    for i in range(m):
        p = idx[i]
        fp = np.float64(fab[p, 0])
        fm = np.float64(fab[p, 1])
        cp = np.float64(fab[p, 2])
        cm = np.float64(fab[p, 3])
        wi = w[i]
        dg = wi * g_unit
        gt_p = fm + dg
        plus_active = gt_p >= fp  # the + cell carries the weight; the lower cell stays at its floor
        gt_p = maximum(gt_p, fp)
        gt_m = gt_p - dg
        fail = (gt_p > cp * tol) or (gt_m > cm * tol)
        if has_err:  # the error lands on the active cell of the pair
            e = np.float64(err[i]) * err_scale
            e_p = e * (1.0 if plus_active else 0.0)
            gt_p += e_p
            e -= e_p
            gt_m += e
        q_new = np.rint(wi * scale)
        q_old = np.rint(records[p, f] * scale)
        step = q_new - q_old
        total = q_new + q_old  # = 2·q_old ± 1: positive on the + side of the grid
        plus = total > 0
        on_plus = 1.0 if plus else 0.0
        rising = 1.0 if total * step > 0 else 0.0
        # the moving cell's floor and ceiling (G_AP and G_P of its junctions, unless it is stuck)
        f_mv = on_plus * fp + (1.0 - on_plus) * fm
        c_mv = on_plus * cp + (1.0 - on_plus) * cm
        stuck = f_mv == c_mv
        if stuck:  # a stuck cell never confirms; its junctions are its own G_P, G_AP
            sign = 0 if plus else 1
            f_mv = g_ap[sign, p]
            c_mv = g_p[sign, p]
        tries = np.floor(expo[i] * (rising * inv1 + (1.0 - rising) * inv0)) + 1.0
        if stuck:
            tries = np.inf
        if tries > limit:  # a junction left behind keeps its cell one junction step short of the move
            short = (2.0 * rising - 1.0) * (c_mv - f_mv) / n_j
            if plus:
                gt_p -= short
            else:
                gt_m -= short
            fail = True
            n_failed_j += 1
        tries = minimum(tries, limit)
        per_ohm = tries / (rising * f_mv + (1.0 - rising) * c_mv)  # pulses·G⁻¹ of the junction in the state it leaves
        to_p += per_ohm * rising
        per_ohm_sum += per_ohm
        pulses += tries
        most = max(most, tries)
        # within each cell's range (its bounds are float64 values of the emulation dtype)
        g_new_p = minimum(maximum(gt_p, fp), cp)
        g_new_m = minimum(maximum(gt_m, fm), cm)
        gn_p[i] = g_new_p
        gn_m[i] = g_new_m
        d = g_new_p + g_new_m  # the change of G⁺ + G⁻ (the conductance sums)
        d -= records[p, f + 1]
        d -= records[p, f + 2]
        delta[i] = d
        on_plus_tries = tries * on_plus  # a verify read of the cell after each pulse
        verified_p += on_plus_tries * g_new_p
        verified_m += (tries - on_plus_tries) * g_new_m
        if fail:
            failed[n_failed] = i
            n_failed += 1
    out[0] = to_p
    out[1] = per_ohm_sum
    out[2] = pulses
    out[3] = most
    out[4] = verified_p + verified_m
    # the records first: a tight loop of its own (the lines the check pass loaded); then the read
    # entries, computed in order, and each scatter as a loop of its own: a loop this short keeps many
    # cache misses in flight (a random line of the weights, of each read matrix), one loop doing all
    # of them keeps few and is several times slower on a cold array
    for i in range(m):
        p = idx[i]
        records[p, f] = w[i]
        records[p, f + 1] = gn_p[i]
        records[p, f + 2] = gn_m[i]
    if not patch:
        return n_failed, n_failed_j, 0
    w_at = np.empty(m, np.int64)  # the weight's flat index, or −1 − row for a bias pair
    r_at = np.empty(m, np.int64)  # its place in the read matrices
    w_new = np.empty(m)
    read_p = np.empty(m)
    read_g = np.empty(m)
    col_bins = np.zeros(n1)
    row_bins = np.zeros(n_out)
    inv_n1 = 1.0 / n1
    n_b = 0
    for i in range(m):
        p = idx[i]
        # p // n1 without a 64-bit integer division, exactly: the double quotient is within one of
        # the true one, the correction makes it exact
        row = np.int64(p * inv_n1)
        col = p - row * n1
        if col < 0:
            row -= 1
            col += n1
        elif col >= n1:
            row += 1
            col -= n1
        g_new_p = gn_p[i]
        g_new_m = gn_m[i]
        wv = (g_new_p - g_new_m) / g_unit  # crossbar_array.read_entries, term by term
        w_new[i] = wv
        if col == n_in:
            w_at[i] = -1 - row
            bias_delta[n_b] = delta[i]
            n_b += 1
            continue
        # the conductance sums as bincount made them: the changes in pair order into zeroed bins
        col_bins[col] += delta[i]
        row_bins[row] += delta[i]
        w_at[i] = row * n_in + col
        r_at[i] = col * n_out + row if input_major else row * n_in + col
        if split:
            w_ap = np.float64(fab[p, 4]) - np.float64(fab[p, 6]) * g_new_p
            w_ap -= np.float64(fab[p, 5])
            w_ap += np.float64(fab[p, 7]) * g_new_m
            w_ap /= g_unit
            rp = w_ap * linear
            rp += wv
            read_p[i] = rp
            read_g[i] = w_ap * c_fac
    for j in range(n1):
        sums0[j] += col_bins[j]
    for j in range(n_out):
        sums1[j] += row_bins[j]
    for i in range(m):
        k = w_at[i]
        if k >= 0:
            weights[k] = w_new[i]
        else:
            bias[-1 - k] = w_new[i]
    if split:
        for i in range(m):
            if w_at[i] >= 0:
                read[0, r_at[i]] = read_p[i]
        for i in range(m):
            if w_at[i] >= 0:
                read[1, r_at[i]] = read_g[i]
    return n_failed, n_failed_j, n_b
