"""The element-wise work of one relax update as compiled loops (numba): four passes where NumPy made a dozen.

An update of a crossbar network (:meth:`device_models.crossbar.CrossbarNetwork._settle`) is a few
small matrix products (BLAS) and element-wise work over every neuron of every layer: the square
of the states (read energy), the bias nonlinearity's ``g̃(v) = v/(v² + D/a)``, the clip that gives
the neuron energy, and the STNO response. At an EP batch of 64 (64 × 522 neurons) each NumPy pass
costs about 2.5 µs, a third of it the call, and an update made about a dozen: more than its matrix
products. Here the same arithmetic runs as four loops over the layer buffer, each vectorised by
LLVM, 1–3 µs apiece.

Bits: the states are the same IEEE operations, in the same order and type, as the NumPy
expressions they replace (``np.clip`` then ``max(·, 0)``, ``c·α + γ``, the division; ``v·v``,
``+ D/a``, the division), with no contraction into fused multiply-adds (numba's default: the only
fast-math flag set is ``reassoc``, on the loops that only sum, which lets the energies' sums run
in vector lanes; their order depends on the length alone, see :func:`square_sum`) — so a
device reads bit for bit what it read before, and the ideal twin still matches the software
reference (tests/test_ep_protocol.py). Only the energy sums (float32 lanes, then float64) may differ
from a BLAS dot product in the last bits. ``error_model="numpy"``: a division by zero gives inf/NaN
as NumPy does, instead of a Python exception that would also stop the loop from vectorising.

Compiled when a chip is made (:func:`warm`, about half a second) and cached where a cache can be
written (:mod:`device_models.compiled`: later processes load it in about 0.2 s).
"""

from __future__ import annotations

import numpy as np

from device_models.compiled import kernel, maximum, minimum

#: ``reassoc`` only: sums in any order (vector lanes); no ``contract``, so no FMA changes a state's bits
_FAST = {"reassoc"}


@kernel(fastmath=_FAST)
def square_sum(v: np.ndarray, weights: np.ndarray) -> float:
    """``Σ v²·weights`` over the flat buffer ``v``: the read energy of the reads the states drive
    (``weights``: the conductance each entry's squared voltage draws through,
    :meth:`CrossbarNetwork._read_weights_of_states`).

    A sum only, no store: a loop that also writes an array gets a run-time overlap check from the
    vectoriser and a scalar fallback, and the sum's order — its last bits — would then depend on
    where the buffers happen to lie (twin devices answered different energies). Without stores
    the order depends on the length alone.
    """
    total = v.dtype.type(0.0)
    for i in range(v.size):
        x = v[i]
        total += x * x * weights[i]
    return float(total)


@kernel()
def rational(v: np.ndarray, den: float, g: np.ndarray) -> None:
    """``g ← v/(v² + den)``: the bias nonlinearity's ``g̃`` of the states (element-wise: the same
    bits whichever way the loop runs)."""
    for i in range(v.size):
        x = v[i]
        g[i] = x / (x * x + den)


@kernel(fastmath=_FAST)
def clip_sums(h: np.ndarray, lo: float) -> tuple[float, float]:
    """``(Σc, Σc²)`` of ``c = clip(h, lo, 1)`` over the flat buffer ``h``: with ``lo = −(ζ_max+1)/(ζ_max−1)``,
    ``Σζ² = N + 2gΣc + g²Σc²`` is the neurons' Joule energy (:func:`device_models.stno.neuron_energy_j`)."""
    one = h.dtype.type(1.0)
    s1 = h.dtype.type(0.0)
    s2 = h.dtype.type(0.0)
    for i in range(h.size):
        c = minimum(maximum(h[i], lo), one)
        s1 += c
        s2 += c * c
    return float(s1), float(s2)


@kernel()
def stno_response(h: np.ndarray, alpha: float, gamma: float) -> None:
    """``h ← c/(c·α + γ)``, ``c = clip(h, 0, 1)``, in place: :func:`device_models.stno.activation`,
    the same operations in the same order (strict IEEE: no fast-math flag at all)."""
    one = h.dtype.type(1.0)
    zero = h.dtype.type(0.0)
    for i in range(h.size):
        c = maximum(minimum(h[i], one), zero)  # = clip(h, 0, 1), −0.0 and NaN kept as NumPy keeps them
        h[i] = c / (c * alpha + gamma)


_WARM: set[np.dtype] = set()


def warm(dtype: np.dtype) -> None:
    """Compile (or load from the cache) every kernel for buffers of ``dtype`` now, once per process:
    a chip is made when its server starts, and its first relax should not wait for the compiler."""
    dtype = np.dtype(dtype)
    if dtype in _WARM:
        return
    v = np.zeros(1, dtype)
    zero = dtype.type(0.0)
    square_sum(v, v)
    rational(v, zero, v)
    clip_sums(v, zero)
    stno_response(v, zero, zero)
    _WARM.add(dtype)
