"""One MTJ crossbar array: its fabrication draws, programmed conductances and the read matrices they give.

A crossbar of ``n_out × (n_in + 1)`` differential pairs (the last column a bias line held at the
read bias) is read through two matrices, because only the antiparallel part ``B`` of a cell's
conductance depends on the bias (DESIGN.md §4, :func:`device_models.mtj.ap_bias_split`):

    W x + B[x∘(s(x) − 1)] = (W + L·B) x − (C/a)·B g̃(x),   g̃(x) = x/(x² + D/a) = a·g(x),

with ``W = (G⁺ − G⁻)/G_unit`` and ``B`` the antiparallel share of ``W``. The factor ``a`` is folded
into the second read matrix so that a read evaluates ``g̃`` in three passes over its input
(square, add, divide) — the square is the one the read energy needs anyway.

The state of a pair that a write reads and changes — its fabrication bounds, the coefficients of
its antiparallel share, its target and conductances — sits in one record (:func:`record_dtype`), so
a write gathers one cache line per pair and writes it back. The read matrices follow every write
cell by cell (:meth:`CrossbarArray.store`) or whole (:meth:`CrossbarArray.refresh`); both evaluate
:func:`read_entries` on the same numbers, so a restored state reads bit for bit as the written one.
The column and row sums of ``G⁺ + G⁻`` (the read energy, ``Σ V²·G·t_read``) follow each write by
the change of the pairs it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def ap_share_s(g_p: np.ndarray, g_ap: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Antiparallel share [S] of cells at conductance ``g`` between their ``g_ap`` and ``g_p``.

    A multi-level cell at fraction ``f`` of its range is ``f`` parallel and ``1 − f`` antiparallel;
    only the latter depends on the bias through ``TMR(V)``.
    """
    span = g_p - g_ap
    return np.divide(g_p - g, span, out=np.zeros_like(span), where=span > 0) * g_ap


