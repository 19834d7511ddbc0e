"""Characterise an ``stno-array`` over HTTP: P(I) and f(I) with the threshold, a spectrum with its
linewidth, and the transient after a current step — each a ``drive`` call, plotted to PNG.

Every oscillator of the array is driven at once by input line 0 (the couplings are programmed
first: ``W_in[:, 0] = 1``, no bias, no recurrence), so each point is the median over the array
with its spread (device-to-device variability). The curves are fitted without the device's
internals: ``P/I² = K·(I/I_th − 1)/(I/I_th + Q)`` above threshold gives ``I_th`` and ``Q``, a
Lorentzian around the peak gives the half-width, an exponential approach to the final power gives
the relaxation rate. Beside each measurement the datasheet's prediction from the declared
settings (the closed forms of :mod:`device_models.stno`: the device's digital twin) is drawn.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import curve_fit  # noqa: E402

from device_models import stno  # noqa: E402
from trainer_client.characterize import Bench  # noqa: E402


def _settings(info: dict[str, Any]) -> dict[str, float]:
    return {k: v["value"] for k, v in info["settings"].items()}


def _drive(bench: Bench, levels: np.ndarray, steps: int, dt: float, **record: Any) -> dict[str, Any]:
    """One drive: one sequence per row of ``levels`` (steps,) or (rows, steps), input line 0 only."""
    levels = np.atleast_2d(levels)
    if levels.shape[1] == 1:
        levels = np.repeat(levels, steps, axis=1)
    u = np.zeros((levels.shape[0], steps, int(bench.info["topology"]["inputs"])), np.float32)
    u[:, :, 0] = levels
    return bench.lease.drive(u, dt, **record)


def _p_over_i2(i: np.ndarray, k: float, i_th: float, q: float) -> np.ndarray:
    z = i / i_th
    return k * np.clip(z - 1, 0, None) / (z + q)


def _lorentzian(f: np.ndarray, a: float, f0: float, hwhm: float, floor: float) -> np.ndarray:
    return a / (1 + ((f - f0) / hwhm) ** 2) + floor


def characterise_stno(bench: Bench) -> dict[str, Any]:
    s = _settings(bench.info)
    n = int(bench.info["topology"]["oscillators"])
    dt = 0.5 * float(bench.info["limits"]["dt"]["max"])
    gamma, q, z_max, i_th = s["gamma_g_per_s"], s["q_damping"], s["zeta_max"], s["i_th_a"]
    w_in = np.zeros((n, int(bench.info["topology"]["inputs"])), np.float32)
    w_in[:, 0] = 1.0
    bench.lease.program({"W_in": w_in, "b": np.zeros(n, np.float32), "W_rec": np.zeros((n, n), np.float32)})
    quick = bench.quick

    # 1. P(I), f(I): settle 15 relaxation times at ζ = 1.25, then average
    zetas = np.linspace(0.0, z_max, 12 if quick else 32)
    settle = int(15 / (2 * gamma * 0.25) / dt)
    steps, every = settle + (2000 if quick else 10000), 10
    out = _drive(bench, zetas[:, None], steps, dt, every=every, start=settle, quantities=["power", "phase"])
    power = out["traces"]["power"]  # (ζ, samples, oscillator)
    phase = np.unwrap(out["traces"]["phase"], axis=1)
    t = out["traces"]["time_s"]
    p_med = np.median(power.mean(axis=1), axis=1)
    p_lo, p_hi = np.percentile(power.mean(axis=1), [10, 90], axis=1)
    shift = (phase[:, -1] - phase[:, 0]) / (t[-1] - t[0]) / (2 * np.pi)  # (ζ, oscillator) [Hz]
    freq = s["f0_hz"] + np.median(shift, axis=1)
    current = zetas * i_th
    above = zetas > 0
    k0 = float(np.max(p_med[above] / current[above] ** 2))
    (k_fit, i_th_fit, q_fit), _ = curve_fit(_p_over_i2, current[above], p_med[above] / current[above] ** 2,
                                             p0=(k0 * 2, i_th, q), maxfev=20000)

    # 2. spectrum at ζ = 2: 8 sequences per oscillator averaged, Lorentzian fit, median over oscillators
    z_line = 2.0
    d = stno.noise_strength(z_line, q, gamma, 1.380649e-23 * s["temperature_k"] / s["mode_energy_j"])
    hwhm_twin = float(stno.linewidth_hwhm(z_line, q, gamma, 2 * np.pi * s["n_shift_hz"], d)) / (2 * np.pi)
    # the span covers the shifted line (N·p₀, the f0 spread) and 20 half-widths each side
    p_line = float(stno.steady_state_power(np.array(z_line), q))
    span = 2 * (abs(s["n_shift_hz"]) * p_line + 3 * s["f0_hz"] * s["f0_dtod"] + 20 * hwhm_twin)
    every_line = max(1, int(1.0 / (span * dt)))
    samples = 512 if quick else 2048
    out = _drive(bench, np.full((8, 1), z_line), settle + samples * every_line, dt, every=every_line, start=settle,
                 quantities=["spectrum"])
    spec = out["traces"]["spectrum"].mean(axis=0)  # (oscillator, frequency), averaged over the 8 sequences
    f = out["traces"]["frequency_hz"]
    df = float(f[1] - f[0])
    widths = []
    for row in spec:
        k = int(np.argmax(row))
        try:
            (a, fc, w, floor), _ = curve_fit(_lorentzian, f, row, p0=(row[k], f[k], max(2 * df, hwhm_twin), 0.0),
                                             maxfev=5000)
            widths.append(abs(w))
        except RuntimeError:
            continue
    hwhm = float(np.median(widths)) if widths else float("nan")

    # 3. transient after a step 0 → ζ_step (power every few steps, median over oscillators)
    z_step = 2.5
    rate_twin = float(stno.relaxation_rate(z_step, gamma))
    pre, post = int(2 / (gamma * dt)), int(12 / (rate_twin * dt)) + settle
    levels = np.concatenate([np.zeros(pre), np.full(post, z_step)])[None, :]
    every_tr = max(1, (pre + post) // 600)
    out = _drive(bench, np.repeat(levels, 4, axis=0), pre + post, dt, every=every_tr)
    p_tr = np.median(out["traces"]["power"].mean(axis=0), axis=1)
    t_tr = out["traces"]["time_s"] - pre * dt
    rates = []
    # one fit per sequence and oscillator: each starts from its own thermal amplitude, so averages smear
    # logistic: ln(p/(p∞ − p)) grows at 2Γ_G(ζ − 1)
    for p_o in np.moveaxis(out["traces"]["power"], 1, 2).reshape(-1, t_tr.size):
        final = float(np.median(p_o[t_tr > t_tr[-1] * 0.8]))
        after = t_tr > 0  # the rise, from its first passage of 20 % to its first passage of 80 % of p∞
        first = np.argmax(after & (p_o > 0.2 * final))
        last = np.argmax(after & (p_o > 0.8 * final))
        window = np.zeros(t_tr.size, bool)
        window[first:last] = True
        if window.sum() >= 3:
            rates.append(np.polyfit(t_tr[window], np.log(p_o[window] / (final - p_o[window])), 1)[0])
    rate = float(np.median(rates)) if rates else float("nan")

    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    twin_p = s["power_coupling"] * s["r_ohm"] * current**2 * stno.steady_state_power(zetas, q)
    ax[0, 0].fill_between(current * 1e3, p_lo * 1e6, p_hi * 1e6, alpha=0.3, label="10–90 % of oscillators")
    ax[0, 0].plot(current * 1e3, p_med * 1e6, "o-", label="measured (median)")
    ax[0, 0].plot(current * 1e3, twin_p * 1e6, "k--", label="A·p₀(ζ)·R·I² (declared)")
    ax[0, 0].axvline(i_th_fit * 1e3, color="r", lw=0.8, label=f"fitted I_th = {i_th_fit * 1e3:.3g} mA")
    ax[0, 0].set(xlabel="current [mA]", ylabel="emitted power [µW]", title="power against current")
    ax[0, 0].legend(fontsize=8)
    ax[0, 1].plot(current * 1e3, freq / 1e9, "o-", label="measured (median)")
    twin_f = s["f0_hz"] + s["n_shift_hz"] * stno.steady_state_power(zetas, q)
    ax[0, 1].plot(current * 1e3, twin_f / 1e9, "k--", label="f0 + N·p₀/2π (declared)")
    ax[0, 1].set(xlabel="current [mA]", ylabel="frequency [GHz]", title="frequency against current")
    ax[0, 1].legend(fontsize=8)
    ax[1, 0].semilogy((f - s["f0_hz"]) / 1e6, np.median(spec, axis=0), label="median over oscillators")
    ax[1, 0].set(xlabel="f − f0 [MHz]", ylabel="PSD [W/Hz]",
                 title=f"spectrum at ζ = {z_line}: HWHM {hwhm / 1e6:.3g} MHz (twin {hwhm_twin / 1e6:.3g} MHz)")
    ax[1, 1].plot(t_tr * 1e9, p_tr * 1e6, label="measured (median)")
    ax[1, 1].axvline(0, color="k", lw=0.8)
    ax[1, 1].set(xlabel="time after the step [ns]", ylabel="emitted power [µW]",
                 title=f"step 0 → ζ = {z_step}: rate {rate:.3g}/s (2Γ_G(ζ−1) = {rate_twin:.3g}/s)")
    fig.suptitle(f"{bench.info['id']} ({bench.info.get('preset')}): {n} oscillators")
    fig.tight_layout()
    png = bench.out_dir / "stno_characterization.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return {
        "figures": [png.name],
        "current_a": current.tolist(),
        "power_w_median": p_med.tolist(),
        "frequency_hz_median": freq.tolist(),
        "threshold_a": float(i_th_fit),
        "threshold_declared_a": i_th,
        "q_fitted": float(q_fit),
        "q_declared": q,
        "linewidth_hwhm_hz": hwhm,
        "linewidth_twin_hwhm_hz": hwhm_twin,
        "spectrum_resolution_hz": df,
        "transient_rate_per_s": rate,
        "transient_rate_twin_per_s": rate_twin,
        "dt_s": dt,
    }


