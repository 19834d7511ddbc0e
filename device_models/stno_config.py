"""Settings of an STNO array chip, each declared once with its SI unit, meaning and limits.

Same conventions as :mod:`device_models.config` (aihwkit-style): a frozen dataclass, one field
per physical setting, ``*_dtod`` = device-to-device spread (relative std) drawn once from the
device seed, ``*_std`` = drawn at every measurement. The model they parametrise is the
auto-oscillator of Slavin & Tiberkevich, IEEE Trans. Magn. 45, 1875 (2009) (DESIGN.md §4):

    dc/dt = −iω(p)c − Γ_G(1 + Qp)c + ζΓ_G(1 − p)c + f(t),   ω(p) = ω₀ + Np,   ⟨f f*⟩ = 2Dδ(t),

with the thermal noise ``D = Γ_G(1 + Q·p₀(ζ))·k_BT/ℰ₀`` and the oscillation energy
``E(p) = ℰ₀·p`` (:func:`device_models.stno.noise_strength`). The measured output is the emitted
microwave power ``P = A·p·R·I²``. Named presets (vortex, uniform-mode MgO) with the source of
every value: :mod:`device_models.presets.stno`.
"""

from __future__ import annotations

from dataclasses import dataclass

from device_models.config import DeclaredSettings, _f

#: Boltzmann constant [J/K] (CODATA 2018, exact).
K_B = 1.380649e-23


@dataclass(frozen=True)
class StnoConfig(DeclaredSettings):
    """Physics of one kind of STNO, its spreads, and the bench around an array of them."""

    # --- oscillator (auto-oscillator model) ------------------------------------------------
    f0_hz: float = _f(4.5e9, "Hz", "free-running (linear) frequency ω₀/2π", 1e6, 1e12)
    n_shift_hz: float = _f(-1.0e9, "Hz", "nonlinear frequency shift N/2π: ω(p) = ω₀ + N·p", -1e12, 1e12)
    gamma_g_per_s: float = _f(2.5e8, "1/s", "linear damping rate Γ_G (relaxation 1/(2Γ_G(ζ−1)))", 1.0, 1e13)
    q_damping: float = _f(2.0, "1", "nonlinear damping Q: Γ₊(p) = Γ_G(1 + Q·p)", 0.0, 100.0)
    i_th_a: float = _f(0.5e-3, "A", "threshold current I_th (ζ = I/I_th = 1)", 1e-7, 1.0)
    zeta_max: float = _f(4.0, "1", "safe-operating current limit, as supercriticality I/I_th", 1.01, 10.0)
    temperature_k: float = _f(300.0, "K", "temperature T of the thermal noise", 0.0, 2000.0)
    mode_energy_j: float = _f(2.8e-18, "J", "oscillation energy at p = 1, ℰ₀ (E(p) = ℰ₀·p)", 1e-24, 1e-9)
    r_ohm: float = _f(100.0, "ohm", "resistance R of one oscillator (Joule heating R·I²)", 1e-3, 1e9)
    power_coupling: float = _f(0.05, "1", "conversion A of oscillation into emitted power P = A·p·R·I²", 0.0, 1.0)
    # --- variability ----------------------------------------------------------------------
    f0_dtod: float = _f(0.01, "1", "device-to-device spread of f0 (relative std, drawn once)", 0.0, 0.5)
    i_th_dtod: float = _f(0.05, "1", "device-to-device spread of I_th (relative std, drawn once)", 0.0, 0.5)
    gamma_g_dtod: float = _f(0.05, "1", "device-to-device spread of Γ_G (relative std, drawn once)", 0.0, 0.5)
    n_shift_dtod: float = _f(0.05, "1", "device-to-device spread of N (relative std, drawn once)", 0.0, 0.5)
    read_std: float = _f(0.01, "1", "read noise of every measured power sample (relative std)", 0.0, 1.0)
    coupling_prog_std: float = _f(0.0, "1", "programming error of a coupling, fraction of its range", 0.0, 1.0)
    # --- couplings (input and recurrent current lines) ---------------------------------------
    w_in_max: float = _f(4.0, "1", "largest |input coupling| (I_th per unit input)", 1e-6, 100.0)
    w_rec_max: float = _f(4.0, "1", "largest |recurrent coupling| (I_th per unit of normalised power)", 1e-6, 100.0)
    v_write_v: float = _f(0.5, "V", "write pulse amplitude of a coupling (a programmable resistive element)", 0.01, 10.0)
    i_write_a: float = _f(50e-6, "A", "current of a coupling write pulse", 1e-9, 1.0)
    t_pulse_s: float = _f(10e-9, "s", "length of a coupling write pulse (one per coupling written)", 1e-12, 1e-3)
    v_read_v: float = _f(0.1, "V", "bias of a coupling read (read_weights)", 1e-3, 10.0)
    r_coupling_ohm: float = _f(1e4, "ohm", "resistance of a coupling element", 1.0, 1e12)
    t_read_s: float = _f(1e-7, "s", "integration time of one coupling read", 1e-12, 1.0)
    # --- instrument (the bench, not the chip) ------------------------------------------------
    t_bus_s: float = _f(1e-3, "s", "bus round trip per operation (instrument clock)", 0.0, 10.0)
    t_arm_s: float = _f(1e-6, "s", "arming the waveform generator and digitiser per sequence", 0.0, 1.0)
    t_value_s: float = _f(1e-9, "s", "digitiser transfer time per recorded value", 0.0, 1.0)
    t_write_s: float = _f(1e-6, "s", "instrument time per coupling written", 0.0, 1.0)
    # --- numerics --------------------------------------------------------------------------
    dtype: str = _f("float32", "", "floating-point type of the emulation (float32 or float64)")

    def __post_init__(self) -> None:
        self.check_declared(skip=("dtype",))
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"setting 'dtype' must be 'float32' or 'float64', got {self.dtype!r}")

    @property
    def thermal_power(self) -> float:
        """Mean power ``k_BT/ℰ₀`` of the thermal floor (equipartition at ζ = 0)."""
        return K_B * self.temperature_k / self.mode_energy_j
