"""STNO array chip: N oscillators with programmable input and recurrent couplings (an oscillator RNN).

Topology (fixed at fabrication): ``n_inputs`` input current lines and ``n_oscillators`` STNOs.
Oscillator ``i`` receives the current (in units of the nominal threshold ``I_th``)

    I_i/I_th = b_i + Σ_j W_in[i, j]·u_j(t) + Σ_k W_rec[i, k]·p_k(t),

limited to ``|I| ≤ ζ_max·I_th`` by the current source's compliance, where ``u(t)`` is the input
sequence and ``p_k`` the normalised powers (the recurrent lines carry a current proportional to
each oscillator's rectified output: the oscillator RNN of Plouet et al., arXiv:2408.02835, and of
Torrejon et al., Nature 547, 428 (2017) when W_rec = 0 and time-multiplexed). The couplings ``W_in``,
``b``, ``W_rec`` are the programmable, non-volatile state; the oscillators' amplitudes are
volatile: every sequence of a ``drive`` starts from the thermal floor.

The dynamics is :func:`device_models.stno_sde.integrate`. What the bench measures (DESIGN.md §4):
the emitted power ``P = A·p·R·I²`` [W] with relative read noise ``read_std``, and, through an
IQ demodulator whose local oscillator sits at the nominal ``f0``, amplitude and phase (``φ`` with
``dφ/dt = ω − ω_ref``), and the spectrum of the emitted signal around ``f0``. Device-to-device
spread (``*_dtod``) of ``f0``, ``I_th``, ``Γ_G`` and ``N`` is drawn once from the seed.

Time and energy (DESIGN.md §2): the chip runs one sequence after the other, so
``device_time_s = batch·steps·dt``; its energy is the Joule heating ``Σ R·I²·dt`` of every oscillator
at every step (term ``oscillators``); the bench adds a bus round trip, arming per sequence and a
transfer time per recorded value (``instrument_time_s``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from device_models import stno_sde
from device_models.stno_config import StnoConfig

MODEL_VERSION = "stno-array-1.0"
#: Quantities ``drive`` can record, and the ones recorded when none are named.
QUANTITIES = ("power", "amplitude", "phase", "spectrum")
DEFAULT_QUANTITIES = ("power",)
WEIGHT_NAMES = ("W_in", "b", "W_rec")


class StnoArray:
    """The emulated chip: couplings, fabrication draws, noise stream, and ``drive``."""

    def __init__(self, n_oscillators: int, n_inputs: int, config: StnoConfig, seed: int = 0) -> None:
        if n_oscillators < 1 or n_inputs < 1:
            raise ValueError(f"an STNO array needs ≥ 1 oscillator and ≥ 1 input, got {n_oscillators}, {n_inputs}")
        self.n, self.m, self.config = int(n_oscillators), int(n_inputs), config
        fab = np.random.default_rng([int(seed), 0])  # fabrication draws: fixed by the seed alone
        c = config

        def spread(value: float, rel: float) -> np.ndarray:
            return value * (1.0 + rel * fab.standard_normal(self.n))

        omega0 = 2 * np.pi * spread(c.f0_hz, c.f0_dtod)
        i_th = np.abs(spread(c.i_th_a, c.i_th_dtod))
        gamma_g = np.abs(spread(c.gamma_g_per_s, c.gamma_g_dtod))
        n_shift = 2 * np.pi * spread(c.n_shift_hz, c.n_shift_dtod)
        self.osc = stno_sde.Oscillators(omega0, n_shift, gamma_g, np.full(self.n, c.q_damping),
                                        np.full(self.n, c.thermal_power), c.i_th_a / i_th)
        self._rng = np.random.default_rng([int(seed), 1])  # noise stream: thermal, read, programming
        self.weights: dict[str, np.ndarray] = {
            "W_in": np.eye(self.n, self.m), "b": np.zeros(self.n), "W_rec": np.zeros((self.n, self.n)),
        }

    # ------------------------------------------------------------------ couplings
    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"W_in": (self.n, self.m), "b": (self.n,), "W_rec": (self.n, self.n)}

    def weight_max(self) -> dict[str, float]:
        c = self.config
        return {"W_in": c.w_in_max, "b": c.zeta_max, "W_rec": c.w_rec_max}

    def program(self, targets: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Write couplings by name; each lands with error ``coupling_prog_std`` × its range.

        Unchanged values are not rewritten (their error is not redrawn). Returns the achieved
        couplings and a report: one pulse ``V·I·t_pulse`` per coupling written, one after the other.
        """
        achieved, written = {}, 0
        for name, target in targets.items():
            w_max = self.weight_max()[name]
            target = np.asarray(target, dtype=np.float64)
            changed = target != self.weights[name]
            new = self.weights[name].copy()
            err = self.config.coupling_prog_std * 2 * w_max * self._rng.standard_normal(target.shape)
            new[changed] = np.clip(target + err, -w_max, w_max)[changed]
            self.weights[name] = new
            written += int(np.count_nonzero(changed))
            achieved[name] = new.astype(self.config.dtype)
        c = self.config
        energy = written * c.v_write_v * c.i_write_a * c.t_pulse_s
        report = {"device_time_s": written * c.t_pulse_s, "instrument_time_s": c.t_bus_s + written * c.t_write_s,
                  "energy_j": energy, "energy_terms_j": {"write": energy}, "written": written}
        return achieved, report

    def read_weights(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Measure every coupling (integrated long enough that read noise averages out): ``V²/R·t_read`` each."""
        c = self.config
        cells = sum(v.size for v in self.weights.values())
        energy = cells * c.v_read_v**2 / c.r_coupling_ohm * c.t_read_s
        report = {"device_time_s": cells * c.t_read_s, "instrument_time_s": c.t_bus_s + cells * c.t_read_s,
                  "energy_j": energy, "energy_terms_j": {"read": energy}, "couplings_read": cells}
        return {k: v.astype(c.dtype) for k, v in self.weights.items()}, report

    def export_state(self) -> dict[str, np.ndarray]:
        return self.weights

    def restore_state(self, state: Mapping[str, np.ndarray]) -> None:
        if set(state) != set(WEIGHT_NAMES):
            raise ValueError(f"state must hold exactly {sorted(WEIGHT_NAMES)}, got {sorted(state)}")
        for name, shape in self.weight_shapes().items():
            if np.shape(state[name]) != shape:
                raise ValueError(f"state {name!r} has shape {np.shape(state[name])}, the chip's is {shape}")
        self.weights = {k: np.array(state[k], dtype=np.float64, copy=True) for k in WEIGHT_NAMES}

    # ------------------------------------------------------------------ drive
    def drive(self, u: np.ndarray, dt_s: float, oscillators: Sequence[int] | None = None, every: int = 1,
              start: int = 0, quantities: Sequence[str] = DEFAULT_QUANTITIES) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Apply the input sequences ``u`` (batch, steps, n_inputs) [I_th] with step ``dt_s`` [s]; record traces.

        Records ``quantities`` of ``oscillators`` (all when None) every ``every`` steps from step
        ``start``: ``power`` [W] (batch, samples, n_rec), ``amplitude`` ``|c| = √p``, ``phase``
        [rad], ``spectrum`` [W/Hz] (batch, n_rec, samples) with ``frequency_hz`` (samples,);
        always ``time_s`` (samples,), the time of each sample from the start of the sequence.
        """
        c = self.config
        batch, steps, _ = u.shape
        idx = np.arange(self.n) if oscillators is None else np.asarray(oscillators, dtype=np.int64)
        real = np.dtype(c.dtype).type
        w_in = (self.weights["W_in"]).astype(real)
        b = self.weights["b"].astype(real)
        u = np.asarray(u, dtype=real)

        def zeta_ext(t0: int, t1: int) -> np.ndarray:
            z = u[:, t0:t1] @ w_in.T
            z += b
            return z

        rec = stno_sde.Recording(idx, every, start, amplitude=bool({"amplitude", "phase", "spectrum"} & set(quantities)))
        c0 = stno_sde.thermal_floor(self.osc, batch, self._rng, c.dtype)
        w_rec = self.weights["W_rec"] if np.any(self.weights["W_rec"]) else None
        run = stno_sde.integrate(self.osc, zeta_ext, steps, c0, dt_s, self._rng, zeta_max=c.zeta_max,
                                 w_rec=w_rec, record=rec)
        t_s = (run.sample_steps + 1) * dt_s
        out: dict[str, np.ndarray] = {"time_s": t_s.astype(c.dtype)}
        p = stno_sde.power(run.samples) if rec.amplitude else run.samples
        i2 = run.zeta_samples  # the current through each recorded oscillator, squared (in place: memory)
        i2 *= c.i_th_a
        i2 *= i2
        if "power" in quantities:
            measured = p * i2
            measured *= c.power_coupling * c.r_ohm
            if c.read_std:
                noise = self._rng.standard_normal(measured.shape, dtype=measured.dtype)
                noise *= c.read_std
                noise += 1.0
                measured *= noise
                del noise
            out["power"] = measured.astype(c.dtype, copy=False)
        if {"amplitude", "phase", "spectrum"} & set(quantities):
            # demodulate at the nominal f0: each oscillator's frame rotates at its own ω₀
            detune = (self.osc.omega0[idx] - 2 * np.pi * c.f0_hz)[None, :] * t_s[:, None]
            demod = run.samples * np.exp(-1j * detune).astype(run.samples.dtype)[None]
            if "amplitude" in quantities:
                out["amplitude"] = np.sqrt(p).astype(c.dtype)
            if "phase" in quantities:
                out["phase"] = (-np.angle(demod)).astype(c.dtype)
            if "spectrum" in quantities:
                signal = np.conj(demod) * np.sqrt(c.power_coupling * c.r_ohm * i2)
                freqs, psd = stno_sde.spectrum(signal, every * dt_s, axis=1)
                out["spectrum"] = np.ascontiguousarray(np.moveaxis(psd, 1, 2)).astype(c.dtype)
                out["frequency_hz"] = (c.f0_hz + freqs).astype(np.float64)
        values = sum(int(v.size) for k, v in out.items() if k != "time_s")
        joule = float(np.mean(c.r_ohm) * c.i_th_a**2 * dt_s * run.sum_zeta2)
        device_time = batch * steps * dt_s
        report = {
            "device_time_s": device_time,
            "instrument_time_s": c.t_bus_s + batch * c.t_arm_s + device_time + values * c.t_value_s,
            "energy_j": joule,
            "energy_terms_j": {"oscillators": joule},
            "steps": steps,
            "samples": int(run.samples.shape[1]),
            "current_clipped": run.clipped,
        }
        return out, report

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "stno-array",
            "model_version": MODEL_VERSION,
            "topology": {
                "oscillators": self.n,
                "inputs": self.m,
                "weights": list(WEIGHT_NAMES),
                "shapes": {k: list(v) for k, v in self.weight_shapes().items()},
            },
        }
