"""RF spin-diode synapse network with STNO neurons (Ross, Leroux et al., Nat. Nanotechnol. 18, 1273 (2023)).

Inputs are microwave tones: input ``i`` has frequency ``f_i`` and power ``P_i = x_i·P_max``. A synapse
layer is a set of *chains*, one per output neuron; chain ``j`` is a series of spin-diode resonators
``k = 0 … n_in`` (the last one for the layer's bias tone), each rectifying every tone it receives
(DESIGN.md §4):

    v_ijk = (−1)^k · P_i · G(f_i, f_r,jk),   G(f, f_r) = K·2αf_r(f − f_r) / [(αf_r)² + (f − f_r)²],

an anti-Lorentzian of half-width ``αf_r`` that is zero at ``f_r`` and ``±K`` at ``f_r(1 ± α)``; the
sign alternates along the chain because successive diodes are connected head to tail. The chain's
DC voltage ``V_j = Σ_i Σ_k v_ijk`` is linear in the powers and additive over distinct input
frequencies: ``V = P Wᵀ + b`` with ``W_ji = Σ_k (−1)^k G(f_i, f_r,jk)`` — every resonator sees every
tone, the off-resonant tails included. The trainable parameters are the resonance frequencies
``f_r`` (arrays ``F{l}``, ``(n_out, n_in + 1)`` [Hz]); resonator ``k`` is nominally tuned near input
``k``.

Neurons: ``V_j`` drives STNO ``j`` through a fixed gain, ``h = gain·V/(K·P_max)``; its output is
the steady-state power ``ρ(h) = p₀(ζ(h))/p₀(ζ_max)`` (:func:`device_models.stno.response`), emitted
as a tone of power ``ρ·P_max`` at its own frequency ``f_j = f0_j + N_hz·p``, ``p = ρ·p₀(ζ_max)``
(``ω₀ + Np``): the frequency moves with the neuron's current, and the next layer's resonators see it
move. The input layer's tones sit at fixed frequencies, so its matrix ``W`` is computed once per
write; a hidden layer's tones move per sample, so its matrix is evaluated per sample.

Caution: ``K``, ``P_max``, the bands and ``N_hz`` are representative values (spin-diode sensitivity
of order 10³ V/W, µW tones, GHz bands), not a fit to the devices of the paper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from device_models import stno
from device_models.config import DeclaredSettings, _f

MODEL_VERSION = "rf-network-1.0"


@dataclass(frozen=True)
class RFConfig(DeclaredSettings):
    """Physics and non-idealities of an RF spin-diode network (``*_dtod`` drawn once, ``*_std`` per operation)."""

    alpha: float = _f(0.01, "1", "resonance half-width as a fraction of f_r (α)", 1e-4, 0.5)
    k_v_per_w: float = _f(1e3, "V/W", "spin-diode sensitivity K: rectified voltage per input power at an extremum",
                          1.0, 1e6)
    p_max_w: float = _f(1e-6, "W", "power of an input tone at full scale (x = 1)", 1e-12, 1e-2)
    f_in_min_hz: float = _f(1.0e9, "Hz", "lowest input frequency (input 0)", 1e8, 1e11)
    f_in_max_hz: float = _f(5.0e9, "Hz", "highest input frequency (input n_0 − 1)", 1e8, 1e11)
    f_neuron_min_hz: float = _f(6.0e9, "Hz", "free-running frequency f0 of the first neuron of a layer", 1e8, 1e11)
    f_neuron_max_hz: float = _f(9.0e9, "Hz", "free-running frequency f0 of the last neuron of a layer", 1e8, 1e11)
    n_shift_hz: float = _f(-0.02e9, "Hz", "nonlinear frequency shift N/2π of the STNO neurons (f = f0 + N p)",
                           -1e10, 1e10)
    f_prog_std: float = _f(1e-4, "1", "programming error of a resonance frequency, relative, per write", 0.0, 0.1)
    alpha_dtod: float = _f(0.05, "1", "device-to-device spread of α (relative std, drawn once)", 0.0, 0.5)
    k_dtod: float = _f(0.05, "1", "device-to-device spread of K (relative std, drawn once)", 0.0, 0.5)
    read_std: float = _f(0.005, "1", "read noise on every measured output, fraction of its full scale", 0.0, 1.0)
    q_damping: float = _f(2.0, "1", "nonlinear damping Q of the STNO neurons", 0.0, 100.0)
    zeta_max: float = _f(4.0, "1", "current limit of a neuron, as supercriticality I/I_th", 1.01, 10.0)
    i_th_a: float = _f(0.5e-3, "A", "threshold current I_th of an STNO neuron", 1e-7, 1e-1)
    r_stno_ohm: float = _f(100.0, "ohm", "resistance of an STNO neuron", 1.0, 1e6)
    t_integrate_s: float = _f(10e-9, "s", "integration time of the rectified voltage (and neuron settling) per layer",
                              1e-12, 1e-3)
    t_tune_s: float = _f(1e-6, "s", "time to tune (and verify) one resonance frequency", 1e-12, 1.0)
    e_tune_j: float = _f(1e-12, "J", "energy to tune one resonance frequency", 0.0, 1.0)
    t_bus_s: float = _f(1e-3, "s", "bus round trip per operation (instrument clock)", 0.0, 10.0)
    t_sample_s: float = _f(5e-6, "s", "RF source update and readout per input vector (instrument clock)", 0.0, 1.0)

    def __post_init__(self) -> None:
        self.check_declared()
        if self.f_in_min_hz >= self.f_in_max_hz or self.f_neuron_min_hz >= self.f_neuron_max_hz:
            raise ValueError("each band's min frequency must be below its max")


RF_PRESETS: dict[str, RFConfig] = {
    "default-v1": RFConfig(),
    "ideal": RFConfig(f_prog_std=0.0, alpha_dtod=0.0, k_dtod=0.0, read_std=0.0),
}


def anti_lorentzian(f_hz: np.ndarray, f_r_hz: np.ndarray, alpha: np.ndarray | float,
                    k: np.ndarray | float = 1.0) -> np.ndarray:
    """Spin-diode response ``G = K·2αf_r(f − f_r)/[(αf_r)² + (f − f_r)²]`` (broadcasting)."""
    d = np.asarray(f_hz, dtype=np.float64) - f_r_hz
    w = np.asarray(alpha) * f_r_hz
    return k * 2.0 * w * d / (w * w + d * d)


def chain_parity(n: int) -> np.ndarray:
    """``(−1)^k`` of the resonators ``k = 0 … n−1`` along a chain."""
    return np.where(np.arange(n) % 2 == 0, 1.0, -1.0)


def chain_weights(f_in_hz: np.ndarray, f_r_hz: np.ndarray, alpha: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """``W_ji = Σ_k (−1)^k κ_jk G(f_i, f_r,jk)/K`` for tones ``f_in_hz`` (…, n_in) → (…, n_out, n_in).

    ``kappa`` is each resonator's sensitivity relative to the nominal ``K``. Evaluated one output
    chain at a time to bound the memory of the (…, n_res, n_in) intermediate.
    """
    f_in = np.asarray(f_in_hz, dtype=np.float64)
    sign = chain_parity(f_r_hz.shape[1])
    out = np.empty(f_in.shape[:-1] + (f_r_hz.shape[0], f_in.shape[-1]))
    for j in range(f_r_hz.shape[0]):  # n_out chains: bounded memory, each a vectorised (…, n_res, n_in) block
        g = anti_lorentzian(f_in[..., None, :], f_r_hz[j][:, None], alpha[j][:, None], (sign * kappa[j])[:, None])
        out[..., j, :] = g.sum(axis=-2)
    return out


def input_frequencies_hz(n: int, config: RFConfig) -> np.ndarray:
    """Frequencies of the ``n`` input tones: evenly spaced over the input band."""
    return np.linspace(config.f_in_min_hz, config.f_in_max_hz, n)


def neuron_base_frequencies_hz(n: int, config: RFConfig) -> np.ndarray:
    """Free-running frequencies ``f0`` of the ``n`` neurons of a layer: evenly spaced over the neuron band."""
    return np.linspace(config.f_neuron_min_hz, config.f_neuron_max_hz, n)


def neuron_frequency_hz(rho: np.ndarray, f0_hz: np.ndarray, config: RFConfig) -> np.ndarray:
    """Output frequency ``f0 + N·p`` of STNO neurons at normalised activation ``ρ`` (``p = ρ·p₀(ζ_max)``)."""
    p_max = (config.zeta_max - 1.0) / (config.zeta_max + config.q_damping)
    return f0_hz + config.n_shift_hz * p_max * np.asarray(rho, dtype=np.float64)


def bias_frequency_hz(f_tones_hz: np.ndarray, config: RFConfig) -> float:
    """The bias tone of a layer: one half-width above its highest tone, spaced by the tones' mean step."""
    f = np.asarray(f_tones_hz, dtype=np.float64)
    step = float(np.ptp(f) / max(f.size - 1, 1)) if f.size > 1 else config.alpha * float(f.max())
    return float(f.max() + max(step, config.alpha * float(f.max())))


