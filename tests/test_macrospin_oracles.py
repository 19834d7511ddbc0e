"""Macrospin oracles (DESIGN.md §4): stochastic LLG against Boltzmann and Brown.

Independent paths: the stochastic Heun integration of the LLG equation with Brown's thermal field
(:mod:`device_models.macrospin`) against the Boltzmann equilibrium and against the mean
first-passage time of the 1-D Fokker–Planck equation (quadrature), and Brown's high-barrier
formula. Tolerances in standard errors (``K_SE``); each test has a negative control with one
parameter off by 20 % that must fail. Measured errors are printed (-s).
"""

from __future__ import annotations

import numpy as np

from device_models import macrospin as ms

K_SE = 4.0


def test_equilibrium_is_boltzmann():
    """``P(θ) ∝ sin θ·exp(Δ cos²θ)`` at zero field, Δ = 3, α = 0.5.

    4096 junctions, half started along +z and half along −z (the two wells are then balanced by
    symmetry, so the test does not wait for switching), run for 20 reduced time units
    (``1/(γμ₀H_K)``) to forget the start, then 12 snapshots 8 units apart (in-well correlation
    time ≈ 1): 49,152 samples of ``|cos θ|`` in 20 bins. Each bin's count must lie within 4
    standard errors (``√E``) of ``∫ 2e^{Δx²}/Z``; with Δ off by 20 % some bin must not.
    """
    delta, alpha, ds, n = 3.0, 0.5, 0.01, 4096
    rng = np.random.default_rng(21)
    m = np.zeros((3, n))
    m[2] = np.where(np.arange(n) < n // 2, 1.0, -1.0)
    m = ms.simulate(m, 2000, ds, rng, alpha=alpha, delta=delta, record_every=2000).m
    snaps = []
    for _ in range(12):
        m = ms.simulate(m, 800, ds, rng, alpha=alpha, delta=delta, record_every=800).m
        snaps.append(np.abs(m[2]))
    x = np.concatenate(snaps)
    edges = np.linspace(0.0, 1.0, 21)
    observed, _ = np.histogram(x, edges)

    def expected(d: float) -> np.ndarray:
        fine = np.linspace(0, 1, 20001)
        cdf = np.concatenate(([0.0], np.cumsum(np.diff(fine) * 2 * ms.equilibrium_density(fine[:-1] + 0.5 / 20000, d))))
        return x.size * np.diff(np.interp(edges, fine, cdf))

    z = (observed - expected(delta)) / np.sqrt(expected(delta))
    z_off = (observed - expected(1.2 * delta)) / np.sqrt(expected(1.2 * delta))
    print(f"\nmacrospin equilibrium: {x.size} samples, largest |z| over 20 bins {np.abs(z).max():.2f} "
          f"(Δ off by 20 %: {np.abs(z_off).max():.1f}); relative error per bin ≤ "
          f"{np.abs(observed / expected(delta) - 1).max():.4f}")
    assert np.abs(z).max() < K_SE
    assert np.abs(z_off).max() > K_SE


def test_mean_dwell_time_follows_brown():
    """Mean dwell time at Δ = 5, α = 0.2: the Fokker–Planck first-passage time, and Brown's formula.

    4096 junctions started in equilibrium, 14,000 Heun steps of 0.02 reduced units (280 units
    each, ≈ 0.4 dwell times: 1.7k switches counted at every step with hysteresis at m_z = ±0.5). The rate
    estimate ``τ = n·T/switches`` has a relative standard error ``1/√switches`` (exponential
    dwell times). It must agree with the exact mean first-passage time (quadrature) within 4
    standard errors, and not with α off by 20 %. Brown's asymptotic formula
    ``(1+α²)/(αγμ₀H_K)·√(π/Δ)·e^Δ`` is itself off the exact value by O(1/Δ) at Δ = 5; the
    measurement must agree with it within 4 SE plus that asymptotic error ``|Brown − exact|``, and
    Brown's formula with α off by 20 % must not (without that control the Brown check would follow
    from the first one by the triangle inequality, and could not fail on its own).
    """
    delta, alpha, ds, n, steps = 5.0, 0.2, 0.02, 4096, 14_000
    params = ms.MacrospinParams.from_delta(delta, alpha)
    rng = np.random.default_rng(22)
    m0 = ms.equilibrium_sample(n, delta, rng)
    run = ms.simulate(m0, steps, ds, rng, alpha=alpha, delta=delta, record_every=steps)
    switches = int(run.switches.sum())
    tau = n * steps * ds / switches * params.time_unit_s
    se = tau / np.sqrt(switches)
    exact = ms.dwell_time_exact_s(params)
    brown = ms.brown_dwell_time_s(params)
    wrong = ms.dwell_time_exact_s(ms.MacrospinParams.from_delta(delta, 1.2 * alpha))
    asymptotic = abs(brown / exact - 1)
    brown_tolerance = K_SE * se + abs(brown - exact)
    brown_wrong = ms.brown_dwell_time_s(ms.MacrospinParams.from_delta(delta, 1.2 * alpha))
    print(f"\nmacrospin dwell: {switches} switches, τ = {tau:.4g} s ± {se / tau:.3%}; exact (FP quadrature) "
          f"{exact:.4g} s: error {tau / exact - 1:+.3%} ({(tau - exact) / se:+.2f} SE); Brown {brown:.4g} s: "
          f"{tau / brown - 1:+.3%} (formula's own asymptotic error {asymptotic:.2%}); α off by 20 %: "
          f"{(tau - wrong) / se:+.1f} SE; Brown with α off by 20 %: {abs(tau - brown_wrong) / brown_tolerance:.2f} "
          f"of its tolerance")
    assert abs(tau - exact) <= K_SE * se
    assert abs(tau - wrong) > K_SE * se
    assert abs(tau - brown) <= brown_tolerance
    assert abs(tau - brown_wrong) > brown_tolerance  # negative control of the Brown comparison
    # the hysteresis threshold matters little: Brown's e^Δ dominates everything else
    assert 0.8 < brown / exact < 1.2
