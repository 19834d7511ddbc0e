"""Cycle-to-cycle noise draws: standard normals in the emulation's own precision.

Read noise is drawn for every measured neuron output of every phase — tens of thousands of
values per EP step — so its generator is on the hot path. NumPy's ziggurat draws a float32 normal
in about as much time as a float64 one; the Box–Muller transform (Box & Muller, Ann. Math. Statist.
29, 610 (1958)) of float32 uniforms, ``z₁ = √(−2 ln u₁) cos 2πu₂``, ``z₂ = √(−2 ln u₁) sin 2πu₂``
(independent standard normals for independent uniforms ``u₁ ∈ (0, 1]``, ``u₂ ∈ [0, 1)``), runs on
vectorised transcendental functions in half the time. With 24-bit uniforms the tails end at
``√(2·24·ln 2) ≈ 5.8σ`` (a 1-in-10⁸ event): immaterial for read noise.

Draws made ahead (:class:`NoisePool`, :class:`NoiseStreams`): each purpose of a device's noise
(read noise, programming error, write attempts, …) has a generator of its own, spawned from the
device seed, that draws in fixed-size blocks. The values a call gets then depend only on the seed
and on how many values of that purpose were used before — not on when they were drawn — so a
device may draw them while it is idle between calls, and a call finds them ready.
"""

from __future__ import annotations

from collections import deque

from collections.abc import Callable, Mapping

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


def exponential(rng: np.random.Generator, size: int) -> np.ndarray:
    """Standard exponential draws ``E = −ln U``, ``U ∈ (0, 1]`` uniform (float64, inversion).

    A geometric count of trials with success probability ``P`` is ``⌊E/λ⌋ + 1`` with
    ``λ = −ln(1 − P)``: ``P(⌊E/λ⌋ + 1 > k) = P(E ≥ kλ) = (1 − P)^k``. One exponential serves any
    ``P``, so the draws can be made before the probabilities are known (:class:`NoisePool`).
    53-bit uniforms end the tail at ``E ≈ 36.7`` (a 1-in-10¹⁶ event).
    """
    u = rng.random(size)
    np.negative(u, out=u)
    np.log1p(u, out=u)  # ln(1 − U'), U' ∈ [0, 1): ln of a uniform on (0, 1]
    np.negative(u, out=u)
    return u


class NoisePool:
    """Values of one kind (read noise, programming error, …) drawn ahead in fixed-size blocks.

    The values come from the pool's own generator, always ``block`` at a time and in order, so
    the n-th value handed out depends only on the seed and on n: the same whether the blocks were
    drawn ahead (:meth:`top_up`, while the instrument is idle) or on demand (:meth:`take`). That
    is what lets a driver do its random draws between calls without changing any answer.

    What :meth:`top_up` keeps ready (:attr:`reserve`) is what the calls since the previous top-up
    took, at most :data:`MAX_RESERVE_BLOCKS` blocks: it follows the work as it changes (one large
    call does not make every later top-up draw for it again), and one top-up stays short.
    """

    #: the most blocks a top-up keeps ready (a larger call draws the rest when it comes)
    MAX_RESERVE_BLOCKS = 4

    def __init__(self, seed: np.random.SeedSequence, draw: Callable[[np.random.Generator, int], np.ndarray],
                 block: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._draw = draw
        self.block = int(block)
        self._blocks: deque[np.ndarray] = deque()  # drawn blocks not yet used up, oldest first
        self._pos = 0  # values of the oldest block already handed out
        self._ready = 0
        #: values :meth:`top_up` keeps ready: what the calls since the previous top-up took (capped)
        self.reserve = 0
        self._taken = 0

    @property
    def ready(self) -> int:
        """Values drawn and not yet handed out."""
        return self._ready

    def _extend(self, blocks: int) -> None:
        for _ in range(blocks):
            fresh = self._draw(self._rng, self.block)
            fresh.flags.writeable = False  # take() hands out views: nobody may write into the stream
            self._blocks.append(fresh)
            self._ready += fresh.size

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` values, read-only (a view when they lie in one block; drawn now if fewer are ready)."""
        short = n - self._ready
        if short > 0:
            self._extend(-(-short // self.block))
        self._ready -= n
        self._taken += n
        first = self._blocks[0] if self._blocks else None
        if first is not None and self._pos + n <= first.size:
            out = first[self._pos:self._pos + n]
            self._pos += n
            if self._pos == first.size:
                self._blocks.popleft()
                self._pos = 0
            return out
        pieces, need = [], n
        while need:
            block = self._blocks[0]
            piece = block[self._pos:self._pos + need]
            pieces.append(piece)
            need -= piece.size
            self._pos += piece.size
            if self._pos == block.size:
                self._blocks.popleft()
                self._pos = 0
        out = np.concatenate(pieces) if pieces else np.empty(0, dtype=first.dtype if first is not None else float)
        out.flags.writeable = False
        return out

    def top_up(self, max_blocks: int) -> int:
        """Draw up to ``max_blocks`` blocks so that :attr:`reserve` values are ready; returns the blocks drawn."""
        if self._taken:
            self.reserve = min(self._taken, self.MAX_RESERVE_BLOCKS * self.block)
            self._taken = 0
        blocks = min(max_blocks, -(-(self.reserve - self._ready) // self.block))
        if blocks > 0:
            self._extend(blocks)
        return max(blocks, 0)


class NoiseStreams:
    """The named :class:`NoisePool` of each purpose, each on a generator of its own spawned from one seed.

    ``purposes`` maps a name to ``(draw, block)``; pool ``j`` (in the mapping's order) is seeded
    with ``SeedSequence(entropy, spawn_key=(*spawn_key, j))``, so adding a purpose at the end
    leaves the others' streams alone.
    """

    def __init__(self, entropy: int, spawn_key: tuple[int, ...],
                 purposes: Mapping[str, tuple[Callable[[np.random.Generator, int], np.ndarray], int]]) -> None:
        self.pools = {name: NoisePool(np.random.SeedSequence(entropy, spawn_key=(*spawn_key, j)), draw, block)
                      for j, (name, (draw, block)) in enumerate(purposes.items())}

    def take(self, name: str, n: int) -> np.ndarray:
        return self.pools[name].take(n)

    def top_up(self, max_blocks: int) -> int:
        """Draw ahead up to ``max_blocks`` blocks in all, the next pool still short of its reserve
        first; returns the blocks drawn (0: every pool holds its reserve). A caller with a time
        budget calls it a block at a time until the budget is spent or it returns 0."""
        drawn = 0
        for pool in self.pools.values():
            if drawn >= max_blocks:
                break
            drawn += pool.top_up(max_blocks - drawn)
        return drawn
