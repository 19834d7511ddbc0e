"""The STNO integrator's bookkeeping: what a sample is, and drives at the edges of the model.

Not oracles (those are in test_stno_oracles.py): here a recorded sample must be the state the
recording says it is, whatever is recorded, and every admissible drive must give finite traces.
"""

from __future__ import annotations

import numpy as np
import pytest

from device_models.stno_sde import Oscillators, Recording, integrate, power, spectrum, thermal_floor

GAMMA_G = 1e8  # [1/s]
OSC = dict(omega0=2 * np.pi * 1e9, n_shift=2 * np.pi * 3e8, gamma_g=GAMMA_G, q=2.0, thermal_power=1e-3)


def run(zeta: float, steps: int, record: Recording, n: int = 16, seed: int = 3):
    osc = Oscillators.identical(n, **OSC)
    rng = np.random.default_rng(seed)
    drive = np.full((2, steps, n), zeta)
    return integrate(osc, drive, steps, thermal_floor(osc, 2, rng), 0.01 / GAMMA_G, rng, zeta_max=4.0, record=record)


@pytest.mark.parametrize("every", [1, 4])
def test_a_power_sample_is_the_power_after_its_step(every: int):
    """Recording power only keeps |c|² of the same state that recording the amplitude keeps.

    Sample k is the state after step ``start + (k+1)·every − 1``: with the run ending on a sample,
    the last one is the final state, and the same seed gives the same samples either way.
    """
    idx = np.array([5, 0, 9])
    steps = 6 * every
    amp = run(2.5, steps, Recording(idx, every, amplitude=True))
    pwr = run(2.5, steps, Recording(idx, every, amplitude=False))
    np.testing.assert_array_equal(pwr.samples, power(amp.samples))
    np.testing.assert_array_equal(pwr.samples[:, -1], power(pwr.c)[:, idx])
    assert pwr.sample_steps[-1] == steps - 1


@pytest.mark.parametrize("zeta", [-2.0, -4.0, 0.0, 1.0, 4.0])
def test_every_admissible_drive_gives_finite_traces(zeta: float):
    """ζ = −Q (here −2) made the noise strength 0/0 = NaN; any |ζ| ≤ ζ_max must integrate."""
    out = run(zeta, 40, Recording(every=1, amplitude=False))
    assert np.isfinite(out.samples).all() and np.isfinite(out.c).all()
    assert out.samples.max() < 1.0


def test_a_spectrum_needs_three_samples():
    """The Hann window of two points is zero: a 2-sample 'spectrum' would be 0/0."""
    with pytest.raises(ValueError, match="at least 3 samples"):
        spectrum(np.ones((2, 1), np.complex64), 1e-9, axis=0)
    freqs, psd = spectrum(np.ones((3, 1), np.complex64), 1e-9, axis=0)
    assert np.isfinite(psd).all() and freqs.shape == (3,)
