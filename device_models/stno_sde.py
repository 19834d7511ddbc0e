"""Stochastic integration of an array of STNOs: Euler–Maruyama in frames rotating at each ω₀.

The complex amplitude ``c`` of each oscillator (DESIGN.md §4; Slavin & Tiberkevich, IEEE Trans.
Magn. 45, 1875 (2009)) obeys, in the frame rotating at its own ``ω₀`` (``c = c̃·e^{−iω₀t}``),

    dc̃/dt = [Γ_G(ζ − 1) − Γ_G(ζ + Q)p − iNp]·c̃ + f(t),   p = |c̃|²,   ⟨f f*⟩ = 2Dδ(t),

so a step resolves the relaxation (``1/Γ_G``) and the nonlinear shift ``N·p``, never the GHz
carrier. One step of length ``dt`` (all oscillators and sequences of the batch at once)::

    c̃ ← c̃·[1 + Γ_G(ζ−1)dt − Γ_G(ζ+Q)p·dt − ½(Np·dt)² − iNp·dt] + √(D·dt)·(ξ₁ + iξ₂)

— Euler–Maruyama (Kloeden & Platen 1992, §9.1; strong order ½, weak order 1 for this additive
noise) with the rotation's second-order term kept, so that ``|1 − iθ − θ²/2|² = 1 + O(θ⁴)`` and
the nonlinear shift does not pump the power. ``D = Γ_G(1 + Q·p₀(ζ))·k_BT/ℰ₀``
(:func:`device_models.stno.noise_strength`) follows the drive, not the state, so the noise is
additive. The array starts from the thermal floor (``p = 0`` is a fixed point): ``c̃`` drawn from
the Boltzmann distribution at ``ζ = 0``, ``⟨p⟩ = k_BT/ℰ₀``.

The drive ``ζ`` of oscillator ``i`` at step ``t`` is ``s_i·clip(z_ext[t] + W_rec·p, ±ζ_max)``:
the external current (from the inputs) plus recurrent currents proportional to the other
oscillators' powers, limited by the current source's compliance, and ``s_i = I_th/I_th,i`` its
own threshold (device-to-device spread). Without recurrent couplings the per-step coefficients
are computed for a block of steps at once (the hot loop then touches each array about ten
times per step, see benchmarks/stno_array.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from device_models import stno

#: Steps whose coefficients are computed at once (bounds memory: batch × block × oscillators).
BLOCK_STEPS = 8
#: Fewest samples a spectrum is taken of (the Hann window of one or two points is all zeros).
MIN_SPECTRUM_SAMPLES = 3


@dataclass(frozen=True)
class Oscillators:
    """Per-oscillator parameters, each an array of shape ``(n,)`` (after device-to-device draws)."""

    omega0: np.ndarray  # [rad/s] free-running frequency ω₀
    n_shift: np.ndarray  # [rad/s] nonlinear frequency shift N
    gamma_g: np.ndarray  # [1/s] linear damping rate Γ_G
    q: np.ndarray  # [1] nonlinear damping Q
    thermal_power: np.ndarray  # [1] k_BT/ℰ₀, the mean power of the thermal floor
    threshold_scale: np.ndarray  # [1] I_th(nominal)/I_th,i: ζ_i = scale_i · I/I_th(nominal)

    @property
    def n(self) -> int:
        return int(self.omega0.shape[0])

    @classmethod
    def identical(cls, n: int, *, omega0: float, n_shift: float, gamma_g: float, q: float,
                  thermal_power: float) -> Oscillators:
        """``n`` identical oscillators (tests, closed-form comparisons)."""
        full = lambda v: np.full(n, float(v))  # noqa: E731
        return cls(full(omega0), full(n_shift), full(gamma_g), full(q), full(thermal_power), full(1.0))


@dataclass
class Recording:
    """What to keep of a run: oscillators ``index`` every ``every`` steps from step ``start`` on.

    Sample ``k`` is the state after step ``start + (k+1)·every − 1`` (i.e. at time
    ``(start + (k+1)·every)·dt``).
    """

    index: np.ndarray | None = None
    every: int = 1
    start: int = 0
    #: keep the complex amplitude (phase, spectrum); False keeps only the power |c|² (half the memory)
    amplitude: bool = True

    def count(self, steps: int) -> int:
        return max(0, (steps - self.start) // self.every)


@dataclass
class Run:
    """Outcome of :func:`integrate`: the final state, the recorded samples, and sums for the report."""

    c: np.ndarray  # (batch, n) final complex amplitudes (rotating frames)
    samples: np.ndarray  # (batch, n_samples, n_rec) complex amplitudes c̃ (or powers |c̃|², see Recording)
    zeta_samples: np.ndarray  # (batch, n_samples, n_rec) nominal drive I/I_th at the samples
    sample_steps: np.ndarray  # (n_samples,) step index after which each sample was taken
    sum_zeta2: float = 0.0  # Σ over steps, sequences, oscillators of (I/I_th)²: Joule energy
    clipped: int = 0  # drive values limited by the compliance ζ_max
    extra: dict = field(default_factory=dict)


def thermal_floor(osc: Oscillators, batch: int, rng: np.random.Generator, dtype: str = "float32") -> np.ndarray:
    """Initial amplitudes at thermal equilibrium with no current: ``c̃ ~ CN(0, k_BT/ℰ₀)``."""
    cdtype = np.complex64 if dtype == "float32" else np.complex128
    z = rng.standard_normal((batch, osc.n, 2), dtype=np.dtype(dtype)).view(cdtype)[..., 0]
    z *= np.sqrt(osc.thermal_power / 2.0).astype(dtype)
    return z


def integrate(
    osc: Oscillators,
    zeta_ext: Callable[[int, int], np.ndarray] | np.ndarray,
    steps: int,
    c0: np.ndarray,
    dt: float,
    rng: np.random.Generator,
    *,
    zeta_max: float,
    w_rec: np.ndarray | None = None,
    record: Recording | None = None,
) -> Run:
    """Integrate ``steps`` steps of length ``dt`` [s] for every sequence of the batch at once.

    Parameters
    ----------
    osc : Oscillators
        The ``n`` oscillators.
    zeta_ext : array (batch, steps, n) or callable ``(t0, t1) -> (batch, t1 − t0, n)``
        External drive, nominal supercriticality ``I/I_th`` of each oscillator at each step.
    c0 : complex array (batch, n)
        Initial amplitudes (modified in place and returned as ``Run.c``).
    w_rec : array (n, n), optional
        Recurrent couplings [I_th per unit power]: oscillator ``i`` receives ``Σ_j w_rec[i, j]·p_j``.
    record : Recording
        Which oscillators to keep, how often, from which step (default: all, every step).
    """
    record = record or Recording()
    real = np.float32 if c0.dtype == np.complex64 else np.float64
    get = zeta_ext if callable(zeta_ext) else (lambda t0, t1: zeta_ext[:, t0:t1])
    batch, n = c0.shape
    idx = np.arange(n) if record.index is None else np.asarray(record.index)
    n_samples = record.count(steps)
    samples = np.empty((batch, n_samples, idx.size), c0.dtype if record.amplitude else real)
    zeta_samples = np.empty((batch, n_samples, idx.size), real)
    sample_steps = record.start + record.every * np.arange(1, n_samples + 1) - 1
    c = c0
    p = np.empty((batch, n), real)
    tmp = np.empty((batch, n), real)
    gdt = (osc.gamma_g * dt).astype(real)
    qq = osc.q.astype(real)
    ndt = (osc.n_shift * dt).astype(real)
    ndt_half = (osc.n_shift * dt / np.sqrt(2.0)).astype(real)
    scale = osc.threshold_scale.astype(real)
    noise_unit = (osc.gamma_g * osc.thermal_power * dt).astype(real)  # D·dt / (1 + Q p₀)
    cdtype = c0.dtype
    recurrent = w_rec is not None and np.any(w_rec)
    w_rec_t = None if not recurrent else np.ascontiguousarray(w_rec.T, dtype=real)
    sum_zeta2, clipped, k_sample = 0.0, 0, 0
    next_sample = sample_steps[0] if n_samples else -1

    def coefficients(z_nom: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # (1 + Γ(ζ−1)dt, Γ(ζ+Q)dt + iN dt, √(D dt)) for a block of nominal drives
        z = z_nom * scale
        grow = z - 1.0
        grow *= gdt
        grow += 1.0
        k = (z + qq) * gdt + 1j * ndt
        p0 = np.maximum(z - 1.0, 0.0)
        p0 /= np.maximum(z + qq, 1.0)  # = z + Q wherever z > 1; elsewhere p0 = 0 (and never 0/0 at z = −Q)
        p0 *= qq
        p0 += 1.0
        p0 *= noise_unit
        np.sqrt(p0, out=p0)
        return grow, k.astype(cdtype, copy=False), p0

    for t0 in range(0, steps, BLOCK_STEPS):
        t1 = min(t0 + BLOCK_STEPS, steps)
        z_block = np.asarray(get(t0, t1), dtype=real)
        if not recurrent:
            over = np.abs(z_block) > zeta_max
            if over.any():
                clipped += int(np.count_nonzero(over))
                z_block = np.clip(z_block, -zeta_max, zeta_max)
            sum_zeta2 += float(np.einsum("ijk,ijk->", z_block, z_block, dtype=np.float64))
            grow_b, k_b, s_b = coefficients(z_block)
        for j in range(t1 - t0):
            np.multiply(c.real, c.real, out=p)
            np.multiply(c.imag, c.imag, out=tmp)
            p += tmp
            if recurrent:
                z = z_block[:, j] + p @ w_rec_t
                over = np.abs(z) > zeta_max
                if over.any():
                    clipped += int(np.count_nonzero(over))
                    np.clip(z, -zeta_max, zeta_max, out=z)
                sum_zeta2 += float(np.dot(z.ravel(), z.ravel()))
                grow, k, s = coefficients(z)
                z_now = z
            else:
                grow, k, s = grow_b[:, j], k_b[:, j], s_b[:, j]
                z_now = z_block[:, j]
            # factor = grow − k·p − ½(N p dt)²
            np.multiply(p, ndt_half, out=tmp)
            tmp *= tmp
            factor = k * p
            np.subtract(grow, factor, out=factor)
            factor.real -= tmp
            c *= factor
            noise = rng.standard_normal((batch, n, 2), dtype=real).view(cdtype)[..., 0]
            noise *= s
            c += noise
            if t0 + j == next_sample:  # the state after this step (p above is the power before it)
                samples[:, k_sample] = c[:, idx] if record.amplitude else power(c[:, idx])
                zeta_samples[:, k_sample] = z_now[:, idx]
                k_sample += 1
                next_sample = sample_steps[k_sample] if k_sample < n_samples else -1
    return Run(c, samples, zeta_samples, sample_steps, sum_zeta2, clipped)


def power(samples: np.ndarray) -> np.ndarray:
    """Normalised power ``p = |c|²`` of recorded amplitudes."""
    return samples.real**2 + samples.imag**2


def spectrum(signal: np.ndarray, dt_s: float, axis: int = -2) -> tuple[np.ndarray, np.ndarray]:
    """Power spectral density of complex signals ``∝ e^{+iΔω t}`` along ``axis`` (Hann-windowed periodogram).

    Returns ``(frequency offsets [Hz], PSD [unit²/Hz])``, frequencies ascending; the PSD integrates
    over frequency to the mean of ``|signal|²`` (Parseval, with the window's power normalised).
    """
    n = signal.shape[axis]
    if n < MIN_SPECTRUM_SAMPLES:  # the Hann window of 1 or 2 points is all zeros: nothing to normalise
        raise ValueError(f"a spectrum needs at least {MIN_SPECTRUM_SAMPLES} samples, got {n}")
    window = np.hanning(n)
    shape = [1] * signal.ndim
    shape[axis] = n
    w = window.reshape(shape)
    spec = np.fft.fftshift(np.fft.fft(signal * w, axis=axis), axes=axis)
    psd = (spec.real**2 + spec.imag**2) * dt_s / float(np.sum(window**2))
    freqs = np.fft.fftshift(np.fft.fftfreq(n, dt_s))
    return freqs, psd
