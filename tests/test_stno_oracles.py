"""STNO oracles (DESIGN.md §4): the stochastic integration measured against the closed forms.

Each test integrates the complex-amplitude SDE (:mod:`device_models.stno_sde`, the independent
path) for a batch of identical oscillators, estimates a quantity with its standard error across
oscillators (each one an independent run), and requires it within ``K_SE`` standard errors of
the closed form (:mod:`device_models.stno`). Its negative control asks the same of the closed
form with one parameter off by 20 %, which must fail: the test can tell a wrong model.
Sample sizes, steps and seeds are stated in each test; every measured error is printed (-s).
"""

from __future__ import annotations

import numpy as np
import pytest

from device_models import stno
from device_models.stno_sde import Oscillators, Recording, integrate, power, spectrum, thermal_floor

#: Tolerance, in standard errors.
K_SE = 4.0
GAMMA_G = 1e8  # [1/s]
OMEGA0 = 2 * np.pi * 1e9  # [rad/s]
N_SHIFT = 2 * np.pi * 1e8  # [rad/s]
Q = 2.0


def constant_drive(zeta: np.ndarray, n: int):
    """ζ of each batch row, the same for its ``n`` oscillators and every step."""
    zeta = np.asarray(zeta, dtype=np.float64).reshape(-1, 1, 1)
    return lambda t0, t1: np.broadcast_to(zeta, (zeta.shape[0], t1 - t0, n))


def agrees(measured: np.ndarray, se: np.ndarray, predicted: np.ndarray) -> bool:
    return bool(np.all(np.abs(np.asarray(measured) - predicted) <= K_SE * np.asarray(se)))


def report(name: str, measured: np.ndarray, se: np.ndarray, predicted: np.ndarray) -> None:
    rel = np.asarray(measured) / predicted - 1
    z = (np.asarray(measured) - predicted) / np.asarray(se)
    print(f"\n{name}: relative error {np.array2string(rel, precision=5)}, in SE {np.array2string(z, precision=2)}")


def test_steady_state_power_is_p0():
    """⟨p⟩ over 512 oscillators × 3200 samples per ζ (Γ_G·dt = 0.02, k_BT/ℰ₀ = 1e-3) equals (ζ−1)/(ζ+Q)."""
    n, dt = 512, 0.02 / GAMMA_G
    zetas = np.array([1.5, 2.0, 3.0, 4.0])
    osc = Oscillators.identical(n, omega0=OMEGA0, n_shift=N_SHIFT, gamma_g=GAMMA_G, q=Q, thermal_power=1e-3)
    rng = np.random.default_rng(11)
    run = integrate(osc, constant_drive(zetas, n), 26_000, thermal_floor(osc, 4, rng, "float64"), dt, rng,
                    zeta_max=4.0, record=Recording(every=5, start=10_000))
    per_osc = power(run.samples).mean(axis=1)  # (ζ, oscillator): time averages, independent across oscillators
    mean, se = per_osc.mean(axis=1), per_osc.std(axis=1, ddof=1) / np.sqrt(n)
    report("p0", mean, se, stno.steady_state_power(zetas, Q))
    assert agrees(mean, se, stno.steady_state_power(zetas, Q))
    # the exact thermal mean (truncated Gaussian) is p0 here, to far better than the SE
    d = stno.noise_strength(zetas, Q, GAMMA_G, 1e-3)
    assert agrees(mean, se, stno.thermal_mean_power(zetas, Q, GAMMA_G, d))
    assert not agrees(mean, se, stno.steady_state_power(zetas, 1.2 * Q))  # negative control: Q off by 20 %


