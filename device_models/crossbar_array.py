"""One MTJ crossbar array: its fabrication draws, programmed conductances and the read matrices they give.

A crossbar of ``n_out × (n_in + 1)`` differential pairs (the last column a bias line held at the
read bias) is read through two matrices, because only the antiparallel part ``B`` of a cell's
conductance depends on the bias (DESIGN.md §4, :func:`device_models.mtj.ap_bias_split`):

    W x + B[x∘(s(x) − 1)] = (W + L·B) x − (C/a)·B g̃(x),   g̃(x) = x/(x² + D/a) = a·g(x),

with ``W = (G⁺ − G⁻)/G_unit`` and ``B`` the antiparallel share of ``W``. The factor ``a`` is folded
into the second read matrix so that a read evaluates ``g̃`` in three passes over its input
(square, add, divide) — the square is the one the read energy needs anyway.

The read matrices follow every write cell by cell (:meth:`CrossbarArray.store`) or whole
(:meth:`CrossbarArray.refresh`); both evaluate :func:`read_entries` on the same numbers, so a
restored state reads bit for bit as the written one. The column and row sums of ``G⁺ + G⁻`` (the
read energy, ``Σ V²·G·t_read``) are recomputed when a read asks for them after a write: a
reduction over the array costs less than maintaining them cell by cell.
"""

from __future__ import annotations

import sys
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


