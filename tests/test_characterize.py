"""``hil-train characterize``: the command around the per-kind characterisers, over real HTTP.

A device of a kind nobody registered a characteriser for gets a clear error (exit status 1) that
names its kind and the kinds that can be characterised; an unknown device id is a clear error too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HIL_TRAIN = [sys.executable, "-m", "trainer_client.cli"]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HIL_TRAIN, "characterize", *args], capture_output=True, text=True, timeout=120)


def test_unknown_device_is_a_clear_error(tmp_path: Path):
    done = _run(["--device", "no-such-device", "--out", str(tmp_path)])
    assert done.returncode == 1
    assert "no-such-device" in done.stderr and "Traceback" not in done.stderr


def test_stno_array_characterisation_measures_the_oscillator_physics(tmp_path: Path):
    """``hil-train characterize --device stno-array --quick`` over real HTTP: a PNG, and curves whose fits
    give back the physics — threshold near I_th (5 % device spread), Q near its value, the transient
    rate 2Γ_G(ζ−1), and a linewidth near (D/2p₀)(1+ν²) — without the characteriser reading internals."""
    import json

    done = _run(["--device", "stno-array", "--quick", "--out", str(tmp_path)])
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "characterization.json").read_text())
    png = tmp_path / summary["figures"][0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert abs(summary["threshold_a"] / summary["threshold_declared_a"] - 1) < 0.1
    assert abs(summary["q_fitted"] / summary["q_declared"] - 1) < 0.3
    assert abs(summary["transient_rate_per_s"] / summary["transient_rate_twin_per_s"] - 1) < 0.15
    assert summary["spectrum_resolution_hz"] < summary["linewidth_hwhm_hz"]
    assert 0.5 < summary["linewidth_hwhm_hz"] / summary["linewidth_twin_hwhm_hz"] < 2.0
    # the power curve: nothing below threshold, then growing with the current
    p = summary["power_w_median"]
    below = [pw for i, pw in zip(summary["current_a"], p) if i < 0.8 * summary["threshold_declared_a"]]
    assert max(below) < 0.01 * p[-1] and p[-1] > p[len(p) // 2] > 0
