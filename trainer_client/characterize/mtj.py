"""Characterise an MTJ crossbar's junctions over HTTP: R–V loop and switching probability.

Through the device's ``junction`` test structure (``POST …/probe``), as one would on a wafer:

- ``rv_loop.png``: a voltage staircase 0 → +V → −V → 0 (``t_step`` per step) on a few junctions;
  resistance under bias against voltage. The AP branch falls with |V| (``TMR(V)``); switching
  happens where the dwell time ``τ(I)`` reaches the step time, at ``V_c⁺`` (P → AP) and ``V_c⁻``.
- ``switching_probability.png``: reset, write pulse (amplitude ``V``, length ``t_p``), verify read,
  on many junctions at once; the switched fraction against ``t_p`` for several amplitudes of each
  sign, beside ``1 − exp(−t_p/τ)`` of the nominal junction the device declares.

From the measured ``τ(V)`` (``τ = −t_p/ln(1 − P_sw)``, per amplitude) a straight-line fit of
``ln τ = ln τ₀ + Δ − (Δ/I_c0)·I`` gives the junction's ``Δ`` and ``I_c0`` per direction (τ₀ taken
from the declaration): the thermally assisted switching law read back from measurements.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainer_client.characterize import Bench
from trainer_client.report import _pyplot


def _setting(info: dict[str, Any], name: str) -> float:
    return float(info["settings"][name]["value"])


def _junction(info: dict[str, Any]) -> dict[str, float]:
    """The nominal test junction the device declares (a binary MTJ of its cells)."""
    levels = int(_setting(info, "levels"))
    return {"r_p_ohm": max(levels - 1, 1) * _setting(info, "r_p_ohm"), "tmr0": _setting(info, "tmr0"),
            "v_h_v": _setting(info, "v_h_v"), "v_read_v": _setting(info, "v_read_v"), "delta": _setting(info, "delta"),
            "tau0_s": _setting(info, "tau0_s"), "i_c0_p2ap_a": _setting(info, "i_c0_p2ap_a"),
            "i_c0_ap2p_a": _setting(info, "i_c0_ap2p_a")}


def _current_a(j: dict[str, float], v: np.ndarray) -> np.ndarray:
    """|I| of the nominal junction in the state a pulse of ``v`` pushes out of (P for v > 0, AP for v < 0)."""
    r_ap = j["r_p_ohm"] * (1 + j["tmr0"] / (1 + (v / j["v_h_v"]) ** 2))
    return np.abs(v) / np.where(v > 0, j["r_p_ohm"], r_ap)


def rv_loop(bench: Bench, j: dict[str, float], v_max: float, t_step_s: float) -> dict[str, Any]:
    rows = 8 if bench.quick else 32
    n = 30 if bench.quick else 90
    up = np.linspace(0, v_max, n, endpoint=False)
    ramp = np.concatenate([up, v_max - up, -up, -v_max + up])
    out = bench.lease.probe("junction", v_v=np.tile(ramp, (rows, 1)), t_s=np.full((rows, ramp.size), t_step_s))
    r = np.asarray(out["outputs"]["r_ohm"])
    read = np.asarray(out["outputs"]["r_read_ohm"])
    threshold = 1.5 * np.median(read[:, :1])  # first step: every junction still in P (reset state)
    ap = read > threshold
    first_ap = np.argmax(ap, axis=1)  # P -> AP on the rising positive branch
    back = np.array([np.argmax(~a[2 * n:]) + 2 * n for a in ap])  # AP -> P on the negative branch
    v_c_plus = float(np.median(ramp[first_ap]))
    v_c_minus = float(np.median(ramp[back]))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2), constrained_layout=True)
    for k in range(min(rows, 6)):
        ax.plot(ramp, r[k] / 1e3, ".-", ms=2, lw=0.6, alpha=0.8)
    ax.set(xlabel="bias V [V]", ylabel="R under bias [kΩ]",
           title=f"R–V loop, {t_step_s * 1e9:.0f} ns steps: V_c+ = {v_c_plus:.3f} V, V_c− = {v_c_minus:.3f} V")
    ax.grid(alpha=0.3)
    fig.savefig(bench.out_dir / "rv_loop.png", dpi=120)
    plt.close(fig)
    tmr_read = float(np.median(read[ap]) / np.median(read[~ap]) - 1) if ap.any() and (~ap).any() else None
    return {"v_c_plus_v": v_c_plus, "v_c_minus_v": v_c_minus, "r_p_ohm": float(np.median(r[:, 0])),
            "tmr_at_read_bias": tmr_read,
            "t_step_s": t_step_s, "junctions": rows, "files": ["rv_loop.png"]}


def switching_probability(bench: Bench, j: dict[str, float]) -> dict[str, Any]:
    rows = 400 if bench.quick else 2000
    lengths = np.geomspace(1e-9, 100e-9, 7 if bench.quick else 11)
    curves: dict[str, Any] = {}
    fits = {}
    for sign, name in ((1.0, "P->AP"), (-1.0, "AP->P")):
        i_c0 = j["i_c0_p2ap_a" if sign > 0 else "i_c0_ap2p_a"]
        # amplitudes whose nominal current spans 0.90 … 0.98 of I_c0: P_sw from a few % to ~1 over the lengths
        grid = np.linspace(0.2, 0.9, 400)
        ratio = _current_a(j, sign * grid) / i_c0
        amps = [float(sign * grid[np.argmin(np.abs(ratio - q))]) for q in (0.90, 0.93, 0.96)]
        measured, taus, currents = [], [], []
        for v in amps:
            volts = np.ravel([(-sign * 0.9, v) for _ in lengths])
            times = np.ravel([(50e-9, t) for t in lengths])
            out = bench.lease.probe("junction", v_v=np.tile(volts, (rows, 1)), t_s=np.tile(times, (rows, 1)))
            read = np.asarray(out["outputs"]["r_read_ohm"])
            reset_r = float(np.median(read[:, 0::2]))
            high = read[:, 1::2] > (1.5 * reset_r if sign > 0 else reset_r / 1.5)
            p_sw = (high if sign > 0 else ~high).mean(axis=0)
            measured.append(p_sw.tolist())
            usable = (p_sw > 0.02) & (p_sw < 0.98)
            if usable.any():
                taus.append(float(np.median(-lengths[usable] / np.log1p(-p_sw[usable]))))
                currents.append(float(_current_a(j, np.array(v))))
        curves[name] = {"amplitudes_v": amps, "p_sw": measured}
        if len(taus) >= 2:  # ln τ = ln τ0 + Δ − (Δ/I_c0) I
            slope, intercept = np.polyfit(currents, np.log(taus), 1)
            delta = float(intercept - np.log(j["tau0_s"]))
            fits[name] = {"delta": delta, "i_c0_a": float(-delta / slope), "tau_s": taus, "current_a": currents}
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True, sharey=True)
    t_fine = np.geomspace(lengths[0], lengths[-1], 200)
    for ax, name in zip(axes, ("P->AP", "AP->P")):
        i_c0 = j["i_c0_p2ap_a" if name == "P->AP" else "i_c0_ap2p_a"]
        for v, p in zip(curves[name]["amplitudes_v"], curves[name]["p_sw"]):
            tau = j["tau0_s"] * np.exp(j["delta"] * (1 - _current_a(j, np.array(v)) / i_c0))
            line = ax.semilogx(lengths * 1e9, p, "o", label=f"{v:+.3f} V")[0]
            ax.semilogx(t_fine * 1e9, -np.expm1(-t_fine / tau), "-", color=line.get_color(), lw=0.8)
        fit = fits.get(name)
        ax.set(xlabel="pulse length t_p [ns]", title=f"{name}" + (f": fit Δ = {fit['delta']:.1f}, I_c0 = "
                                                                  f"{fit['i_c0_a'] * 1e6:.2f} µA" if fit else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title=f"{rows} junctions; lines: 1 − exp(−t/τ)")
    axes[0].set_ylabel("switching probability P_sw")
    fig.savefig(bench.out_dir / "switching_probability.png", dpi=120)
    plt.close(fig)
    return {"pulse_lengths_s": lengths.tolist(), "junctions": rows, "curves": curves, "fits": fits,
            "files": ["switching_probability.png"]}


def characterise_mtj_crossbar(bench: Bench) -> dict[str, Any]:
    """R–V loop and switching probability of the crossbar's test junctions (PNG + summary)."""
    j = _junction(bench.info)
    loop = rv_loop(bench, j, v_max=0.8, t_step_s=1e-6)
    psw = switching_probability(bench, j)
    return {"junction": j, "rv_loop": loop, "switching": psw, "files": loop["files"] + psw["files"]}