def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    return np.ones(n, dtype=dtype)


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
    g: np.ndarray  # (2, …) achieved conductances, in the emulation dtype
    target: np.ndarray  # (n_out, n_in+1) grid target of each pair (NaN: never written)
    split: tuple[float, float, float, float] | None  # mtj.ap_bias_split constants (None: bias nonlinearity off)
    dtype: np.dtype
    #: (n_out·(n_in+1), 8), emulation dtype: floor⁺, floor⁻, ceil⁺, ceil⁻, a⁺, a⁻, β⁺, β⁻ of each pair
    #: in one row: what a write of the pair needs, in one gather
    cells: np.ndarray = field(init=False)
    ap_a: np.ndarray = field(init=False)  # (2, …) a of :func:`ap_coefficients` [S], emulation dtype
    ap_beta: np.ndarray = field(init=False)  # (2, …) β of :func:`ap_coefficients`, emulation dtype
    w: np.ndarray = field(init=False)  # (n_out, n_in) effective weight at the read bias, emulation dtype
    b: np.ndarray = field(init=False)  # (n_out,) effective bias
    #: (2, n_out, n_in): [W + L·B, −(C/a)·B] (bias nonlinearity on) or (1, n_out, n_in): [W] (off)
    read: np.ndarray = field(init=False)
    _sums: tuple[np.ndarray, np.ndarray] | None = field(init=False, default=None)
    _w_refs: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        # in the emulation dtype: the conductances are numbers of it (CrossbarNetwork._fabricate), the
        # coefficients are rounded once here and used so by every path; a float32 chip's write
        # moves half the bytes
        a, beta = ap_coefficients(self.g_p, self.g_ap, self.floor, self.ceil)
        self.ap_a, self.ap_beta = a.astype(self.dtype), beta.astype(self.dtype)
        self.cells = np.stack([a.ravel() for pair in (self.floor, self.ceil, self.ap_a, self.ap_beta) for a in pair],
                              axis=1).astype(self.dtype)
        self.refresh()

    @property
    def pairs(self) -> int:
        return self.n_out * (self.n_in + 1)

    def refresh(self) -> None:
        """Recompute the weights and read matrices from the conductances, all cells at once."""
        w, read_p, read_g = read_entries((self.g[0], self.g[1]), (self.ap_a[0], self.ap_a[1]),
                                         (self.ap_beta[0], self.ap_beta[1]), self.g_unit_s, self.split)
        self.b = np.ascontiguousarray(w[:, self.n_in], dtype=self.dtype)
        if read_p is None:
            self._set_w(np.ascontiguousarray(w[:, : self.n_in], dtype=self.dtype))
        else:
            self.read = np.empty((2, self.n_out, self.n_in), dtype=self.dtype)
            self.read[0] = read_p[:, : self.n_in]
            self.read[1] = read_g[:, : self.n_in]
            self._set_w(np.ascontiguousarray(w[:, : self.n_in], dtype=self.dtype))
        self._sums = None

    def _set_w(self, w: np.ndarray) -> None:
        self.w = w
        if self.split is None:
            self.read = w[None]  # without the nonlinearity the read matrix is W itself
        self._w_refs = sys.getrefcount(self.w)  # references when nobody holds a lent view

    def weights(self) -> np.ndarray:
        """The effective weights ``(n_out, n_in)``, read-only, that later writes leave as they are.

        No copy is made: the array is lent, and a write that finds a lent view still held elsewhere
        moves to a copy first (every view of an array holds a reference to it). An answer that drops
        the achieved weights unsent costs nothing.
        """
        view = self.w.view()
        view.flags.writeable = False
        return view

    def _own_w(self) -> None:
        """Before writing into :attr:`w`: move to a copy if a lent view of it may still be alive."""
        if sys.getrefcount(self.w) > self._w_refs:
            self._set_w(self.w.copy())

    def store(self, idx: np.ndarray, g_new: tuple[np.ndarray, np.ndarray], cells: np.ndarray,
              w_idx: np.ndarray | None = None, b_idx: np.ndarray | None = None) -> None:
        """Put new conductances ``g_new`` of the pairs at flat indices ``idx`` and update the derived
        matrices there only (a training step rewrites a fraction of a large array).

        ``cells``: those pairs' rows of :attr:`cells` (what :meth:`refresh` takes from the whole
        arrays), so both paths compute the same bits. ``w_idx`` (all pairs in weight columns: their
        flat index in the ``(n_out, n_in)`` weights) or ``b_idx`` (all in the bias column: their
        rows), when the caller knows them.
        """
        g_flat = self.g.reshape(2, -1)
        g_flat[0, idx] = g_new[0]
        g_flat[1, idx] = g_new[1]
        w, read_p, read_g = read_entries(g_new, (cells[:, 4], cells[:, 5]), (cells[:, 6], cells[:, 7]),
                                         self.g_unit_s, self.split)
        if w_idx is None and b_idx is None:
            rows = idx // (self.n_in + 1)
            w_idx = idx - rows  # flat index in the (n_out, n_in) matrices: r·n_in + c
            bias = w_idx - rows * self.n_in == self.n_in  # the column index is n_in
            if bias.any():
                self.b[rows[bias]] = w[bias]
                keep = ~bias
                w_idx, w = w_idx[keep], w[keep]
                if read_p is not None:
                    read_p, read_g = read_p[keep], read_g[keep]
        elif b_idx is not None:
            self.b[b_idx] = w
            self._sums = None
            return
        self._own_w()
        self.w.reshape(-1)[w_idx] = w
        if read_p is not None:
            self.read[0].reshape(-1)[w_idx] = read_p
            self.read[1].reshape(-1)[w_idx] = read_g
        self._sums = None

    def g_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """Σ over rows of ``G⁺ + G⁻`` per column ``(n_in+1,)`` (forward-read power per V²) and Σ over
        the weight columns per row ``(n_out,)`` (transposed read), recomputed after a write (two
        matrix-vector products over the array: cheaper than following every write cell by cell)."""
        if self._sums is None:
            n1 = self.n_in + 1
            g = self.g.reshape(2 * self.n_out, n1)
            cols = (_ones(2 * self.n_out, g.dtype) @ g).astype(np.float64)
            per_row = (g @ _ones(n1, g.dtype)).astype(np.float64)
            per_row -= g[:, self.n_in]
            self._sums = (cols, per_row[: self.n_out] + per_row[self.n_out:])
        return self._sums

    def ap_weights(self) -> np.ndarray:
        """``B``: the antiparallel share of the weights [weight units], float64 (for inspection and tests)."""
        ap = ap_share_s(self.g_p, self.g_ap, self.g)
        return (ap[0] - ap[1])[:, : self.n_in] / self.g_unit_s
