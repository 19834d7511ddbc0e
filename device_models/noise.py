"""Cycle-to-cycle noise draws: standard normals in the emulation's own precision.

Read noise is drawn for every measured neuron output of every phase — tens of thousands of
values per EP step — so its generator is on the hot path. NumPy's ziggurat draws a float32 normal
in about as much time as a float64 one; the Box–Muller transform (Box & Muller, Ann. Math. Statist.
29, 610 (1958)) of float32 uniforms, ``z₁ = √(−2 ln u₁) cos 2πu₂``, ``z₂ = √(−2 ln u₁) sin 2πu₂``
(independent standard normals for independent uniforms ``u₁ ∈ (0, 1]``, ``u₂ ∈ [0, 1)``), runs on
vectorised transcendental functions in half the time. With 24-bit uniforms the tails end at
``√(2·24·ln 2) ≈ 5.8σ`` (a 1-in-10⁸ event): immaterial for read noise.
"""

from __future__ import annotations

import numpy as np


def standard_normal(rng: np.random.Generator, shape: int | tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """Independent standard normal draws of ``shape`` in ``dtype`` (float32: Box–Muller; else NumPy's)."""
    dtype = np.dtype(dtype)
    if dtype != np.float32:
        return rng.standard_normal(shape, dtype=dtype)
    size = int(np.prod(shape))
    half = (size + 1) // 2
    u = rng.random(2 * half, dtype=np.float32)
    radius, angle = u[:half], u[half:]
    np.subtract(np.float32(1.0), radius, out=radius)  # (0, 1]: the logarithm stays finite
    np.log(radius, out=radius)
    radius *= np.float32(-2.0)
    np.sqrt(radius, out=radius)
    angle *= np.float32(2.0 * np.pi)
    out = np.empty(2 * half, dtype=np.float32)
    np.cos(angle, out=out[:half])
    np.sin(angle, out=out[half:])
    out[:half] *= radius
    out[half:] *= radius
    return out[:size].reshape(shape)
