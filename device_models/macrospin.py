"""Macrospin reference model: stochastic LLG with Slonczewski torque, vectorised over junctions.

Too slow to train with, kept to cross-check the fast models (DESIGN.md §4): its thermal
equilibrium and its thermally activated switching have closed forms (Brown, Phys. Rev. 130, 1677
(1963)) that the tests compare it with, and it can generate "measured" traces for surrogates.

Model. A single-domain free layer ``m`` (``|m| = 1``) with uniaxial anisotropy along ``z``
(field ``H_K``), an applied field ``H`` and a Slonczewski spin-transfer torque of field amplitude
``a_J`` [A/m] and polarizer ``p̂``. In reduced units — fields in ``H_K``, time ``s = γμ₀H_K·t`` —
the Landau–Lifshitz–Gilbert–Slonczewski equation in Landau–Lifshitz form reads

    dm/ds = −[m×h + α m×(m×h) + a m×(m×p̂) − α a m×p̂] / (1 + α²),
    h = m_z ẑ + h_app + h_th,

(``a > 0`` pulls ``m`` towards ``p̂``). The thermal field is Brown's: Gaussian, white,
``⟨h_th,i h_th,j⟩ = (α/Δ)·δ_ij δ(s)`` with the barrier ``Δ = μ₀M_sH_KV/(2k_BT)``, i.e.
``2αk_BT/(γμ₀·μ₀M_sV)`` per component in SI [A²/m²·s] (``γ`` in rad/(s·T)), variance divided by
``ds`` per step. The noise is multiplicative and the equation is meant in the Stratonovich
sense, so it is integrated with the stochastic Heun scheme (predictor–corrector, one thermal
field per step for both stages; Garcia-Palacios & Lazaro, PRB 58, 14937 (1998)), and ``m`` is
renormalised to unit length after every step.

Closed forms: the equilibrium density of ``x = cos θ`` at ``h_app = 0, a = 0`` is
``∝ exp(Δx²)`` (``P(θ) ∝ sin θ·exp(Δ cos²θ)``); the mean dwell time in one well is Brown's
``τ ≈ (1+α²)/(αγμ₀H_K)·√(π/Δ)·e^Δ`` for ``Δ ≳ 5`` (:func:`brown_dwell_time_s`), and exactly the
mean first-passage time of the axially symmetric Fokker–Planck equation (:func:`dwell_time_exact_s`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import integrate as _quad
from scipy import special

#: Gyromagnetic ratio of the electron [rad/(s·T)] (CODATA 2018).
GAMMA = 1.76085963023e11
#: Vacuum permeability [T·m/A].
MU0 = 1.25663706212e-6
#: Boltzmann constant [J/K].
K_B = 1.380649e-23
#: Reduced Planck constant [J·s] and elementary charge [C].
HBAR, E_CHARGE = 1.054571817e-34, 1.602176634e-19


@dataclass(frozen=True)
class MacrospinParams:
    """A uniaxial free layer, SI units."""

    ms_a_per_m: float  # [A/m] saturation magnetisation M_s
    hk_a_per_m: float  # [A/m] anisotropy field H_K
    volume_m3: float  # [m³] free-layer volume V
    alpha: float  # [1] Gilbert damping
    temperature_k: float  # [K]
    gamma: float = GAMMA  # [rad/(s·T)]

    @property
    def delta(self) -> float:
        """Thermal stability ``Δ = μ₀M_sH_KV/(2k_BT)`` (the barrier in units of k_BT)."""
        return MU0 * self.ms_a_per_m * self.hk_a_per_m * self.volume_m3 / (2 * K_B * self.temperature_k)

    @property
    def time_unit_s(self) -> float:
        """[s] the reduced time unit ``1/(γμ₀H_K)``."""
        return 1.0 / (self.gamma * MU0 * self.hk_a_per_m)

    @classmethod
    def from_delta(cls, delta: float, alpha: float, hk_a_per_m: float = 1.0e5, ms_a_per_m: float = 1.0e6,
                   temperature_k: float = 300.0) -> MacrospinParams:
        """The free layer with barrier ``delta``: the volume follows from the other values."""
        volume = 2 * K_B * temperature_k * delta / (MU0 * ms_a_per_m * hk_a_per_m)
        return cls(ms_a_per_m, hk_a_per_m, volume, alpha, temperature_k)


def slonczewski_field_a_per_m(current_a: float, params: MacrospinParams, efficiency: float = 0.6) -> float:
    """[A/m] Slonczewski torque amplitude ``a_J = ħηI/(2eμ₀M_sV)`` of a current ``I`` [A].

    ``η`` is the spin-transfer efficiency (Slonczewski, JMMM 159, L1 (1996)); positive ``I``
    pulls ``m`` towards the polarizer.
    """
    return HBAR * efficiency * current_a / (2 * E_CHARGE * MU0 * params.ms_a_per_m * params.volume_m3)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of component-major arrays ``(3, n)`` (rows stay contiguous)."""
    return np.stack((a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]))


def _drift(m: np.ndarray, h: np.ndarray, alpha: float, a: float, p: np.ndarray | None) -> np.ndarray:
    """Reduced LLGS right-hand side (see the module docstring) for fields ``h`` (3, n)."""
    mxh = _cross(m, h)
    out = mxh + alpha * _cross(m, mxh)
    if p is not None and a != 0.0:
        mxp = _cross(m, np.broadcast_to(p, m.shape))
        out += a * _cross(m, mxp) - (alpha * a) * mxp
    out *= -1.0 / (1.0 + alpha * alpha)
    return out


