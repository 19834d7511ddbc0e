"""Settings of an emulated MTJ crossbar network, each declared once with unit, meaning and limits.

Style after aihwkit's device configs: a frozen dataclass, one field per physical setting,
``*_dtod`` = device-to-device spread drawn once from the device seed, ``*_std`` = drawn at
each operation (cycle to cycle). Each field's metadata carries its SI unit, a one-line
meaning and its admissible range; :func:`settings_table` serves that declaration to
``describe()`` so a client can read what every number means.

Named presets (``default-v1``, ``ideal``) live in :mod:`device_models.presets`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

#: Neuron responses a crossbar network can be built with (see :func:`device_models.stno.response`).
ACTIVATIONS = ("stno", "logistic")


def _f(default: Any, unit: str, doc: str, lo: float | None = None, hi: float | None = None) -> Any:
    return field(default=default, metadata={"unit": unit, "doc": doc, "min": lo, "max": hi})


class DeclaredSettings:
    """What every settings dataclass declared with :func:`_f` does alike (crossbar, STNO array, …)."""

    def check_declared(self, skip: tuple[str, ...] = ()) -> None:
        """Refuse a setting of the wrong type or beyond its declared ``[min, max]`` (``skip``: checked apart)."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            lo, hi = f.metadata.get("min"), f.metadata.get("max")
            if f.type in ("bool", bool):
                if not isinstance(value, bool):
                    raise ValueError(f"setting {f.name!r} must be true or false, got {value!r}")
                continue
            if f.name in skip:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"setting {f.name!r} must be a finite number, got {value!r}")
            if f.type in ("int", int) and not isinstance(value, int):
                raise ValueError(f"setting {f.name!r} must be an integer, got {value!r}")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ValueError(f"setting {f.name!r} = {value} is outside [{lo}, {hi}] {f.metadata['unit']}")

    def with_overrides(self, overrides: dict[str, Any]) -> Any:
        """Return a copy with ``overrides`` applied; unknown names raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **overrides)  # type: ignore[type-var]


@dataclass(frozen=True)
class CrossbarConfig(DeclaredSettings):
    """Physics and non-idealities of an MTJ crossbar network with STNO neurons.

    Synapse: a differential pair of multi-level MTJ cells, weight ``(G⁺ − G⁻)/G_unit``; each cell
    spans ``[G_AP(V_read), G_P]`` with ``G_AP = G_P/(1+TMR(V))``, ``TMR(V) = TMR₀/(1+V²/V_h²)``.
    ``G_unit = (G_P − G_AP)/w_max`` of the nominal cell, so a fully set cell is worth ``w_max``.
    A cell of ``levels`` states is ``levels − 1`` binary MTJs in parallel (R_P of each junction
    ``(levels − 1)·r_p_ohm``); level ``n`` has ``n`` of them parallel. Write-and-verify switches them
    with current-controlled pulses (the nominal junction's current at ``v_write_v``) of ``t_pulse_s``
    that succeed with ``P_sw = 1 − exp(−t_p/τ)``,
    ``τ = τ0·exp[Δ(1 − I/I_c0)]`` (:mod:`device_models.mtj`); the nominal junction switches with
    P_sw ≈ 0.85 per pulse in either direction (I/I_c0 ≈ 0.96).
    Neuron: STNO steady state ``p₀(ζ) = (ζ−1)/(ζ+Q)`` normalised to ``[0, 1]`` (DESIGN.md §4).
    """

    # --- synapse cells -------------------------------------------------------------------
    levels: int = _f(32, "1", "distinct conductance states per polarity of one synapse cell; 0 = continuous", 0, 4096)
    prog_std: float = _f(0.01, "1", "programming error per write, fraction of the cell's conductance range", 0.0, 1.0)
    read_std: float = _f(0.005, "1", "read noise on every measured output, fraction of its full scale", 0.0, 1.0)
    r_p_dtod: float = _f(0.03, "1", "device-to-device spread of R_P (relative std, drawn once)", 0.0, 0.5)
    tmr_dtod: float = _f(0.05, "1", "device-to-device spread of TMR0 (relative std, drawn once)", 0.0, 0.5)
    stuck_fraction: float = _f(0.001, "1", "fraction of cells stuck at P or AP from fabrication", 0.0, 1.0)
    bias_nonlinearity: bool = _f(True, "bool", "conductance depends on the read voltage through TMR(V)")
    r_p_ohm: float = _f(5e3, "ohm", "parallel-state resistance R_P of one cell", 1.0, 1e9)
    tmr0: float = _f(1.5, "1", "zero-bias tunnel magnetoresistance TMR0", 0.0, 10.0)
    v_read_v: float = _f(0.15, "V", "read bias: an input of 1.0 is this voltage", 0.01, 1.0)
    v_h_v: float = _f(0.4, "V", "half-TMR bias V_h", 0.01, 10.0)
    v_read_max_v: float = _f(0.2, "V", "safe-operating limit of a read voltage (inputs beyond are refused)", 0.01, 1.0)
    # --- STNO neurons --------------------------------------------------------------------
    q_damping: float = _f(2.0, "1", "nonlinear damping Q of the STNO neurons", 0.0, 100.0)
    zeta_max: float = _f(4.0, "1", "current limit of a neuron, as supercriticality I/I_th", 1.01, 10.0)
    i_th_a: float = _f(0.5e-3, "A", "threshold current I_th of an STNO neuron", 1e-7, 1e-1)
    r_stno_ohm: float = _f(100.0, "ohm", "resistance of an STNO neuron", 1.0, 1e6)
    t_neuron_s: float = _f(5e-9, "s", "settling time of a neuron per update (a few relaxation times)", 1e-12, 1e-3)
    activation: str = _f("stno", "", "neuron response: 'stno' (steady-state power p0(zeta), the device) or 'logistic' "
                         "(sigma(2h - 1), a smooth stand-in for gradient oracles, not a device physics)")
    relax_rate: float = _f(1.0, "1", "fraction of the way to its steady state a neuron moves per update "
                           "(κ = 1 − exp(−t/τ_relax); 1: t_neuron_s spans several relaxation times)", 1e-3, 1.0)
    t_read_s: float = _f(5e-9, "s", "integration time of one crossbar read", 1e-12, 1e-3)
    # --- programming ---------------------------------------------------------------------
    v_write_v: float = _f(0.5, "V", "write pulse amplitude |V| on one junction (its sign sets the direction)", 0.01, 1.0)
    t_pulse_s: float = _f(10e-9, "s", "write pulse length t_p", 1e-12, 1e-3)
    delta: float = _f(40.0, "1", "thermal stability Δ = E_b/k_BT of each binary MTJ of a cell (storage: ≈ 40)", 1.0, 200.0)
    tau0_s: float = _f(1e-9, "s", "attempt time τ0 of thermally assisted switching, τ = τ0·exp[Δ(1 − I/I_c0)]", 1e-13, 1e-6)
    i_c0_p2ap_a: float = _f(3.37e-6, "A", "critical current I_c0 of one junction for P → AP (positive write voltage)",
                            1e-9, 1e-2)
    i_c0_ap2p_a: float = _f(2.12e-6, "A", "critical current I_c0 of one junction for AP → P (negative write voltage)",
                            1e-9, 1e-2)
    write_attempts_max: int = _f(100, "1", "write-and-verify: pulses per junction before a write is reported failed",
                                 1, 100_000)
    # --- instrument (the bench, not the chip) ---------------------------------------------
    t_bus_s: float = _f(1e-3, "s", "bus round trip per operation (instrument clock)", 0.0, 10.0)
    t_sample_s: float = _f(5e-6, "s", "DAC update and ADC readout per input vector (instrument clock)", 0.0, 1.0)
    t_write_verify_s: float = _f(2e-6, "s", "instrument time per write pulse with its verify read", 0.0, 1.0)
    t_cell_read_s: float = _f(1e-6, "s", "integration time of one cell in a weight read (read_weights)", 1e-12, 1.0)
    # --- numerics ------------------------------------------------------------------------
    dtype: str = _f("float32", "", "floating-point type of the emulation (float32 or float64)")

    def __post_init__(self) -> None:
        self.check_declared(skip=("dtype", "activation"))
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"setting 'dtype' must be 'float32' or 'float64', got {self.dtype!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"setting 'activation' must be one of {list(ACTIVATIONS)}, got {self.activation!r}")
        if self.v_read_v > self.v_read_max_v:
            raise ValueError("setting 'v_read_v' exceeds 'v_read_max_v'")
        if self.levels == 1:
            raise ValueError("setting 'levels' must be 0 (continuous) or at least 2")


def settings_table(config: DeclaredSettings) -> dict[str, dict[str, Any]]:
    """Declaration of every setting: value, unit, meaning and limits (served by ``describe()``).

    Settings are fixed when the lab loads (preset plus overrides); a value beyond its limits is
    rejected then, so ``policy`` is ``"reject"`` and there is no run-time ``step``.
    """
    return {
        f.name: {
            "value": getattr(config, f.name),
            "unit": f.metadata["unit"],
            "doc": f.metadata["doc"],
            "min": f.metadata.get("min"),
            "max": f.metadata.get("max"),
            "step": None,
            "policy": "reject",
        }
        for f in dataclasses.fields(config)
    }