def test_below_threshold_power_is_the_thermal_floor():
    """At ζ = 0, equipartition: ⟨p⟩ = k_BT/ℰ₀ (to the nonlinear damping's O(Q·k_BT/ℰ₀) correction).

    2048 oscillators, 400 ns (40 relaxation times 1/Γ_G), Γ_G·dt = 0.002 (Euler–Maruyama's own
    bias on an Ornstein–Uhlenbeck variance is Γ_G·dt/2).
    """
    n, dt, floor = 2048, 0.002 / GAMMA_G, 1e-3
    osc = Oscillators.identical(n, omega0=OMEGA0, n_shift=N_SHIFT, gamma_g=GAMMA_G, q=Q, thermal_power=floor)
    rng = np.random.default_rng(12)
    run = integrate(osc, constant_drive([0.0], n), 20_000, thermal_floor(osc, 1, rng, "float64"), dt, rng,
                    zeta_max=4.0, record=Recording(every=50))
    per_osc = power(run.samples).mean(axis=1)[0]
    mean, se = per_osc.mean(), per_osc.std(ddof=1) / np.sqrt(n)
    predicted = stno.thermal_mean_power(0.0, Q, GAMMA_G, stno.noise_strength(0.0, Q, GAMMA_G, floor))
    report("thermal floor", mean, se, predicted)
    assert predicted == pytest.approx(floor, rel=3 * Q * floor)
    assert agrees(mean, se, predicted)
    assert not agrees(mean, se, 1.2 * predicted)


@pytest.mark.parametrize("q", [1.0, 3.0])
def test_transient_is_the_logistic_with_rate_independent_of_q(q: float):
    """After a step ζ 1.5 → 3 the power follows the logistic with rate 2Γ_G(ζ−1), whatever Q.

    1024 oscillators start on the orbit p₀(1.5) with random phases; each one's rate is the
    least-squares slope of ln[p/(p₀−p)] against t over 1.5 time constants (Γ_G·dt = 5e-4,
    k_BT/ℰ₀ = 1e-5, so that the log transform of the noise is negligible).
    """
    n, dt, z1, z2 = 1024, 5e-4 / GAMMA_G, 1.5, 3.0
    osc = Oscillators.identical(n, omega0=OMEGA0, n_shift=N_SHIFT, gamma_g=GAMMA_G, q=q, thermal_power=1e-5)
    rng = np.random.default_rng(13)
    p_start, p_end = stno.steady_state_power(np.array([z1, z2]), q)
    c0 = np.sqrt(p_start) * np.exp(2j * np.pi * rng.uniform(size=(1, n)))
    steps = 1500
    run = integrate(osc, constant_drive([z2], n), steps, c0, dt, rng, zeta_max=4.0)
    p = power(run.samples)[0]
    t = (run.sample_steps + 1) * dt
    y = np.log(p / (p_end - p)) - np.log(p_start / (p_end - p_start))
    rates = (t @ y) / (t @ t)
    mean, se = rates.mean(), rates.std(ddof=1) / np.sqrt(n)
    report(f"transient rate (Q={q})", mean, se, stno.relaxation_rate(z2, GAMMA_G))
    assert agrees(mean, se, stno.relaxation_rate(z2, GAMMA_G))
    assert not agrees(mean, se, stno.relaxation_rate(z2, 1.2 * GAMMA_G))  # negative control: Γ_G off by 20 %
    # and the whole curve is the closed-form logistic (mean over oscillators, within 0.5 % of p)
    np.testing.assert_allclose(p.mean(axis=1), stno.power_transient(t, p_start, z2, q, GAMMA_G), rtol=5e-3)


@pytest.fixture(scope="module")
def locked_run() -> tuple[np.ndarray, float]:
    """1024 oscillators at ζ = 2 for 5 µs (Γ_G·dt = 0.01, k_BT/ℰ₀ = 5e-4: Δω/Γ_G(ζ−1) = 0.005).

    Returns each oscillator's unwrapped phase ``φ`` (``dφ/dt = ω − ω₀``), sampled every 2 ns.
    """
    n, dt, every = 1024, 0.01 / GAMMA_G, 20
    osc = Oscillators.identical(n, omega0=OMEGA0, n_shift=N_SHIFT, gamma_g=GAMMA_G, q=Q, thermal_power=5e-4)
    rng = np.random.default_rng(14)
    run = integrate(osc, constant_drive([2.0], n), 50_000, thermal_floor(osc, 1, rng, "float64"), dt, rng,
                    zeta_max=4.0, record=Recording(every=every, start=4000))
    return np.unwrap(-np.angle(run.samples[0]), axis=0), every * dt