def heun_step(m: np.ndarray, ds: float, rng: np.random.Generator, *, alpha: float, delta: float,
              h_app: np.ndarray | None = None, a: float = 0.0, p: np.ndarray | None = None) -> np.ndarray:
    """One stochastic Heun step of reduced length ``ds`` for ``m`` of shape ``(3, n)``; returns the new ``m``.

    The thermal field (std ``√(α/(Δ·ds))`` per component, :data:`delta` = ∞ for T = 0) is drawn
    once and used in the predictor and the corrector (Stratonovich); ``|m| = 1`` afterwards.
    """
    sigma = np.sqrt(alpha / (delta * ds)) if np.isfinite(delta) else 0.0
    h_ext = rng.standard_normal(m.shape) * sigma if sigma else np.zeros_like(m)
    if h_app is not None:
        h_ext += np.asarray(h_app).reshape(3, -1)

    def field(mm: np.ndarray) -> np.ndarray:
        h = h_ext.copy()
        h[2] += mm[2]  # uniaxial anisotropy along z
        return h

    f0 = _drift(m, field(m), alpha, a, p)
    pred = m + ds * f0
    f1 = _drift(pred, field(pred), alpha, a, p)
    out = m + (0.5 * ds) * (f0 + f1)
    out /= np.sqrt(np.einsum("ij,ij->j", out, out))
    return out


@dataclass
class MacrospinRun:
    """Outcome of :func:`simulate`: final state, ``m_z`` record, and switches counted at every step."""

    m: np.ndarray  # (3, n) final magnetisation
    mz: np.ndarray  # (steps // record_every, n) m_z every record_every steps
    switches: np.ndarray  # (n,) switches with hysteresis at ±threshold, checked at every step


def simulate(m0: np.ndarray, steps: int, ds: float, rng: np.random.Generator, *, alpha: float, delta: float,
             h_app: np.ndarray | None = None, a: float = 0.0, p: np.ndarray | None = None,
             record_every: int = 1, threshold: float = 0.5) -> MacrospinRun:
    """Run ``steps`` Heun steps from ``m0`` (3, n).

    Records only ``m_z`` (what a TMR read measures) every ``record_every`` steps, so that long
    runs of many junctions stay small, and counts switches at *every* step: a switch is ``m_z``
    reaching the other side's ``±threshold`` (hysteresis; the side at the start is the sign of
    ``m_z``). Counting on a sparser record would miss excursions and lengthen dwell times.
    """
    m = np.array(m0, dtype=np.float64)
    rec = np.empty((steps // record_every, m.shape[1]))
    side = np.where(m[2] >= 0, 1, -1)
    switches = np.zeros(m.shape[1], dtype=np.int64)
    for k in range(steps):
        m = heun_step(m, ds, rng, alpha=alpha, delta=delta, h_app=h_app, a=a, p=p)
        flip = (m[2] * side) <= -threshold
        if flip.any():
            switches += flip
            side[flip] *= -1
        if (k + 1) % record_every == 0:
            rec[(k + 1) // record_every - 1] = m[2]
    return MacrospinRun(m, rec, switches)


def equilibrium_sample(n: int, delta: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors drawn from the zero-field equilibrium ``∝ exp(Δ m_z²)`` (start runs in equilibrium)."""
    grid = np.linspace(-1.0, 1.0, 20001)
    w = np.exp(delta * (grid**2 - 1.0))
    cdf = np.concatenate(([0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * np.diff(grid))))
    x = np.interp(rng.uniform(0, cdf[-1], n), cdf, grid)
    phi = rng.uniform(0, 2 * np.pi, n)
    r = np.sqrt(np.clip(1 - x * x, 0, None))
    return np.stack((r * np.cos(phi), r * np.sin(phi), x))


def equilibrium_density(x: np.ndarray, delta: float) -> np.ndarray:
    """Normalised density of ``x = cos θ`` at equilibrium: ``exp(Δx²)/Z`` on ``[−1, 1]`` (Boltzmann)."""
    z = np.sqrt(np.pi / delta) * special.erfi(np.sqrt(delta))  # ∫_{-1}^{1} e^{Δx²} dx
    return np.exp(delta * np.asarray(x) ** 2) / z


def brown_dwell_time_s(params: MacrospinParams) -> float:
    """[s] Brown's high-barrier mean dwell time ``(1+α²)/(αγμ₀H_K)·√(π/Δ)·e^Δ`` (valid for Δ ≳ 5)."""
    d, a = params.delta, params.alpha
    return (1 + a * a) / a * np.sqrt(np.pi / d) * np.exp(d) * params.time_unit_s


def dwell_time_exact_s(params: MacrospinParams, threshold: float = 0.5) -> float:
    """[s] exact mean time from ``m_z = −x*`` to ``m_z = +x*`` at zero field (``x*`` = ``threshold``).

    For a uniaxial layer the precession does not change ``θ``, and ``x = cos θ`` obeys the 1-D
    Fokker–Planck equation ``∂W/∂s = ∂_x[k(1−x²)(∂_xW − 2ΔxW)]`` with ``k = α/(2Δ(1+α²))`` (Brown
    1963). Its mean first-passage time is ``∫_{−x*}^{x*} dy e^{−Δy²}/(k(1−y²)) ∫_{−1}^{y} e^{Δz²} dz``
    (Gardiner, Handbook of Stochastic Methods, §5.2.7): the dwell time that switching with
    hysteresis at ``±x*`` counts, at any Δ; Brown's formula is its high-barrier limit.
    """
    d, a = params.delta, params.alpha
    k = a / (2 * d * (1 + a * a))
    root = np.sqrt(d)

    def inner(y: float) -> float:
        return float(np.sqrt(np.pi / (4 * d)) * (special.erfi(root * y) + special.erfi(root)))

    value, _ = _quad.quad(lambda y: np.exp(-d * y * y) / (k * (1 - y * y)) * inner(y), -threshold, threshold,
                          limit=200)
    return float(value) * params.time_unit_s