def ap_coefficients(g_p: np.ndarray, g_ap: np.ndarray, floor: np.ndarray, ceil: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(a, β)`` such that the antiparallel share [S] of a cell at conductance ``g`` is ``a − β·g``.

    A free cell: ``β = G_AP/(G_P − G_AP)``, ``a = G_P·β`` (:func:`ap_share_s` as a line in ``g``);
    a stuck cell never moves: ``β = 0`` and ``a`` its share at the stuck value (0 at P, ``G_AP`` at AP).
    """
    a = ap_share_s(g_p, g_ap, floor)  # a stuck cell's share; a free cell's is replaced below
    free = ceil > floor
    beta = np.divide(g_ap, g_p - g_ap, out=np.zeros_like(g_ap), where=free)
    np.multiply(g_p, beta, out=a, where=free)
    return a, beta


def read_entries(g: tuple[np.ndarray, np.ndarray], a: tuple[np.ndarray, np.ndarray],
                 beta: tuple[np.ndarray, np.ndarray], g_unit_s: float,
                 split: tuple[float, float, float, float] | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Weights ``W`` and read-matrix entries ``W + L·B`` and ``−(C/a)·B`` (float64) of pairs with
    conductances ``g = (G⁺, G⁻)`` [S] and antiparallel-share coefficients ``a``, ``β`` of both cells
    (:func:`ap_coefficients`), evaluated in float64 whatever their storage type.

    The entries of the read matrices are ``None`` when the bias nonlinearity is off (``split`` None).
    Elementwise arithmetic only: the same pairs give the same bits however many are computed at once.
    """
    f64 = np.float64
    w = np.subtract(g[0], g[1], dtype=f64)
    w /= g_unit_s
    if split is None:
        return w, None, None
    linear, c, _, a_split = split
    w_ap = np.subtract(a[0], np.multiply(beta[0], g[0], dtype=f64), dtype=f64)
    w_ap -= a[1]
    w_ap += np.multiply(beta[1], g[1], dtype=f64)
    w_ap /= g_unit_s
    read_p = w_ap * linear
    read_p += w
    w_ap *= -c / a_split
    return w, read_p, w_ap


def record_layout(dtype: np.dtype) -> tuple[int, int]:
    """``(F, R)``: a pair's record is ``R`` float64 numbers, the first ``F`` of which hold its eight
    fabrication numbers in the emulation ``dtype`` — floor⁺, floor⁻, ceil⁺, ceil⁻ [S] and a⁺, a⁻, β⁺, β⁻
    (:func:`ap_coefficients`) — then its programmed target (grid weight, NaN: never written) and
    conductances G⁺, G⁻ [S] in float64. A float32 chip's record is 64 bytes, one cache line: a write
    of a pair gathers it once and writes three numbers back into it.
    """
    f = 8 * np.dtype(dtype).itemsize // 8
    return f, -(-(f + 3) // 8) * 8


def _aligned_zeros(rows: int, cols: int, align: int = 64) -> np.ndarray:
    """``np.zeros((rows, cols))`` (float64) starting on an ``align``-byte boundary: a 64-byte record
    then fills one cache line instead of straddling two (NumPy aligns to 16), which halves the
    lines a write's random accesses to the records miss."""
    raw = np.zeros(rows * cols + align // 8)
    start = (-raw.ctypes.data % align) // 8
    return raw[start: start + rows * cols].reshape(rows, cols)


@dataclass
class CrossbarArray:
    """State of one crossbar: per-cell fabrication draws, programmed conductances [S], read matrices."""

    n_out: int
    n_in: int
    w_max: float
    g_unit_s: float  # conductance difference [S] worth a weight of 1
    g_range_s: float  # calibrated conductance range [S] of a pair, worth w_max
    g_p: np.ndarray  # (2, n_out, n_in+1) parallel conductance of + and − cells
    g_ap: np.ndarray  # (2, n_out, n_in+1) antiparallel conductance at the read bias
    floor: np.ndarray  # (2, …) lowest reachable conductance (G_AP, or the stuck value)
    ceil: np.ndarray  # (2, …) highest reachable conductance (G_P, or the stuck value)
    split: tuple[float, float, float, float] | None  # mtj.ap_bias_split constants (None: bias nonlinearity off)
    dtype: np.dtype
    #: keep the two read matrices input-major, ``(2, n_in, n_out)``: for a crossbar only ever read
    #: forward (the first: its inputs are clamped), whose reads take the rows of the inputs in use
    input_major: bool = False
    #: (n_out·(n_in+1), R) float64: one record per pair, row-major (:func:`record_layout`)
    records: np.ndarray = field(init=False)
    w: np.ndarray = field(init=False)  # (n_out, n_in) effective weight at the read bias, emulation dtype
    b: np.ndarray = field(init=False)  # (n_out,) effective bias
    #: (2, n_out, n_in): [W + L·B, −(C/a)·B] (bias nonlinearity on; (2, n_in, n_out), transposed,
    #: when :attr:`input_major`) or (1, n_out, n_in): [W] (off)
    read: np.ndarray = field(init=False)
    #: Σ over rows of G⁺ + G⁻ per column (n_in+1,) and over the weight columns per row (n_out,) [S]
    sums: tuple[np.ndarray, np.ndarray] = field(init=False)
    _f: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        # the fabrication part of the records in the emulation dtype: the conductances are numbers of
        # it (CrossbarNetwork._fabricate), the coefficients are rounded once here and used so by every
        # path; a float32 chip's write moves half the bytes
        f, r = record_layout(self.dtype)
        self._f = f
        self.records = _aligned_zeros(self.pairs, r)
        fab = self.fabrication(self.records)
        fab[:, 0:4] = np.stack([a.ravel() for pair in (self.floor, self.ceil) for a in pair], axis=1)
        fab[:, 4:8] = np.stack([a.ravel() for a in ap_coefficients(self.g_p, self.g_ap, self.floor, self.ceil)
                                for a in a], axis=1)
        self.records[:, f] = np.nan  # never written
        self.records[:, f + 1: f + 3] = self.floor.reshape(2, -1).T  # fresh chip: every cell in its reset state
        self.refresh()

    def fabrication(self, records: np.ndarray) -> np.ndarray:
        """``(m, 8)`` view of records' fabrication numbers (floor⁺, floor⁻, ceil⁺, ceil⁻, a⁺, a⁻, β⁺, β⁻),
        in the emulation dtype."""
        return records[:, : self._f].view(self.dtype)

    def old_targets(self, records: np.ndarray) -> np.ndarray:
        """The grid targets in records (NaN: never written)."""
        return records[:, self._f]

    def programmed(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grid targets and conductances G⁺, G⁻ [S] of the pairs at flat indices ``pairs`` (copies):
        one gathered record per pair."""
        rows = self.records.take(pairs, axis=0)
        f = self._f
        return (np.ascontiguousarray(rows[:, f]), np.ascontiguousarray(rows[:, f + 1]),
                np.ascontiguousarray(rows[:, f + 2]))

    @property
    def target_column(self) -> int:
        """Column of a record (float64) that holds the pair's grid target; G⁺, G⁻ follow it."""
        return self._f

    @property
    def pairs(self) -> int:
        return self.n_out * (self.n_in + 1)

    @property
    def g(self) -> np.ndarray:
        """(2, n_out, n_in+1) achieved conductances [S] (a view into the records)."""
        f = self._f
        return np.moveaxis(self.records[:, f + 1: f + 3].reshape(self.n_out, self.n_in + 1, 2), 2, 0)

    @property
    def target(self) -> np.ndarray:
        """(n_out, n_in+1) grid target of each pair, NaN where never written (a view into the records)."""
        return self.records[:, self._f].reshape(self.n_out, self.n_in + 1)

    def set_state(self, g: np.ndarray, target: np.ndarray) -> None:
        """Replace the conductances ``(2, n_out, n_in+1)`` and targets ``(n_out, n_in+1)`` and rederive all."""
        f = self._f
        self.records[:, f + 1: f + 3] = g.reshape(2, -1).T
        self.records[:, f] = target.reshape(-1)
        self.refresh()

    def refresh(self) -> None:
        """Recompute the weights, read matrices and conductance sums from the conductances, all cells at once."""
        g = np.ascontiguousarray(self.g)
        fab = self.fabrication(self.records)
        # the antiparallel shares' coefficients matter only to the bias nonlinearity's read matrix
        coefficients = [np.ascontiguousarray(fab[:, 4 + j]).reshape(self.n_out, self.n_in + 1) if self.split else None
                        for j in range(4)]
        w, read_p, read_g = read_entries((g[0], g[1]), (coefficients[0], coefficients[1]),
                                         (coefficients[2], coefficients[3]), self.g_unit_s, self.split)
        self.b = np.ascontiguousarray(w[:, self.n_in], dtype=self.dtype)
        if read_p is not None:
            if self.input_major:
                self.read = np.empty((2, self.n_in, self.n_out), dtype=self.dtype)
                self.read[0] = read_p[:, : self.n_in].T
                self.read[1] = read_g[:, : self.n_in].T
            else:
                self.read = np.empty((2, self.n_out, self.n_in), dtype=self.dtype)
                self.read[0] = read_p[:, : self.n_in]
                self.read[1] = read_g[:, : self.n_in]
        self._set_w(np.ascontiguousarray(w[:, : self.n_in], dtype=self.dtype))
        total = g[0] + g[1]
        self.sums = (total.sum(axis=0), total[:, : self.n_in].sum(axis=1))

    def _set_w(self, w: np.ndarray) -> None:
        self.w = w
        if self.split is None:
            self.read = w[None]  # without the nonlinearity the read matrix is W itself

    def store(self, idx: np.ndarray, records: np.ndarray, g_new: tuple[np.ndarray, np.ndarray], target: np.ndarray,
              w_idx: np.ndarray | None = None, b_idx: np.ndarray | None = None) -> None:
        """Write new conductances ``g_new`` and grid targets of the pairs at flat indices ``idx``, whose
        records (as gathered before the write) are ``records``, and update the derived matrices and
        sums there only (a training step rewrites a fraction of a large array).

        The read entries are computed from the records' coefficients, as :meth:`refresh` does for all
        pairs: both paths give the same bits. When the caller knows where the pairs sit: the first
        ``len(w_idx)`` are weights (``w_idx``: their flat index in the ``(n_out, n_in)`` matrices)
        and the rest biases (``b_idx``: their rows); with neither, the pairs may be anywhere.
        """
        f = self._f
        delta = g_new[0] + g_new[1]
        delta -= records[:, f + 1]
        delta -= records[:, f + 2]
        self.write_records(idx, g_new, target)
        ap = self.fabrication(records)
        w, read_p, read_g = read_entries(g_new, (ap[:, 4], ap[:, 5]), (ap[:, 6], ap[:, 7]), self.g_unit_s, self.split)
        n1 = self.n_in + 1
        if w_idx is None and b_idx is None:  # pairs anywhere: find the bias column among them
            rows = idx // n1
            cols = idx - rows * n1
            in_w = np.flatnonzero(cols < self.n_in)
            in_b = np.flatnonzero(cols == self.n_in)
            w_idx = rows.take(in_w) * self.n_in + cols.take(in_w)
            b_idx = rows.take(in_b)
            order = np.concatenate([in_w, in_b])  # the weights first, then the biases
            delta, w = delta.take(order), w.take(order)
            if read_p is not None:
                read_p, read_g = read_p.take(in_w), read_g.take(in_w)
        else:
            w_idx = np.empty(0, np.int64) if w_idx is None else w_idx
            b_idx = np.empty(0, np.int64) if b_idx is None else b_idx
        n_w = w_idx.size
        w_rows = w_idx // self.n_in
        # the conductance sums: per column over all rows (bias column n_in included), per row over the weights
        self.sums[0][:] += np.bincount(w_idx - w_rows * self.n_in, weights=delta[:n_w], minlength=n1)
        self.sums[0][self.n_in] += float(delta[n_w:].sum())
        self.sums[1][:] += np.bincount(w_rows, weights=delta[:n_w], minlength=self.n_out)
        if b_idx.size:
            self.b[b_idx] = w[n_w:]
        if not n_w:
            return
        self.w.reshape(-1)[w_idx] = w[:n_w]
        if read_p is not None:
            if self.input_major:  # places out of order: np.put is the faster scatter (about half, lines cached)
                at = (w_idx - w_rows * self.n_in) * self.n_out + w_rows
                np.put(self.read[0], at, read_p[:n_w])
                np.put(self.read[1], at, read_g[:n_w])
            else:  # in increasing order: an index assignment is the faster scatter
                self.read[0].reshape(-1)[w_idx] = read_p[:n_w]
                self.read[1].reshape(-1)[w_idx] = read_g[:n_w]

    def forward_matrices(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The read matrices as right operands of a forward read ``v @ M`` (``(n_in, n_out)`` each);
        the second is None when the bias nonlinearity is off."""
        if self.split is None:
            return self.read[0].T, None
        if self.input_major:
            return self.read[0], self.read[1]
        return self.read[0].T, self.read[1].T

    def backward_matrix(self) -> np.ndarray:
        """The read matrices stacked as the right operand of a transposed read ``[v, g̃(v)] @ M``
        (``(2·n_out, n_in)``; ``(n_out, n_in)`` without the nonlinearity)."""
        if self.input_major and self.split is not None:
            return np.ascontiguousarray(self.read.transpose(0, 2, 1)).reshape(2 * self.n_out, self.n_in)
        return self.read.reshape(-1, self.n_in)

    def write_records(self, idx: np.ndarray, g_new: tuple[np.ndarray, np.ndarray], target: np.ndarray) -> None:
        """Put the programmed part of the pairs' records: conductances and grid targets (the lines
        the write gathered: each scatter hits a cache line already loaded)."""
        f = self._f
        self.records[:, f][idx] = target
        self.records[:, f + 1][idx] = g_new[0]
        self.records[:, f + 2][idx] = g_new[1]

    def g_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """Σ over rows of ``G⁺ + G⁻`` per column ``(n_in+1,)`` (forward-read power per V²) and Σ over
        the weight columns per row ``(n_out,)`` (transposed read), kept up to date by every write."""
        return self.sums

    def ap_weights(self) -> np.ndarray:
        """``B``: the antiparallel share of the weights [weight units], float64 (for inspection and tests)."""
        ap = ap_share_s(self.g_p, self.g_ap, self.g)
        return (ap[0] - ap[1])[:, : self.n_in] / self.g_unit_s
