"""Spin-torque nano-oscillator (STNO) neuron: steady-state response used as an activation.

The auto-oscillator model (Slavin & Tiberkevich, IEEE Trans. Magn. 45, 1875 (2009)) gives,
for the normalised power ``p`` driven at supercriticality ``ζ = I/I_th``,

    dp/dt = 2Γ_G (ζ − 1) p (1 − p/p₀),    p₀(ζ) = (ζ − 1)/(ζ + Q)  for ζ > 1, else 0.

A network neuron is an STNO whose bias current is set by the crossbar current it receives;
after a few relaxation times ``1/(2Γ_G(ζ−1))`` its power sits at ``p₀(ζ)``, a saturating,
rectifying function of its input — the activation of the network (DESIGN.md §4, §7).

Here the crossbar pre-activation ``h`` (in weight units) maps linearly onto the current — through
a per-neuron current amplifier, implied and not modelled (nor counted in the energy), since a
crossbar delivers tens of µA where an STNO needs mA —
``ζ = 1 + h (ζ_max − 1)``, limited to the safe-operating ``ζ ≤ ζ_max``; the measured
activation is ``p₀(ζ)/p₀(ζ_max)`` so that it spans ``[0, 1]``.
"""

from __future__ import annotations

import numpy as np


def steady_state_power(zeta: np.ndarray, q: float) -> np.ndarray:
    """Noise-free steady-state normalised power ``p₀ = (ζ−1)/(ζ+Q)`` (0 below threshold).

    Parameters
    ----------
    zeta : array
        Supercriticality ``I/I_th`` [dimensionless].
    q : float
        Nonlinear damping ``Q`` [dimensionless].
    """
    zeta = np.asarray(zeta)
    return np.where(zeta > 1.0, (zeta - 1.0) / (zeta + q), 0.0).astype(zeta.dtype, copy=False)


def supercriticality(h: np.ndarray, zeta_max: float) -> np.ndarray:
    """Bias ``ζ`` of a neuron driven by crossbar pre-activation ``h`` (h=0: threshold, h=1: ζ_max).

    The current source's compliance limits ``|ζ| ≤ ζ_max`` in either direction; a current at
    or below threshold (``ζ ≤ 1``, negative included) still flows, with no oscillation.
    """
    return np.clip(1.0 + h * (zeta_max - 1.0), -zeta_max, zeta_max)


def activation(h: np.ndarray, q: float, zeta_max: float, out: np.ndarray | None = None) -> np.ndarray:
    """Normalised STNO activation ``ρ(h) = p₀(ζ(h)) / p₀(ζ_max)`` in ``[0, 1]``.

    Written as ``c/(c·α + γ)`` with ``c = clip(h, 0, 1)``, ``α = (ζ_max − 1)/(ζ_max + Q)`` and
    ``γ = (1 + Q)/(ζ_max + Q)`` — the same function (``z = c(ζ_max − 1)``, ``ρ = z/(z + 1 + Q)·
    (ζ_max + Q)/(ζ_max − 1)``) in four passes over the array, the hot path of every ``relax``
    step. ``out`` (may be ``h`` itself) receives the result.
    """
    c = np.clip(h, 0.0, 1.0, out=out)
    den = np.multiply(c, (zeta_max - 1.0) / (zeta_max + q), dtype=c.dtype)
    den += (1.0 + q) / (zeta_max + q)
    np.divide(c, den, out=c)
    return c


def neuron_energy_j(
    h: np.ndarray, zeta_max: float, i_th_a: float, r_stno_ohm: float, t_active_s: float,
    scratch: np.ndarray | None = None,
) -> float:
    """Joule energy ``Σ R·I²·t`` of STNO neurons biased by pre-activations ``h`` for ``t_active_s``.

    ``I = ζ(h)·I_th`` (:func:`supercriticality`); the sum runs over every entry of ``h`` (batch ×
    neurons). With ``g = ζ_max − 1`` and ``c = clip(h, −(ζ_max + 1)/g, 1)`` (so ``ζ = 1 + g c``),
    ``Σζ² = N + 2gΣc + g²Σc²``: one clip and two dot products (BLAS) over ``h``, at every update
    of every ``relax``. ``scratch`` (same shape and type as ``h``, contiguous) spares the clip
    an allocation.
    """
    g = zeta_max - 1.0
    c = np.clip(h, -(zeta_max + 1.0) / g, 1.0, out=scratch).reshape(-1)
    ones = _ones(c.size, c.dtype)
    sum_zeta2 = c.size + 2.0 * g * float(np.dot(c, ones)) + g * g * float(np.dot(c, c))
    return float(r_stno_ohm * i_th_a**2 * t_active_s * max(sum_zeta2, 0.0))


_ONES: dict[np.dtype, np.ndarray] = {}


def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    """A read-only vector of ``n`` ones (a sum as a BLAS dot product, cheaper than ``sum``)."""
    have = _ONES.get(dtype)
    if have is None or have.size < n:
        have = np.ones(max(n, 1024), dtype=dtype)
        have.flags.writeable = False
        _ONES[dtype] = have
    return have[:n]


def logistic(h: np.ndarray) -> np.ndarray:
    """``σ(2h − 1)``: a smooth, sigmoid-like stand-in for the STNO response (no physics).

    EP's gradient oracle (DESIGN.md §5) needs an activation without kinks: the STNO response has
    two (threshold and current limit), and its curvature just above threshold makes the β² term
    of the symmetric estimate large. Same range ``[0, 1]`` and same midpoint as ``ρ``.
    """
    out = np.multiply(h, -2.0, dtype=np.result_type(h, np.float32))
    out += 1.0
    np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


def response(name: str, h: np.ndarray, q: float, zeta_max: float, out: np.ndarray | None = None) -> np.ndarray:
    """The neuron response called ``name`` (``"stno"`` or ``"logistic"``) of pre-activations ``h``
    (written into ``out`` when given; it may be ``h``)."""
    if name == "stno":
        return activation(h, q, zeta_max, out=out)
    if name == "logistic":
        r = logistic(h)
        if out is None:
            return r
        out[...] = r
        return out
    raise ValueError(f"unknown activation {name!r}; known: stno, logistic")
