"""Magnetic tunnel junction (MTJ): bias-dependent TMR, thermally assisted switching, write-and-verify.

Conductance (DESIGN.md §4): ``G_AP = G_P / (1 + TMR(V))`` with ``TMR(V) = TMR₀ / (1 + V²/V_h²)``:
at the half-TMR bias ``V_h`` the magnetoresistance has fallen to half its zero-bias value. The
parallel state is taken as bias independent, the usual first approximation for MgO MTJs.

Switching (Koch et al., PRL 92, 088302 (2004); Li & Zhang, PRB 69, 134416 (2004)): a state whose
barrier is ``Δ·k_BT`` and that is pushed out by a current ``I`` (signed along the switching
direction, its own critical current ``I_c0`` per direction) leaves it at the rate ``1/τ`` with

    τ(I) = τ₀ exp[Δ (1 − I/I_c0)],        valid for I < I_c0;

at ``I = 0`` this is the Néel–Brown law ``τ₀ e^Δ`` (retention); ``I < 0`` (a current that pushes
*into* the state) lengthens it. Above ``I_c0`` the switching is precessional, outside this model:
:func:`dwell_time_s` caps the exponent at 0 there (one ``τ₀``: a write pulse of a few ``τ₀``
switches with certainty). A pulse of length ``t_p`` switches with ``P_sw = 1 − exp(−t_p/τ)``;
with both directions active (a superparamagnetic junction, small ``Δ``) the two-state Markov chain
gives :func:`flip_probability` exactly. Sign convention: a positive voltage pushes P → AP, a
negative one AP → P.

Write-and-verify (:mod:`device_models.write_verify`): each junction that must switch gets pulses,
each followed by a verify read, until the read confirms the new state or ``max_attempts`` pulses
were spent (a write failure). The attempts of one junction are geometric with parameter ``P_sw``,
drawn per junction (no loop over pulses).
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
    equivalent split form of :func:`ap_bias_split` (three passes per read); this one is the reference.
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


# ---------------------------------------------------------------------- switching physics
#: Codes of a binary junction's state (also the index of its conductance branch).
P, AP = 0, 1


def dwell_time_s(i_a: np.ndarray | float, i_c0_a: np.ndarray | float, delta: np.ndarray | float,
                 tau0_s: float) -> np.ndarray:
    """Mean dwell time [s] ``τ = τ₀ exp[Δ(1 − I/I_c0)]`` of a state pushed out by current ``i_a`` [A].

    ``i_a`` is signed along the switching direction (negative: the current holds the state).
    Valid below ``I_c0`` (Koch et al. 2004); at and above it the exponent is capped at 0
    (precessional regime, not modelled: a switch within about ``τ₀``).
    """
    ratio = np.minimum(np.asarray(i_a, dtype=np.float64) / i_c0_a, 1.0)
    return tau0_s * np.exp(np.asarray(delta) * (1.0 - ratio))


def switching_probability(t_s: np.ndarray | float, tau_s: np.ndarray | float) -> np.ndarray:
    """``P_sw = 1 − exp(−t_p/τ)``: a pulse of ``t_s`` [s] switches a state of mean dwell ``tau_s`` [s]."""
    return -np.expm1(-np.asarray(t_s, dtype=np.float64) / np.asarray(tau_s, dtype=np.float64))


def flip_probability(t_s: np.ndarray | float, tau_out_s: np.ndarray | float,
                     tau_back_s: np.ndarray | float) -> np.ndarray:
    """Probability that a junction ends a pulse of ``t_s`` [s] in the *other* state (two-state Markov chain).

    With rates ``k = 1/τ_out`` out of the present state and ``k' = 1/τ_back`` back into it,
    ``P = k/(k + k') · (1 − exp(−(k + k') t))``: exact for a constant bias, any number of flips
    within the pulse. For a stable junction (``k' → 0``) it is :func:`switching_probability`.
    """
    k = 1.0 / np.asarray(tau_out_s, dtype=np.float64)
    k_back = 1.0 / np.asarray(tau_back_s, dtype=np.float64)
    total = k + k_back
    return k / total * -np.expm1(-total * np.asarray(t_s, dtype=np.float64))


def junction_current_a(v_v: np.ndarray | float, state: np.ndarray | int, r_p_ohm: np.ndarray | float,
                       tmr0: np.ndarray | float, v_h_v: float) -> np.ndarray:
    """Current [A] through a junction in ``state`` (P or AP) at bias ``v_v`` [V]: ``V·G(state, V)``."""
    v = np.asarray(v_v, dtype=np.float64)
    g_p = 1.0 / np.asarray(r_p_ohm, dtype=np.float64)
    g = np.where(np.asarray(state) == AP, g_p / (1.0 + tmr(v, tmr0, v_h_v)), g_p)
    return v * g


def pulse_flip_probability(v_v: np.ndarray | float, t_s: np.ndarray | float, state: np.ndarray | int,
                           r_p_ohm: np.ndarray | float, tmr0: np.ndarray | float, v_h_v: float,
                           delta: np.ndarray | float, tau0_s: float, i_c0_p2ap_a: float,
                           i_c0_ap2p_a: float) -> np.ndarray:
    """Probability that a voltage pulse (``v_v`` [V], ``t_s`` [s]) leaves a junction in the other state.

    Positive voltage pushes P → AP with the P state's current against ``I_c0(P→AP)``; negative
    pushes AP → P with the AP state's current (smaller by ``1 + TMR(V)``) against ``I_c0(AP→P)``.
    Both directions are active at once (:func:`flip_probability`), so a superparamagnetic junction
    (small Δ) flips back and forth under a weak bias as it does at rest.
    """
    i_p = junction_current_a(v_v, P, r_p_ohm, tmr0, v_h_v)  # current in the P state, + pushes to AP
    i_ap = junction_current_a(v_v, AP, r_p_ohm, tmr0, v_h_v)
    tau_p2ap = dwell_time_s(i_p, i_c0_p2ap_a, delta, tau0_s)
    tau_ap2p = dwell_time_s(-i_ap, i_c0_ap2p_a, delta, tau0_s)
    in_p = np.asarray(state) == P
    return flip_probability(t_s, np.where(in_p, tau_p2ap, tau_ap2p), np.where(in_p, tau_ap2p, tau_p2ap))


def retention_time_s(delta: float, tau0_s: float) -> float:
    """Mean retention time [s] of a stored bit at rest: :func:`dwell_time_s` at ``I = 0``, the
    Néel–Brown ``τ₀ e^Δ`` (Δ = 40, τ₀ = 1 ns: 2.4·10⁸ s, about 7 years). Brown's ``τ₀`` of a macrospin is
    :func:`device_models.macrospin.brown_dwell_time_s`."""
    return float(dwell_time_s(0.0, 1.0, delta, tau0_s))


def ap_bias_split(v_ref_v: float, tmr0: float, v_h_v: float) -> tuple[float, float, float, float]:
    """Constants ``(L, C, D, a)`` of ``x ∘ (s(x) − 1) = L·x − C·g(x)``, ``g(x) = x/(D + a x²)``.

    The same function as :func:`ap_bias_excess`, split into a part linear in ``x`` and a rational
    remainder: with ``u = a x²``, ``a = (V_ref/V_h)²`` and ``L = TMR(V_ref) = TMR₀/(1 + a)``,

        s(x) − 1 = [L(1 + u) − TMR₀]/(1 + TMR₀ + u) = L − TMR₀(1 + L)/(1 + TMR₀ + u),

    so ``C = TMR₀(1 + L)`` and ``D = 1 + TMR₀``. A crossbar read ``W x + B[x∘(s(x) − 1)]`` becomes
    ``(W + L·B) x − C·B g(x)``: the linear part folds into the read matrix once per write, and
    only ``g`` runs at every read (as ``g̃ = a·g``, :mod:`device_models.crossbar_array`).
    """
    a = (v_ref_v / v_h_v) ** 2
    linear = tmr0 / (1.0 + a)
    return linear, tmr0 * (1.0 + linear), 1.0 + tmr0, a
