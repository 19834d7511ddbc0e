"""Magnetic tunnel junction (MTJ) conductance: bias-dependent TMR.

``G_AP = G_P / (1 + TMR(V))`` with ``TMR(V) = TMR₀ / (1 + V²/V_h²)`` (DESIGN.md §4): at the
half-TMR bias ``V_h`` the magnetoresistance has fallen to half its zero-bias value. The
parallel state is taken as bias independent, the usual first approximation for MgO MTJs.

(Thermally assisted switching and write-and-verify physics come with the synapse issue;
the crossbar's first approximation of programming lives in :mod:`device_models.crossbar`.)
"""

from __future__ import annotations

import numpy as np


def tmr(v_v: np.ndarray | float, tmr0: np.ndarray | float, v_h_v: float) -> np.ndarray:
    """Tunnel magnetoresistance ratio at bias ``v_v`` [V]: ``TMR₀/(1 + V²/V_h²)``."""
    v = np.asarray(v_v)
    return np.asarray(tmr0) / (1.0 + (v / v_h_v) ** 2)


def g_ap_s(g_p_s: np.ndarray | float, tmr0: np.ndarray | float, v_v: float, v_h_v: float) -> np.ndarray:
    """Antiparallel conductance [S] at bias ``v_v`` [V] from the parallel one and ``TMR₀``."""
    return np.asarray(g_p_s) / (1.0 + tmr(v_v, tmr0, v_h_v))


def ap_bias_factor(v_v: np.ndarray, v_ref_v: float, tmr0: float, v_h_v: float) -> np.ndarray:
    """``G_AP(V)/G_AP(V_ref)`` = ``(1 + TMR(V_ref)) / (1 + TMR(V))`` for the nominal ``TMR₀``.

    The shape of the bias dependence is taken from the nominal junction; the device-to-device
    spread of ``TMR₀`` enters the conductances at the reference (read) bias. This neglects the
    spread of the *shape*: an error proportional to ``tmr_dtod`` times the (small) bias
    correction, in exchange for a nonlinear read of two matrix products instead of one per
    cell and sample.
    """
    return (1.0 + tmr(v_ref_v, tmr0, v_h_v)) / (1.0 + tmr(v_v, tmr0, v_h_v))


def ap_bias_excess(x: np.ndarray, v_ref_v: float, tmr0: float, v_h_v: float) -> np.ndarray:
    """``x ∘ (s(x) − 1)`` with ``s(x) = G_AP(x·V_ref)/G_AP(V_ref)`` (:func:`ap_bias_factor`), ``x`` in units of ``V_ref``.

    The extra antiparallel current a read at ``x·V_ref`` draws beyond the linear one (per unit of
    the AP conductance at ``V_ref``): the bias nonlinearity of a crossbar read. In closed form, with
    ``u = (x V_ref/V_h)²`` and ``TMR(V_ref) = TMR₀/(1 + (V_ref/V_h)²)``,

        s(x) − 1 = [TMR(V_ref)(1 + u) − TMR₀] / (1 + u + TMR₀),

    evaluated in place (seven passes over ``x``, in its own precision). The crossbar's reads use the
    equivalent split form of :func:`ap_bias_split` (four passes per read); this one is the reference.
    """
    a = (v_ref_v / v_h_v) ** 2
    tmr_ref = tmr0 / (1.0 + a)
    u = np.square(x)
    u *= a
    den = u + (1.0 + tmr0)
    u *= tmr_ref
    u += tmr_ref - tmr0
    u /= den
    u *= x
    return u


def ap_bias_split(v_ref_v: float, tmr0: float, v_h_v: float) -> tuple[float, float, float, float]:
    """Constants ``(L, C, D, a)`` of ``x ∘ (s(x) − 1) = L·x − C·g(x)``, ``g(x) = x/(D + a x²)``.

    The same function as :func:`ap_bias_excess`, split into a part linear in ``x`` and a rational
    remainder: with ``u = a x²``, ``a = (V_ref/V_h)²`` and ``L = TMR(V_ref) = TMR₀/(1 + a)``,

        s(x) − 1 = [L(1 + u) − TMR₀]/(1 + TMR₀ + u) = L − TMR₀(1 + L)/(1 + TMR₀ + u),

    so ``C = TMR₀(1 + L)`` and ``D = 1 + TMR₀``. A crossbar read ``W x + B[x∘(s(x) − 1)]`` becomes
    ``(W + L·B) x − C·B g(x)``: the linear part folds into the read matrix once per write, and
    only ``g`` (four passes over ``x``, :func:`ap_bias_rational`) runs at every read.
    """
    a = (v_ref_v / v_h_v) ** 2
    linear = tmr0 / (1.0 + a)
    return linear, tmr0 * (1.0 + linear), 1.0 + tmr0, a


def ap_bias_rational(x: np.ndarray, d: float, a: float, out: np.ndarray | None = None) -> np.ndarray:
    """``g(x) = x/(D + a x²)`` of :func:`ap_bias_split`, in ``x``'s precision (``out``: a buffer of its shape)."""
    out = np.square(x, out=out)
    out *= a
    out += d
    np.divide(x, out, out=out)
    return out
