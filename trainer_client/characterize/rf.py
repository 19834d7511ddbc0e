"""Characterise an RF spin-diode network over HTTP: a resonator's rectified voltage against frequency.

Through the device's ``resonator`` test structure (``POST …/probe``): one spin diode tuned to
``f_r`` (the middle of the input band) is swept over ``f_r(1 ± 5α)`` at two powers and two chain
positions. ``resonator.png`` shows the anti-Lorentzians; the summary reads back from the curves the
zero crossing (``f_r``), the extrema (at ``f_r(1 ± α)``, ``±K·P``, sign by the chain parity), hence
``α`` and ``K``, and the ratio of the responses at the two powers (linearity: 2).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainer_client.characterize import Bench
from trainer_client.report import _pyplot


def _zero_crossing_hz(f: np.ndarray, v: np.ndarray, near: float) -> float:
    """The sign change of ``v`` closest to ``near``, linearly interpolated."""
    idx = np.flatnonzero(np.sign(v[:-1]) != np.sign(v[1:]))
    if idx.size == 0:
        return float("nan")
    k = idx[np.argmin(np.abs(f[idx] - near))]
    return float(f[k] - v[k] * (f[k + 1] - f[k]) / (v[k + 1] - v[k]))


def characterise_rf_network(bench: Bench) -> dict[str, Any]:
    """Rectified voltage of the test resonator against drive frequency (PNG + summary)."""
    settings = bench.info["settings"]
    alpha = float(settings["alpha"]["value"])
    p_max = float(settings["p_max_w"]["value"])
    f_in = bench.info["topology"]["input_frequencies_hz"]
    f_r = float(np.median(f_in))
    points = 201 if bench.quick else 801
    f = f_r * (1 + alpha * np.linspace(-5, 5, points))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    curves: dict[str, Any] = {}
    for position in (0, 1):
        for power in (p_max, 0.5 * p_max):
            out = bench.lease.probe("resonator", f_hz=f, p_w=np.full(points, power), f_r_hz=np.full(points, f_r),
                                    position=np.full(points, float(position)))
            v = np.asarray(out["outputs"]["v_v"], dtype=np.float64)
            i_max, i_min = int(np.argmax(v)), int(np.argmin(v))
            curves[f"k={position},P={power:.3g}W"] = {
                "position": position, "power_w": power, "zero_hz": _zero_crossing_hz(f, v, f_r),
                "f_max_hz": float(f[i_max]), "v_max_v": float(v[i_max]),
                "f_min_hz": float(f[i_min]), "v_min_v": float(v[i_min]),
                "alpha": float(abs(f[i_max] - f[i_min]) / (2 * f_r)),
                "k_v_per_w": float((v[i_max] - v[i_min]) / (2 * power)),
            }
            ax.plot((f - f_r) / 1e6, v * 1e3, lw=1, label=f"k = {position}, P = {power * 1e6:.2g} µW")
    full0, half0 = curves[f"k=0,P={p_max:.3g}W"], curves[f"k=0,P={0.5 * p_max:.3g}W"]
    ax.axvline(0, color="k", lw=0.5)
    ax.set(xlabel=f"f − f_r [MHz] (f_r = {f_r / 1e9:.3f} GHz)", ylabel="rectified voltage [mV]",
           title=f"spin-diode resonator, α = {alpha:g}: extrema at f_r(1 ± α)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(bench.out_dir / "resonator.png", dpi=120)
    plt.close(fig)
    return {"f_r_hz": f_r, "alpha_declared": alpha, "curves": curves,
            "power_ratio": (full0["v_max_v"] - full0["v_min_v"]) / (half0["v_max_v"] - half0["v_min_v"]),
            "files": ["resonator.png"]}
