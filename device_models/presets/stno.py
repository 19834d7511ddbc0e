"""Named STNO presets, each value with its SI unit (in :class:`StnoConfig`) and its source.

``vortex-feb`` — the gyrotropic mode of a vortex in an FeB/MgO magnetic tunnel junction, the
oscillator of Torrejon et al., "Neuromorphic computing with nanoscale spintronic oscillators",
Nature 547, 428 (2017) and Romera et al., Nature 563, 230 (2018): a few hundred MHz, slow
(tens of ns) amplitude relaxation — the memory an oscillator RNN uses — and nearly isochronous.

``uniform-mgo`` — the uniform (quasi-FMR) mode of an in-plane CoFeB/MgO nanopillar, the case
worked out by Kim, Tiberkevich & Slavin, PRL 100, 017207 (2008) and Slavin & Tiberkevich,
IEEE Trans. Magn. 45, 1875 (2009): GHz, fast relaxation, strong red shift (N < 0, |ν| ≫ 1),
hence broad lines.

Caution: these are representative values of the cited works (orders of magnitude and the
figures named in :data:`SOURCES`), not a fit to one device; spreads (``*_dtod``, ``read_std``)
are the project's choices. ``mode_energy_j`` is derived, as noted in its source line.
"""

from __future__ import annotations

from device_models.presets import lookup
from device_models.stno_config import StnoConfig

#: Gyrotropic vortex mode, FeB free layer, diameter 375 nm.
VORTEX_FEB = StnoConfig(
    f0_hz=3.0e8,
    n_shift_hz=4.0e6,
    gamma_g_per_s=1.0e7,
    q_damping=2.0,
    i_th_a=2.0e-3,
    zeta_max=4.0,
    temperature_k=300.0,
    mode_energy_j=5.2e-18,
    r_ohm=40.0,
    power_coupling=0.01,
    f0_dtod=0.02,
    i_th_dtod=0.05,
    gamma_g_dtod=0.05,
    n_shift_dtod=0.05,
    read_std=0.01,
)

#: Uniform mode of an in-plane CoFeB/MgO nanopillar (≈ 70 × 160 nm², 2 nm free layer).
UNIFORM_MGO = StnoConfig()

STNO_PRESETS: dict[str, StnoConfig] = {"vortex-feb": VORTEX_FEB, "uniform-mgo": UNIFORM_MGO}

#: Where each value of each preset comes from (served by ``describe()`` beside the settings).
SOURCES: dict[str, dict[str, str]] = {
    "vortex-feb": {
        "f0_hz": "Torrejon et al., Nature 547, 428 (2017), Fig. 1: emission near 300 MHz",
        "n_shift_hz": "quasi-isochronous vortex, tunability of a few MHz/mA: Hamadeh et al., PRL 112, 257201 (2014)",
        "gamma_g_per_s": "amplitude relaxation of tens of ns (Torrejon et al. 2017, Methods: time step chosen "
                         "above the relaxation time); 1/(2Γ_G) = 50 ns",
        "q_damping": "Q ≈ 2: Slavin & Tiberkevich, IEEE Trans. Magn. 45, 1875 (2009), §VI; DESIGN.md §4",
        "i_th_a": "threshold of a few mA in 375 nm FeB vortex MTJs (Torrejon et al. 2017; Romera et al., "
                  "Nature 563, 230 (2018))",
        "zeta_max": "DESIGN.md §4: current limit ζ ≤ 4",
        "temperature_k": "room temperature",
        "mode_energy_j": "gyration energy ℰ₀ = π·M_s·L·R²·ω₀/γ (Thiele model, ℰ₀p = ½κX², κ = Gω₀, "
                         "G = 2πM_sL/γ) with M_s = 1.1e6 A/m, L = 4 nm, R = 187.5 nm",
        "r_ohm": "resistance of a 375 nm MgO MTJ, tens of Ω (Torrejon et al. 2017)",
        "power_coupling": "emitted power of order µW at mA currents (Torrejon et al. 2017, Fig. 1)",
    },
    "uniform-mgo": {
        "f0_hz": "quasi-FMR of in-plane CoFeB, a few GHz at moderate fields: Kim, Tiberkevich & Slavin, "
                 "PRL 100, 017207 (2008); Slavin & Tiberkevich 2009, §II",
        "n_shift_hz": "red shift of the in-plane uniform mode, N < 0 with |ν| ≫ 1 (Slavin & Tiberkevich 2009, "
                      "eq. 2.29 and Fig. 4)",
        "gamma_g_per_s": "Γ_G = αω₀(ω_H + ω_M/2)/ω₀ with α ≈ 0.01 (Slavin & Tiberkevich 2009, eq. 2.30); "
                         "relaxation 1/(2Γ_G) = 2 ns",
        "q_damping": "Q ≈ 2 (Slavin & Tiberkevich 2009, §VI; DESIGN.md §4)",
        "i_th_a": "threshold of a fraction of a mA in MgO nanopillars (DESIGN.md §4: 10 µA–mA)",
        "zeta_max": "DESIGN.md §4: current limit ζ ≤ 4",
        "temperature_k": "room temperature",
        "mode_energy_j": "ℰ₀ = M_s·V·ω₀/γ with M_s = 1.0e6 A/m, V = π·35·80·2 nm³ (Slavin & Tiberkevich 2009, "
                         "eq. 4.9 for the uniform mode)",
        "r_ohm": "resistance of an MgO nanopillar, about 100 Ω",
        "power_coupling": "emitted power of order µW (Deac et al., Nature Phys. 4, 803 (2008))",
    },
}


def get_stno_preset(name: str) -> StnoConfig:
    """The STNO preset called ``name``; ``KeyError`` names the known ones."""
    return lookup(STNO_PRESETS, name, "STNO preset")