def test_frequency_is_omega0_plus_n_p0(locked_run):
    """Each oscillator's mean frequency over 4.6 µs; 1024 oscillators: ω − ω₀ = N·p₀(ζ)."""
    phase, ts = locked_run
    shift = (phase[-1] - phase[0]) / ((phase.shape[0] - 1) * ts)
    mean, se = shift.mean(), shift.std(ddof=1) / np.sqrt(shift.size)
    p0 = stno.steady_state_power(np.array(2.0), Q)
    predicted = stno.frequency(p0, OMEGA0, N_SHIFT) - OMEGA0
    report("frequency shift", mean, se, predicted)
    assert agrees(mean, se, predicted)
    assert not agrees(mean, se, stno.frequency(p0, OMEGA0, 1.2 * N_SHIFT) - OMEGA0)  # N off by 20 %


def test_linewidth_is_the_kim_tiberkevich_slavin_hwhm(locked_run):
    """Phase diffusion ⟨Δφ²(τ)⟩ grows as 2Δω·τ for τ ≫ 1/Γ_G(ζ−1): Δω = (D/2p₀)(1 + ν²).

    Δω per oscillator from the growth of its mean squared phase increment between lags 100 ns
    and 300 ns (10 and 30 relaxation times), 1024 oscillators; low temperature, as the formula
    is first order in the noise (at k_BT/ℰ₀ = 2e-3 the measured line is already ≈ 3 % wider); ν = 1.57 here, so the nonlinear
    amplitude-to-phase conversion triples the line (negative control: N off by 20 %).
    """
    phase, ts = locked_run
    # the common drift (identical oscillators): removing each one's own would bend its path into a bridge
    shift = float(np.mean(phase[-1] - phase[0])) / ((phase.shape[0] - 1) * ts)

    def msd(lag: int) -> np.ndarray:
        d = phase[lag:] - phase[:-lag] - shift * (lag * ts)
        return (d * d).mean(axis=0)

    lag1, lag2 = 50, 150
    hwhm = (msd(lag2) - msd(lag1)) / (2 * (lag2 - lag1) * ts)
    mean, se = hwhm.mean(), hwhm.std(ddof=1) / np.sqrt(hwhm.size)
    d = stno.noise_strength(2.0, Q, GAMMA_G, 5e-4)
    predicted = stno.linewidth_hwhm(2.0, Q, GAMMA_G, N_SHIFT, d)
    report("linewidth HWHM", mean, se, predicted)
    assert predicted < 0.05 * GAMMA_G * (2.0 - 1.0)  # in the regime of validity
    assert agrees(mean, se, predicted)
    assert not agrees(mean, se, stno.linewidth_hwhm(2.0, Q, GAMMA_G, 1.2 * N_SHIFT, d))


def test_spectrum_integrates_to_the_mean_power_and_peaks_at_the_shifted_frequency():
    """The periodogram of ``√p·e^{iφ}``: Parseval (∫S df = ⟨|s|²⟩) and its peak at (ω − ω₀)/2π."""
    t = np.arange(4096) * 1e-9
    rng = np.random.default_rng(15)
    signal = np.sqrt(0.3) * np.exp(1j * (2 * np.pi * 40e6 * t + 0.1 * rng.standard_normal(t.size)))[:, None]
    freqs, psd = spectrum(signal, 1e-9, axis=0)
    assert psd.sum() * (freqs[1] - freqs[0]) == pytest.approx(0.3, rel=0.02)
    assert freqs[np.argmax(psd[:, 0])] == pytest.approx(40e6, abs=2 * (freqs[1] - freqs[0]))