def detuning_for_weight(w: np.ndarray, f_hz: np.ndarray, alpha: float, parity: np.ndarray) -> np.ndarray:
    """Resonance ``f_r`` such that one resonator alone gives ``(−1)^k G(f, f_r)/K = w`` (|w| ≤ 1).

    With ``d = f − f_r`` and ``a = αf_r ≈ αf``, ``2ad/(a² + d²) = w/parity`` has the root
    ``d = a(1 − √(1 − u²))/u`` inside the half-width (``u = w·parity``; ``d = 0`` at ``u = 0``).
    A first guess for programming (crosstalk of the other resonators is left to training).
    """
    u = np.clip(np.asarray(w, dtype=np.float64) * parity, -0.999, 0.999)
    a = alpha * np.asarray(f_hz, dtype=np.float64)
    safe = np.where(np.abs(u) < 1e-12, 1.0, u)
    d = np.where(np.abs(u) < 1e-12, 0.0, a * (1.0 - np.sqrt(1.0 - u * u)) / safe)
    return f_hz - d


class RFNetwork:
    """An emulated RF spin-diode network: chains of resonators per layer and STNO neurons.

    Parameters
    ----------
    sizes : sequence of int
        ``(n_0, …, n_N)``: input tones, hidden neurons, outputs.
    config : RFConfig
    seed : int
        Fabrication draws and the operation noise, on independent streams.
    """

    def __init__(self, sizes: Sequence[int], config: RFConfig, seed: int) -> None:
        if len(sizes) < 2 or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in sizes):
            raise ValueError(f"sizes must list at least two positive integer layer sizes, got {list(sizes)}")
        self.sizes = tuple(int(n) for n in sizes)
        self.n_layers = len(self.sizes) - 1
        self.config = config
        self.seed = int(seed)
        fab_seq, op_seq = np.random.SeedSequence(self.seed).spawn(2)
        fab = np.random.default_rng(fab_seq)
        self._rng = np.random.default_rng(op_seq)
        c = config
        self.f_in_hz = input_frequencies_hz(self.sizes[0], c)
        self.f0_hz = [neuron_base_frequencies_hz(n, c) for n in self.sizes[1:]]
        self.alpha: list[np.ndarray] = []
        self.kappa: list[np.ndarray] = []
        self.f_r: list[np.ndarray] = []
        self.f_bias_hz: list[float] = []
        self.gain = [float(4.0 / np.sqrt(n + 1)) for n in self.sizes[:-1]]
        for layer in range(self.n_layers):
            shape = (self.sizes[layer + 1], self.sizes[layer] + 1)
            self.alpha.append(c.alpha * np.maximum(1.0 + c.alpha_dtod * fab.standard_normal(shape), 0.1))
            self.kappa.append(np.maximum(1.0 + c.k_dtod * fab.standard_normal(shape), 0.0))
            tones = self.f_in_hz if layer == 0 else neuron_frequency_hz(0.5, self.f0_hz[layer - 1], c)
            self.f_bias_hz.append(bias_frequency_hz(tones, c))
            # fresh chip: each resonator parked on its own tone (zero response there)
            self.f_r.append(np.broadcast_to(np.append(tones, self.f_bias_hz[-1]), shape).copy())
        self._w0: np.ndarray | None = None  # input layer's matrix at its fixed tones (cached until F0 changes)

    # ------------------------------------------------------------------ description
    def weight_names(self) -> list[str]:
        return [f"F{layer}" for layer in range(self.n_layers)]

    def weight_shapes(self) -> dict[str, tuple[int, int]]:
        return {f"F{k}": (self.sizes[k + 1], self.sizes[k] + 1) for k in range(self.n_layers)}

    def frequency_range_hz(self, layer: int) -> tuple[float, float]:
        """Tuning range of layer ``layer``'s resonators: its tones (and bias tone) ± 10 %."""
        if layer == 0:
            lo, hi = self.config.f_in_min_hz, self.f_bias_hz[0]
        else:
            c = self.config
            f_lo = neuron_frequency_hz(np.array([0.0, 1.0]), np.array(c.f_neuron_min_hz), c).min()
            lo, hi = float(f_lo), self.f_bias_hz[layer]
        return 0.9 * lo, 1.1 * hi

    def layer_of(self, name: str) -> int:
        if name not in self.weight_names():
            raise KeyError(name)
        return int(name[1:])

    # ------------------------------------------------------------------ operations
    def _tones(self, layer: int, x: np.ndarray, f_prev: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Powers (batch, n+1) in units of P_max and frequencies (n+1,) or (batch, n+1) of a layer's tones."""
        batch = x.shape[0]
        p = np.concatenate([x, np.ones((batch, 1))], axis=1)
        if f_prev is None:
            return p, np.append(self.f_in_hz, self.f_bias_hz[0])
        return p, np.concatenate([f_prev, np.full((batch, 1), self.f_bias_hz[layer])], axis=1)

    def rectified_v(self, layer: int, x: np.ndarray, f_prev: np.ndarray | None) -> np.ndarray:
        """Chain voltages ``V = P Wᵀ`` [V] of layer ``layer`` (batch, n_out), the bias tone included."""
        c = self.config
        p, f = self._tones(layer, np.asarray(x, dtype=np.float64), f_prev)
        if f.ndim == 1:
            if layer == 0:
                if self._w0 is None:
                    self._w0 = chain_weights(f, self.f_r[0], self.alpha[0], self.kappa[0])
                w = self._w0
            else:
                w = chain_weights(f, self.f_r[layer], self.alpha[layer], self.kappa[layer])
            v = p @ w.T
        else:  # tones that move per sample: one matrix per sample
            w = chain_weights(f, self.f_r[layer], self.alpha[layer], self.kappa[layer])
            v = np.einsum("bji,bi->bj", w, p)
        return v * c.k_v_per_w * c.p_max_w

    def forward(self, x: np.ndarray, layers: Sequence[int] | None = None) -> tuple[list[np.ndarray], dict]:
        """Feed input powers ``x`` (batch, n_layer0) ∈ [0, 1]·P_max through the layers; measured activations.

        A forward that starts at a hidden layer takes ``x`` as the previous layer's activations ρ
        (their tones at the frequencies ``f0 + N p`` those activations give).
        """
        c = self.config
        layers = list(range(self.n_layers)) if layers is None else list(layers)
        a = np.asarray(x, dtype=np.float64)
        f_prev = None if layers[0] == 0 else neuron_frequency_hz(a, self.f0_hz[layers[0] - 1], c)
        outputs, e_rf, e_neuron = [], 0.0, 0.0
        for layer in layers:
            e_rf += float(a.sum() + a.shape[0]) * c.p_max_w * c.t_integrate_s  # tones (and bias tone) absorbed
            h = self.gain[layer] * self.rectified_v(layer, a, f_prev) / (c.k_v_per_w * c.p_max_w)
            e_neuron += stno.neuron_energy_j(h, c.zeta_max, c.i_th_a, c.r_stno_ohm, c.t_integrate_s)
            a = stno.response("stno", h, c.q_damping, c.zeta_max)
            f_prev = neuron_frequency_hz(a, self.f0_hz[layer], c)
            outputs.append(self._measure(a))
        batch = a.shape[0]
        device_time = batch * len(layers) * c.t_integrate_s
        return [o.astype(np.float32) for o in outputs], self._report(
            device_time, batch * len(layers), {"rf": e_rf, "neuron": e_neuron})

    def program(self, targets: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
        """Tune the named resonance-frequency arrays ``F{l}`` [Hz]; each lands with ``f_prog_std`` error.

        Only resonators whose target changed are retuned. Returns the achieved frequencies.
        """
        c = self.config
        tuned = 0
        achieved = {}
        for name, f in targets.items():
            layer = self.layer_of(name)
            f = np.asarray(f, dtype=np.float64)
            changed = f != self.f_r[layer]
            n = int(changed.sum())
            if n:
                err = 1.0 + c.f_prog_std * self._rng.standard_normal(n) if c.f_prog_std else 1.0
                lo, hi = self.frequency_range_hz(layer)
                self.f_r[layer][changed] = np.clip(f[changed] * err, lo, hi)
                if layer == 0:
                    self._w0 = None
            tuned += n
            achieved[name] = self.f_r[layer].astype(np.float64).copy()
        device_time = tuned * c.t_tune_s
        return achieved, self._report(device_time, 0, {"tune": tuned * c.e_tune_j}, resonators_tuned=tuned)

    def read_weights(self) -> tuple[dict[str, np.ndarray], dict]:
        """Measure every resonance frequency (a frequency sweep per resonator, ``t_tune_s`` each)."""
        c = self.config
        n = sum(f.size for f in self.f_r)
        return ({f"F{k}": f.copy() for k, f in enumerate(self.f_r)},
                self._report(n * c.t_tune_s, 0, {"tune": n * c.e_tune_j}))

    def resonator_v(self, f_hz: np.ndarray, p_w: np.ndarray, f_r_hz: np.ndarray, position: np.ndarray) -> np.ndarray:
        """Rectified voltage [V] of a test resonator at ``f_r_hz``, position ``position`` in its chain.

        Nominal α and K (a test structure of the process), read noise of ``read_std`` × K·P_max.
        """
        c = self.config
        v = np.where(np.asarray(position) % 2 == 0, 1.0, -1.0) * p_w * anti_lorentzian(f_hz, f_r_hz, c.alpha,
                                                                                           c.k_v_per_w)
        if c.read_std:
            v = v + c.read_std * c.k_v_per_w * c.p_max_w * self._rng.standard_normal(v.shape)
        return v

    # ------------------------------------------------------------------ state
    def export_state(self) -> dict[str, np.ndarray]:
        return {f"F{k}": f for k, f in enumerate(self.f_r)}

    def restore_state(self, state: Mapping[str, np.ndarray]) -> None:
        expected = set(self.weight_names())
        if set(state) != expected:
            raise ValueError(f"state must hold exactly {sorted(expected)}, got {sorted(state)}")
        for k, f in enumerate(self.f_r):
            a = np.asarray(state[f"F{k}"])
            lo, hi = self.frequency_range_hz(k)
            if a.shape != f.shape or not np.all(np.isfinite(a)) or a.min() < lo * (1 - 1e-9) or a.max() > hi * (1 + 1e-9):
                raise ValueError(f"F{k}: state does not fit (shape {a.shape}, expected {f.shape}, range [{lo}, {hi}] Hz)")
        self.f_r = [np.array(state[f"F{k}"], dtype=np.float64) for k in range(self.n_layers)]
        self._w0 = None

    # ------------------------------------------------------------------ helpers
    def _measure(self, a: np.ndarray) -> np.ndarray:
        std = self.config.read_std
        return a if std == 0 else a + std * self._rng.standard_normal(a.shape)

    def _report(self, device_time_s: float, n_samples: int, terms: Mapping[str, float], **extra: Any) -> dict:
        c = self.config
        return {"device_time_s": device_time_s,
                "instrument_time_s": c.t_bus_s + n_samples * c.t_sample_s + device_time_s,
                "energy_j": float(sum(terms.values())), "energy_terms_j": dict(terms), **extra}
