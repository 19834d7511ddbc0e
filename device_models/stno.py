"""Spin-torque nano-oscillator (STNO): closed forms of the auto-oscillator, and the neuron activation.

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

The closed forms below (steady state, logistic transient, frequency, thermal noise strength,
thermal mean power and linewidth) are what the stochastic integration of
:mod:`device_models.stno_sde` is checked against (DESIGN.md §4, tests/test_stno_oracles.py).
Conventions: ``c = √p·e^{−iφ}`` oscillates as ``e^{−iωt}``; ``Γ_G`` [1/s] is the linear damping
rate, ``N`` [rad/s] the nonlinear frequency shift, ``Q`` the nonlinear damping, ``σI = ζΓ_G``.
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


def relaxation_rate(zeta: np.ndarray, gamma_g: np.ndarray) -> np.ndarray:
    """[1/s] rate ``2Γ_G(ζ − 1)`` at which power deviations decay near ``p₀`` (independent of ``Q``).

    The linearisation of ``dp/dt = 2Γ_G(ζ−1)p(1 − p/p₀)`` at ``p₀`` (Slavin & Tiberkevich 2009, eq. 4.13).
    """
    return 2.0 * np.asarray(gamma_g) * (np.asarray(zeta) - 1.0)


def power_transient(t_s: np.ndarray, p_init: np.ndarray, zeta: np.ndarray, q: np.ndarray,
                    gamma_g: np.ndarray) -> np.ndarray:
    """Noise-free power after a current step to ``ζ > 1``: the exact logistic solution.

    ``p(t) = p₀ / (1 + (p₀/p_init − 1)·e^{−2Γ_G(ζ−1)t})`` solves ``dp/dt = 2Γ_G(ζ−1)p(1 − p/p₀)``
    from ``p(0) = p_init > 0`` (Slavin & Tiberkevich 2009, §IV.B).
    """
    p0 = steady_state_power(np.asarray(zeta, dtype=np.float64), q)
    return p0 / (1.0 + (p0 / np.asarray(p_init) - 1.0) * np.exp(-relaxation_rate(zeta, gamma_g) * np.asarray(t_s)))


def frequency(p: np.ndarray, omega0: np.ndarray, n_shift: np.ndarray) -> np.ndarray:
    """[rad/s] nonlinear oscillation frequency ``ω(p) = ω₀ + N·p``."""
    return np.asarray(omega0) + np.asarray(n_shift) * np.asarray(p)


def noise_strength(zeta: np.ndarray, q: np.ndarray, gamma_g: np.ndarray, thermal_power: np.ndarray) -> np.ndarray:
    """[1/s] thermal noise strength ``D`` (``⟨f f*⟩ = 2Dδ(t)``) at the steady state of the drive ``ζ``.

    ``D/p₀ = Γ₊(p₀)·k_BT/E(p₀)`` (Kim, Tiberkevich & Slavin, PRL 100, 017207 (2008)) with the
    positive damping ``Γ₊(p) = Γ_G(1 + Qp)`` and the oscillation energy ``E(p) = ℰ₀·p``, so
    ``D = Γ_G(1 + Q·p₀(ζ))·k_BT/ℰ₀``. ``thermal_power = k_BT/ℰ₀`` is the power of the thermal
    floor: at ``ζ = 0`` the stationary power is Boltzmann-distributed with that mean
    (equipartition, ``ℰ₀⟨p⟩ = k_BT``). Evaluated at ``p₀`` of the drive, not at the
    instantaneous ``p``, so the noise stays additive (no Itô/Stratonovich ambiguity).
    """
    p0 = steady_state_power(np.asarray(zeta, dtype=np.float64), q)
    return np.asarray(gamma_g) * (1.0 + np.asarray(q) * p0) * np.asarray(thermal_power)


def thermal_mean_power(zeta: np.ndarray, q: np.ndarray, gamma_g: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Exact mean power ``⟨p⟩`` of the noisy oscillator at constant ``ζ`` (smooth through threshold).

    With additive noise of strength ``D`` the Fokker–Planck equation of ``p = |c|²`` has the
    stationary density ``P(p) ∝ exp{[Γ_G(ζ−1)p − Γ_G(ζ+Q)p²/2]/D}`` on ``p ≥ 0``: a Gaussian of mean
    ``μ = (ζ−1)/(ζ+Q)`` and variance ``s² = D/(Γ_G(ζ+Q))`` truncated at 0, whose mean is
    ``μ + s·φ(μ/s)/Φ(μ/s)`` (φ, Φ the standard normal density and distribution). Above threshold
    and for ``s ≪ p₀`` it is ``p₀``; at ``ζ = 0`` it is ``≈ D/Γ_G``, the thermal floor.
    """
    from scipy.special import log_ndtr

    zeta = np.asarray(zeta, dtype=np.float64)
    mu = (zeta - 1.0) / (zeta + np.asarray(q))
    s = np.sqrt(np.asarray(d) / (np.asarray(gamma_g) * (zeta + np.asarray(q))))
    x = mu / s
    mills = np.exp(-0.5 * x * x - 0.5 * np.log(2 * np.pi) - log_ndtr(x))  # φ(x)/Φ(x), stable for x ≪ 0
    return mu + s * mills


def linewidth_hwhm(zeta: np.ndarray, q: np.ndarray, gamma_g: np.ndarray, n_shift: np.ndarray,
                   d: np.ndarray) -> np.ndarray:
    """[rad/s] half-width at half maximum of the spectral line above threshold.

    ``Δω = (D/2p₀)(1 + ν²)``, ``ν = N/[Γ_G(ζ+Q)]`` (Kim, Tiberkevich & Slavin 2008): phase
    diffusion from the noise across the orbit, plus amplitude noise turned into phase noise by
    the nonlinear frequency shift. Valid while ``Δω ≪ Γ_G(ζ−1)`` (low temperature, well above
    threshold); below threshold the line is set by other physics and this returns ``inf``.
    """
    zeta = np.asarray(zeta, dtype=np.float64)
    p0 = steady_state_power(zeta, q)
    nu = np.asarray(n_shift) / (np.asarray(gamma_g) * (zeta + np.asarray(q)))
    with np.errstate(divide="ignore"):
        return np.where(p0 > 0, np.asarray(d) / (2.0 * np.where(p0 > 0, p0, 1.0)) * (1.0 + nu * nu), np.inf)


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
    ones = ones_vector(c.size, c.dtype)
    sum_zeta2 = c.size + 2.0 * g * float(np.dot(c, ones)) + g * g * float(np.dot(c, c))
    return float(r_stno_ohm * i_th_a**2 * t_active_s * max(sum_zeta2, 0.0))


_ONES: dict[np.dtype, np.ndarray] = {}


def ones_vector(n: int, dtype: np.dtype) -> np.ndarray:
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
