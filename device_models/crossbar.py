"""MTJ crossbar network with STNO neurons: the first emulated chip.

Topology (fixed at fabrication): neuron layers of sizes ``n_0 (inputs), n_1, …, n_N``; crossbar
``k`` connects layer ``k`` to layer ``k+1`` with an ``n_{k+1} × (n_k + 1)`` array of synapses, the
extra column a bias line held at the read bias. Each synapse is a differential pair of
multi-level MTJ cells, weight ``w = (G⁺ − G⁻)/G_unit`` (DESIGN.md §4). A crossbar is read
forward (``W s_k``, voltages on the columns) and transposed (``Wᵀ s_{k+1}``, voltages on the
rows) — the symmetric connectivity Equilibrium Propagation needs.

Read with bias nonlinearity: a cell's conductance is its parallel part plus its antiparallel
part, and only the latter depends on the voltage through ``TMR(V)``. With ``A``/``B`` the
P/AP parts at the read bias (in weight units) and ``W = A + B``,

    h = W x + B [x ∘ (s(x) − 1)],   s(x) = G_AP(x·V_read) / G_AP(V_read),

two matrix products instead of one per cell and sample (see :func:`mtj.ap_bias_factor`), kept as
``(W + L·B) x − (C/a)·B g̃(x)`` with ``g̃(x) = x/(x² + D/a)`` (:func:`mtj.ap_bias_split`,
:mod:`device_models.crossbar_array`): the two read matrices follow every write, and a read
evaluates only ``g̃``.

Neurons are STNOs at their steady state, ``ρ(h) = p₀(ζ(h))/p₀(ζ_max)``
(:mod:`device_models.stno`). ``relax`` iterates the synchronous dynamics of the prototypical
EP setting (Laborieux et al., Front. Neurosci. 15:633674 (2021))

    s_n ← (1−κ) s_n + κ ρ(W_{n−1} s_{n−1} + b_{n−1} + W_nᵀ s_{n+1} [+ β (y − s_N) for n = N]),

with the input drive ``W_0 x + b_0`` computed once per batch: the free and nudged phases of an
EP step send the same ``x``, and the drive is kept until crossbar 0 is rewritten (an emulation
shortcut: the chip's energy still counts a read of crossbar 0 at every update). Nudged phases of
the same length run as one stacked batch, each phase's rows with its own β (the element-wise work
of all phases in one NumPy call; each phase's matrix products on its own rows, so a phase gives
the same bits as when run alone).

Programming is write-and-verify of binary MTJs (:mod:`device_models.write_verify`); only pairs
whose grid target changed are rewritten.

Noise (read noise, programming error, write attempts, stochastic rounding of ``update``) comes
from per-purpose pools (:class:`device_models.noise.NoiseStreams`) spawned from the device seed:
a call's draws depend only on the seed and on how many were used before, so :meth:`CrossbarNetwork.idle`
may draw them ahead between calls without changing any answer.

Every operation reports the chip's own time and energy from its physics (DESIGN.md §2): reads
``Σ V²·G·t_read``, neurons ``Σ R·I²·t``, writes ``V·I·t_pulse`` per pulse; and the bench's
``instrument_time_s`` (bus round trip, per-sample DAC/ADC, per-pulse write-verify).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from device_models import mtj, relax_kernels, stno
from device_models.config import CrossbarConfig
from device_models.crossbar_array import CrossbarArray
from device_models.noise import NoiseStreams, exponential, standard_normal
from device_models.write_kernels import changed_pairs
from device_models.write_verify import WriteOutcome, junctions_per_cell, pulse_physics, write_pairs

MODEL_VERSION = "crossbar-1.3"

#: Codes of a cell's fabrication state.
FREE, STUCK_P, STUCK_AP = 0, 1, 2

#: Values per block of each noise pool (a few blocks per EP step of a 784-512-10 network).
NOISE_BLOCK = 1 << 16
#: Largest layer buffer (all neuron layers of a batch) whose work arrays a crossbar keeps between relax calls [B].
SETTLE_BUFFER_BYTES = 1 << 20
#: Written index arrays a crossbar lists for :meth:`CrossbarNetwork.state_changes` before it keeps a flag per pair.
WRITTEN_ARRAYS = 64
#: Above this fraction of input columns that are zero in the whole batch, the input drive skips them.
SPARSE_INPUT_FRACTION = 0.125


def default_w_max(fan_in: int) -> float:
    """Weight range of a crossbar fed by ``fan_in`` inputs: ``4/√fan_in`` (a fabrication gain).

    Chosen so that weights a few times the usual ``1/√fan_in`` initial scale fit on the grid.
    """
    return float(4.0 / np.sqrt(fan_in))


#: (dtype, grid) of the chips whose compiled one-level write has been run in this process
_WARM_WRITES: set[tuple[np.dtype, bool]] = set()


def _warm_writes(config: CrossbarConfig) -> None:
    """Run the compiled one-level write (:mod:`device_models.write_kernels`) once per process for
    chips of ``config``'s types, on a throwaway 2×2 chip of the same configuration: compiled (or
    loaded from numba's cache) when a chip is made, not in the first training step it serves
    (about a second on a machine that never compiled it). Continuous cells never take that path."""
    key = (np.dtype(config.dtype), config.levels > 0)
    if key in _WARM_WRITES or not config.levels:
        return
    _WARM_WRITES.add(key)  # first: the throwaway chip's own construction must not come back here
    chip = CrossbarNetwork((2, 2), config, seed=0)
    chip.program({"W0": np.zeros((2, 2))})
    chip.program_cells({"W0": (np.array([0]), np.array([chip.w_max[0] / (config.levels - 1)]))})


def weight_names(n_crossbars: int) -> list[str]:
    """Names of the programmable arrays: ``W0, b0, W1, b1, …``."""
    return [f"{p}{k}" for k in range(n_crossbars) for p in ("W", "b")]


class CrossbarNetwork:
    """An emulated MTJ crossbar chip: layers of differential-pair synapses and STNO neurons.

    Parameters
    ----------
    sizes : sequence of int
        Neuron layer sizes ``(n_0, …, n_N)``; ``n_0`` is the number of inputs.
    config : CrossbarConfig
        Physics and non-idealities.
    seed : int
        Fabrication draws (spreads, stuck cells) and the cycle-to-cycle noise both derive from it,
        on independent streams: the same seed and the same calls give the same results.
    w_max : sequence of float, optional
        Weight range of each crossbar (default :func:`default_w_max`).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        config: CrossbarConfig,
        seed: int,
        w_max: Sequence[float] | None = None,
    ) -> None:
        if len(sizes) < 2 or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in sizes):
            raise ValueError(f"sizes must list at least two positive integer layer sizes, got {list(sizes)}")
        self.sizes = tuple(int(n) for n in sizes)
        self.n_crossbars = len(self.sizes) - 1
        if w_max is None:
            w_max = [default_w_max(n) for n in self.sizes[:-1]]
        if len(w_max) != self.n_crossbars or any(
            isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w < np.inf for w in w_max
        ):
            raise ValueError(f"w_max must hold {self.n_crossbars} positive finite numbers, got {list(w_max)}")
        self.w_max = tuple(float(w) for w in w_max)
        self.config = config
        self.seed = int(seed)
        self.dtype = np.dtype(config.dtype)
        fab_rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0,)))
        dtype = self.dtype
        #: per write direction (P → AP, AP → P): nominal current [A], 1/λ per pulse; AP bias factor
        self._pulses = pulse_physics(config)
        # the cycle-to-cycle draws: one pool per purpose, each on a child of the operations' seed (1,)
        self.noise = NoiseStreams(self.seed, (1,), {
            "read": (lambda rng, n: standard_normal(rng, n, dtype), NOISE_BLOCK),
            "program": (lambda rng, n: standard_normal(rng, n, np.float32), NOISE_BLOCK),
            "attempts": (exponential, NOISE_BLOCK),
            "rounding": (lambda rng, n: rng.random(n), NOISE_BLOCK),
        })
        self._xbars = [
            self._fabricate(self.sizes[k + 1], self.sizes[k], self.w_max[k], fab_rng, k == 0)
            for k in range(self.n_crossbars)
        ]
        self._names = {name: int(name[1:]) for name in weight_names(self.n_crossbars)}
        #: (x, W₀x + b₀, read energy of x per update) of the last relax
        self._drive_cache: tuple[np.ndarray, np.ndarray, float] | None = None
        split = self._xbars[0].split
        #: g̃(v) = v/(v² + D/a) of the folded bias nonlinearity (crossbar_array), None when it is off
        self._bias_den = None if split is None else self.dtype.type(split[2] / split[3])
        #: rows → the work arrays of :meth:`_settle` (:meth:`_settle_buffers`)
        self._buffers: dict[int, dict[str, Any]] = {}
        relax_kernels.warm(self.dtype)  # compiled (or loaded) now, not in the first relax
        _warm_writes(config)
        #: per crossbar, the pairs written since the last :meth:`state_changes`: index arrays, or a flag
        #: per pair once they outnumber the pairs (:meth:`_note_written`); None: not known
        self._written: list[list[np.ndarray] | np.ndarray] | None = [[] for _ in self._xbars]
        self._written_count = [0] * len(self._xbars)

    def idle(self, max_blocks: int = 1) -> bool:
        """Draw ahead up to ``max_blocks`` blocks (:data:`NOISE_BLOCK` values each, 0.1–0.3 ms) of the
        noise the next calls will use; False when every pool already holds what one call used.

        Changes no answer: each pool hands out the same values whether they were drawn now or on demand.
        """
        return self.noise.top_up(max_blocks) > 0

    # ------------------------------------------------------------------ fabrication
    def _fabricate(self, n_out: int, n_in: int, w_max: float, rng: np.random.Generator, first: bool) -> CrossbarArray:
        c = self.config
        shape = (2, n_out, n_in + 1)
        r_p = c.r_p_ohm * np.maximum(1.0 + c.r_p_dtod * rng.standard_normal(shape), 0.1)
        tmr0 = c.tmr0 * np.maximum(1.0 + c.tmr_dtod * rng.standard_normal(shape), 0.0)
        # conductances [S] as numbers of the emulation dtype (held in float64): the programmed ones
        # are stored in it, and a value clipped to a cell's range stays within it when stored
        g_p = (1.0 / r_p).astype(self.dtype).astype(np.float64)
        g_ap = mtj.g_ap_s(g_p, tmr0, c.v_read_v, c.v_h_v).astype(self.dtype).astype(np.float64)
        stuck = np.full(shape, FREE, dtype=np.int8)
        if c.stuck_fraction > 0:
            is_stuck = rng.random(shape) < c.stuck_fraction
            stuck[is_stuck] = np.where(rng.random(int(is_stuck.sum())) < 0.5, STUCK_P, STUCK_AP)
        stuck_value = np.where(stuck == STUCK_P, g_p, g_ap)
        floor = np.where(stuck == FREE, g_ap, stuck_value)
        ceil = np.where(stuck == FREE, g_p, stuck_value)
        g_range = self._calibrated_range_s(g_p, g_ap, stuck)
        return CrossbarArray(
            input_major=first,  # crossbar 0 is read forward only (the inputs are clamped)
            n_out=n_out,
            n_in=n_in,
            w_max=w_max,
            g_unit_s=g_range / w_max,
            g_range_s=g_range,
            g_p=g_p,
            g_ap=g_ap,
            floor=floor,
            ceil=ceil,
            split=mtj.ap_bias_split(c.v_read_v, c.tmr0, c.v_h_v) if c.bias_nonlinearity else None,
            dtype=self.dtype,
        )

    def _calibrated_range_s(self, g_p: np.ndarray, g_ap: np.ndarray, stuck: np.ndarray) -> float:
        """Conductance difference [S] worth ``w_max``: what all but 0.1 % of the free pairs can reach.

        A pair reaches ``+w_max`` if ``G_P⁺ − G_AP⁻ ≥ w_max·G_unit`` (and symmetrically for
        ``−w_max``). Taking the nominal cell's range instead would leave the top levels out of
        reach of about half the pairs under the device-to-device spread; a calibration at
        fabrication picks the range the chip can actually deliver (the nominal one when there is
        no spread).
        """
        c = self.config
        # the nominal cell's conductances as the cells hold them (numbers of the emulation dtype): without
        # a spread every cell is that cell, and a pair at its limit is then worth w_max itself, not w_max
        # times a ratio a rounding away from 1 (a saturated weight would read one float32 step inside it)
        g_p_nominal = float(self.dtype.type(1.0 / c.r_p_ohm))
        nominal = g_p_nominal - float(self.dtype.type(mtj.g_ap_s(g_p_nominal, c.tmr0, c.v_read_v, c.v_h_v)))
        free = (stuck[0] == FREE) & (stuck[1] == FREE)
        reach = np.minimum(g_p[0] - g_ap[1], g_p[1] - g_ap[0])[free]
        if reach.size == 0 or (c.r_p_dtod == 0 and c.tmr_dtod == 0):
            return nominal
        return float(min(nominal, np.quantile(reach, 0.001)))

    # ------------------------------------------------------------------ reads
    def _rational(self, v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray | None:
        """``g̃(v) = v/(v² + D/a)`` of the bias nonlinearity (:mod:`device_models.crossbar_array`);
        None when it is off. Computed once per state and update, shared by the reads it drives."""
        if self._bias_den is None:
            return None
        den = np.square(v, out=out)
        den += self._bias_den
        return np.divide(v, den, out=den)

    def _read_forward(self, k: int, v: np.ndarray, g: np.ndarray | None = None,
                      out: np.ndarray | None = None) -> np.ndarray:
        """Column-to-row read of crossbar ``k``: ``W_k v + b_k`` (+ bias nonlinearity).

        With the nonlinearity, ``(W + L·B) v − (C/a)·B g̃(v) + b``: the same current as
        ``W v + B[v∘(s(v) − 1)] + b``. ``g``: ``g̃(v)`` if the caller has it already; ``out``: where
        to write the result.
        """
        xb = self._xbars[k]
        linear, rational = xb.forward_matrices()
        h = np.matmul(v, linear, out=out)
        if rational is not None:
            h += (self._rational(v) if g is None else g) @ rational
        h += xb.b
        return h

    def _read_transposed(self, k: int, v: np.ndarray, g: np.ndarray | None = None,
                         out: np.ndarray | None = None) -> np.ndarray:
        """Row-to-column read of crossbar ``k``: ``W_kᵀ v`` (+ bias nonlinearity, one product of
        ``[v, g̃(v)]`` with the stacked read matrices)."""
        xb = self._xbars[k]
        if xb.split is None:
            return np.matmul(v, xb.backward_matrix(), out=out)
        g = self._rational(v) if g is None else g
        return np.matmul(np.concatenate([v, g], axis=1), xb.backward_matrix(), out=out)

    def _read_energy_j(self, k: int, v: np.ndarray, transposed: bool) -> float:
        """``Σ V²·G·t_read`` of one read of crossbar ``k`` for every sample of ``v``."""
        c, xb = self.config, self._xbars[k]
        v2 = np.square(v, dtype=np.float64)
        cols, rows = xb.g_sums()
        if transposed:
            power = float(v2.sum(axis=0) @ rows)
        else:
            power = float(v2.sum(axis=0) @ cols[: xb.n_in] + v.shape[0] * cols[xb.n_in])
        return power * c.v_read_v**2 * c.t_read_s

    def _activate(self, h: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        c = self.config
        return stno.response(c.activation, h, c.q_damping, c.zeta_max, out=out)

    def _neuron_energy_j(self, h: np.ndarray, scratch: np.ndarray | None = None) -> float:
        c = self.config
        return stno.neuron_energy_j(h, c.zeta_max, c.i_th_a, c.r_stno_ohm, c.t_neuron_s, scratch=scratch)

    def _measure(self, s: np.ndarray) -> np.ndarray:
        """A measured neuron output: the true one plus read noise (``read_std`` of full scale 1)."""
        std = self.config.read_std
        if std == 0:
            return s.copy()
        noise = np.multiply(self.noise.take("read", s.size).reshape(s.shape), std, dtype=self.dtype)
        noise += s
        return noise

    def _report(self, device_time_s: float, n_samples: int, energy_terms: Mapping[str, float], **extra: Any) -> dict:
        c = self.config
        instrument = c.t_bus_s + n_samples * c.t_sample_s + device_time_s
        return {
            "device_time_s": device_time_s,
            "instrument_time_s": instrument,
            "energy_j": float(sum(energy_terms.values())),
            "energy_terms_j": dict(energy_terms),
            **extra,
        }

    # ------------------------------------------------------------------ operations
    def forward(self, x: np.ndarray, layers: Sequence[int] | None = None) -> tuple[list[np.ndarray], dict]:
        """One feed-forward measurement through the crossbars ``layers`` (consecutive; all if None).

        ``x`` has shape ``(batch, n_{layers[0]})`` in units of the read bias. Returns the measured
        output of each crossbar applied, in order, and the report.
        """
        layers = list(range(self.n_crossbars)) if layers is None else list(layers)
        c = self.config
        a = np.asarray(x, dtype=self.dtype)
        outputs, e_read, e_neuron = [], 0.0, 0.0
        for k in layers:
            h = self._read_forward(k, a)
            e_read += self._read_energy_j(k, a, transposed=False)
            e_neuron += self._neuron_energy_j(h)
            a = self._activate(h)
            outputs.append(self._measure(a))
        batch = a.shape[0]
        device_time = batch * len(layers) * (c.t_read_s + c.t_neuron_s)
        report = self._report(device_time, batch * len(layers), {"read": e_read, "neuron": e_neuron})
        return outputs, report

    def relax(
        self,
        x: np.ndarray,
        beta: float = 0.0,
        target: np.ndarray | None = None,
        steps: int = 20,
        init: Sequence[np.ndarray] | None = None,
    ) -> tuple[list[np.ndarray], dict]:
        """Let the network settle for ``steps`` synchronous updates and measure every layer.

        Free phase: ``beta = 0``; nudged phase: ``beta ≠ 0`` with ``target`` (batch, n_N), the
        nudge ``+β(y − s_N)`` entering inside the output activation. ``init`` (one array per
        neuron layer) is the starting state, zeros if omitted. The setting ``relax_rate`` κ ∈ (0, 1]
        is the fraction of the way to its steady state a neuron moves per update. The report's ``residual`` is
        ``max |s(t) − s(t−1)|`` over the last update.
        """
        states, _, report = self.relax_nudged(x, beta, target, steps, init)
        return states, report

    def relax_nudged(
        self,
        x: np.ndarray,
        beta: float = 0.0,
        target: np.ndarray | None = None,
        steps: int = 20,
        init: Sequence[np.ndarray] | None = None,
        nudges: Sequence[tuple[float, int]] = (),
        layers: Sequence[int] | None = None,
    ) -> tuple[list[np.ndarray], list[list[np.ndarray]], dict]:
        """A phase as :meth:`relax`, then each nudged phase ``(β_j, steps_j)`` of ``nudges`` started
        from the state the chip settled in (kept on the chip: it is neither measured nor sent back).

        This is what EP does per batch (Laborieux et al. 2021: nudged phases ``±β`` from the free
        state) as one instrument transaction. Returns the measured states of the first phase —
        only the neuron layers ``layers`` (indices into ``init``'s list; all when None) — the
        measured states of every layer after each nudged phase, and one report: times and energy
        summed over the phases, the first phase's ``steps``/``residual``/``beta``, and per nudged
        phase its ``beta``, ``steps`` and ``residual`` under ``nudges``.

        Nudged phases of the same length settle as one batch of stacked copies of the free state,
        each copy with its own β (:meth:`_settle`): what each phase reports and measures is what it
        would alone, bit for bit.
        """
        c = self.config
        x = np.asarray(x, dtype=self.dtype)
        batch = x.shape[0]
        n = self.n_crossbars
        if init is None:
            states = [np.zeros((batch, self.sizes[k + 1]), dtype=self.dtype) for k in range(n)]
        else:
            states = [np.asarray(s, dtype=self.dtype) for s in init]
        y = None if target is None else np.asarray(target, dtype=self.dtype)
        drive, e_input = self._input_drive(x)  # e_input: one read of crossbar 0 by the batch, per update
        free, e_read, e_neuron, (residual,) = self._settle(drive, states, y, [float(beta)], int(steps))
        terms = {"read": steps * e_input + e_read, "neuron": e_neuron}
        phases: list[tuple[list[np.ndarray], dict] | None] = [None] * len(nudges)
        by_length: dict[int, list[int]] = {}
        for j, (_, t) in enumerate(nudges):
            by_length.setdefault(int(t), []).append(j)
        for t, group in by_length.items():
            betas = [float(nudges[j][0]) for j in group]
            copies = len(group)
            stacked = (lambda a: a) if copies == 1 else (lambda a: np.concatenate([a] * copies))
            settled, e_read, e_neuron, residuals = self._settle(
                stacked(drive), [stacked(s) for s in free], None if y is None else stacked(y), betas, t)
            terms["read"] += copies * t * e_input + e_read
            terms["neuron"] += e_neuron
            for i, j in enumerate(group):
                rows = slice(i * batch, (i + 1) * batch)
                phases[j] = ([s[rows] for s in settled], {"beta": nudges[j][0], "steps": nudges[j][1],
                                                          "residual": residuals[i]})
        keep = range(n) if layers is None else layers
        measured = [self._measure(free[k]) for k in keep]
        nudged = [[self._measure(s) for s in settled] for settled, _ in phases]  # type: ignore[misc]
        updates = steps + sum(int(t) for _, t in nudges)
        device_time = batch * updates * (c.t_read_s + c.t_neuron_s)
        extra: dict[str, Any] = {"steps": steps, "residual": residual, "beta": beta}
        if nudges:
            extra["nudges"] = [info for _, info in phases]  # type: ignore[misc]
        report = self._report(device_time, batch * (1 + len(nudges)), terms, **extra)
        return measured, nudged, report

    def _layer_buffer(self, batch: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """One contiguous array holding every neuron layer's ``(batch, n_k)`` block, and the blocks
        (views): element-wise work on all layers is one NumPy call instead of one per layer."""
        flat = np.empty(batch * sum(self.sizes[1:]), dtype=self.dtype)
        return flat, self._blocks_of(flat, batch)

    def _blocks_of(self, flat: np.ndarray, batch: int) -> list[np.ndarray]:
        """The layer blocks of a buffer laid out as :meth:`_layer_buffer`'s."""
        blocks, offset = [], 0
        for width in self.sizes[1:]:
            blocks.append(flat[offset:offset + batch * width].reshape(batch, width))
            offset += batch * width
        return blocks

    def _settle(self, drive: np.ndarray, states: list[np.ndarray], y: np.ndarray | None, betas: Sequence[float],
                steps: int) -> tuple[list[np.ndarray], float, float, list[float]]:
        """``steps`` synchronous updates from ``states`` (left untouched) of ``len(betas)`` phases
        stacked row-wise (phase ``j``: the ``j``-th equal share of the rows, nudged with ``betas[j]``).

        Returns the true settled states (per layer, all phases' rows; arrays of their own), the read
        energy [J] of the reads driven by neuron layers and the neuron energy [J] summed over the
        phases, and per phase the residual ``max |s(t) − s(t−1)|`` of the last update. The drive
        ``W₀x + b₀`` is given.

        All layers of all phases live in one buffer (:meth:`_layer_buffer`), double-buffered between
        updates and kept between calls (:meth:`_settle_buffers`): the read energy's weighted sum of
        squared states, ``g̃``, the neuron energy's clip sums and the activation are one compiled
        pass each per update over everything (:mod:`device_models.relax_kernels`). The matrix
        products run per phase on its own rows, so each phase gets the bits it would get alone (one
        product over all rows does not: OpenBLAS sums a row differently for other row counts, which
        ``tests/test_crossbar_fast_paths.py`` catches at 6 against 12 rows). The output layer's constant input — its bias line and,
        nudged, ``β y`` — is summed once per call, the nudge's ``−β s_N`` once per update.
        """
        c = self.config
        n = self.n_crossbars
        dtype = self.dtype
        rows = drive.shape[0]
        groups = len(betas)
        share = rows // groups
        parts = [slice(i * share, (i + 1) * share) for i in range(groups)]
        buf = self._settle_buffers(rows)
        (cur, cur_s), (new, new_s), scratch = buf["cur"], buf["new"], buf["scratch"]
        for block, s in zip(cur_s, states):
            block[...] = s
        # the read energy of the reads a layer drives (forward into k+1, transposed into k) is its
        # squared states weighted by the conductance sums they see: one weighted sum per update
        read_g = self._read_weights_of_states(buf["read_g"]) if n > 1 else None
        power = 0.0  # Σ (V/V_read)²·G [S] of those reads, over samples and updates
        den = self._bias_den if n > 1 else None
        g, g_s = buf["g"] if den is not None else (None, [None] * n)
        xbs = self._xbars
        # the transposed read of crossbar k+1 takes [s, g̃] of layer k+1 (one product, stacked matrices)
        cats = buf["cats"]
        back = [None] + [xb.backward_matrix() for xb in xbs[1:]]
        fwd = [(*xb.forward_matrices(), xb.b) for xb in xbs]
        reads = buf["reads"]  # per layer: where the forward read's second product (and the whole read) go
        nudging = y is not None and any(b != 0.0 for b in betas)
        # the output layer's constant input, whole rows (a broadcast add costs twice a plain one): its
        # bias line (a single crossbar's is in the drive already) and, nudged, β y
        out_const = np.empty_like(cur_s[-1])
        out_const[...] = xbs[-1].b if n > 1 else 0.0
        if nudging:
            beta_rows = np.empty_like(out_const)
            beta_rows[...] = np.repeat(np.asarray(betas, dtype=dtype), share)[:, None]
            nudge = buf["nudge"]
            out_const += np.multiply(y, beta_rows, dtype=dtype)
        stno_response = c.activation == "stno"
        zeta_max, q = c.zeta_max, c.q_damping
        gain = zeta_max - 1.0
        lo = dtype.type(-(zeta_max + 1.0) / gain)
        alpha, gamma = dtype.type(gain / (zeta_max + q)), dtype.type((1.0 + q) / (zeta_max + q))
        rate = c.relax_rate
        mult, add, sub, mm = np.multiply, np.add, np.subtract, np.matmul
        sum_zeta2 = 0.0  # Σ over updates of Σ ζ² (stno neurons: R·I_th²·t_neuron times it is the energy)
        e_neuron = 0.0
        residuals = [0.0] * groups
        for t in range(steps):
            if read_g is not None:  # Σ s²·G of the reads the states drive, and g̃(s)
                power += relax_kernels.square_sum(cur, read_g)
                if den is not None:
                    relax_kernels.rational(cur, den, g)
            for k in range(n):  # neuron layer k+1, fed by crossbar k (and k+1 transposed)
                h = new_s[k]
                if k + 1 < n:
                    src = cur_s[k + 1]
                    if den is not None:
                        src = np.concatenate((src, g_s[k + 1]), axis=1, out=cats[k + 1])
                    for p in parts:
                        mm(src[p], back[k + 1], out=h[p])
                    if k == 0:
                        add(h, drive, out=h)
                        continue
                elif k == 0:  # a single crossbar: the drive, and the nudge's β y
                    np.copyto(h, drive)
                    if nudging:
                        add(h, out_const, out=h)
                    continue
                w0, w1, b = fwd[k]
                whole, second = reads[k]
                s_in, g_in = cur_s[k - 1], g_s[k - 1]
                for p in parts:
                    if k + 1 < n:  # the forward read whole, then added to the transposed one
                        f = mm(s_in[p], w0, out=whole[p])
                        if w1 is not None:
                            f += mm(g_in[p], w1, out=second[p])
                        f += b
                        h[p] += f
                    else:
                        mm(s_in[p], w0, out=h[p])
                        if w1 is not None:
                            h[p] += mm(g_in[p], w1, out=second[p])
                if k + 1 == n:
                    add(h, out_const, out=h)
            if nudging:  # + β(y − s_N): β y is in out_const
                mult(cur_s[-1], beta_rows, out=nudge)
                sub(new_s[-1], nudge, out=new_s[-1])
            if stno_response:  # the energy's clip sums, then stno.activation in place (relax_kernels)
                s1, s2 = relax_kernels.clip_sums(new, lo)
                sum_zeta2 += max(new.size + 2.0 * gain * s1 + gain * gain * s2, 0.0)
                relax_kernels.stno_response(new, alpha, gamma)
            else:
                e_neuron += self._neuron_energy_j(new, scratch)
                self._activate(new, out=new)
            if rate != 1.0:
                sub(new, cur, out=new)
                mult(new, rate, out=new)
                add(new, cur, out=new)
            if t == steps - 1:
                sub(new, cur, out=scratch)
                np.abs(scratch, out=scratch)
                blocks = self._blocks_of(scratch, rows)
                residuals = [max(float(block[p].max()) for block in blocks) for p in parts]
            cur, new, cur_s, new_s = new, cur, new_s, cur_s
        e_neuron += c.r_stno_ohm * c.i_th_a**2 * c.t_neuron_s * sum_zeta2
        if n > 1:  # the bias lines of crossbars 1…n−1, held at the read bias at every update
            power += steps * rows * sum(float(xb.g_sums()[0][xb.n_in]) for xb in xbs[1:])
        return [s.copy() for s in cur_s], power * c.v_read_v**2 * c.t_read_s, e_neuron, residuals

    def _settle_buffers(self, rows: int) -> dict[str, Any]:
        """The work arrays of :meth:`_settle` for ``rows`` rows, kept between calls while one layer buffer
        holds at most :data:`SETTLE_BUFFER_BYTES` (an EP step settles 64 and 128 rows: a few hundred kB
        in all, which a call no longer allocates and faults in anew)."""
        buf = self._buffers.get(rows)
        if buf is None:
            n, dtype = self.n_crossbars, self.dtype
            cur, new = self._layer_buffer(rows), self._layer_buffer(rows)
            buf = {
                "cur": cur, "new": new, "scratch": np.empty_like(cur[0]),
                "read_g": np.empty_like(cur[0]), "g": self._layer_buffer(rows),
                "cats": [None] + [np.empty((rows, 2 * self.sizes[k + 1]), dtype) for k in range(1, n)],
                "reads": [None] + [tuple(np.empty((rows, self.sizes[k + 1]), dtype) for _ in range(2))
                                   for k in range(1, n)],
                "nudge": np.empty((rows, self.sizes[-1]), dtype),
            }
            if cur[0].nbytes <= SETTLE_BUFFER_BYTES:  # large batches: made per call (the updates outweigh it)
                if len(self._buffers) >= 4:  # callers with many batch sizes: keep the latest few
                    self._buffers.pop(next(iter(self._buffers)))
                self._buffers[rows] = buf
        return buf

    def _read_weights_of_states(self, out: np.ndarray) -> np.ndarray:
        """Per entry of a :meth:`_layer_buffer` (``out``, filled and returned), the conductance [S] its
        squared state (in units of V_read²) draws through in one update: layer k+1 drives crossbar
        k+1 forward (its column sums) and crossbar k transposed (its row sums)."""
        n = self.n_crossbars
        rows = out.size // sum(self.sizes[1:])
        for k, block in enumerate(self._blocks_of(out, rows)):
            g = np.zeros(block.shape[1])
            if k + 1 < n:
                xb = self._xbars[k + 1]
                g += xb.g_sums()[0][: xb.n_in]
            if k >= 1:
                g += self._xbars[k].g_sums()[1]
            block[...] = g
        return out

    def _input_drive(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """``W₀x + b₀`` (with the bias nonlinearity) of this input and the energy [J] of that read,
        reused while ``x`` and crossbar 0 stay the same.

        The comparison costs one pass over ``x``; the products it saves are the largest of a phase.
        Input columns that are zero in every sample (the border of an image) are left out of the
        products: a zero voltage draws no current.
        """
        cached = self._drive_cache
        if cached is not None and cached[0].shape == x.shape and np.array_equal(cached[0], x):
            return cached[1], cached[2]
        xb = self._xbars[0]
        used = np.flatnonzero(np.any(x, axis=0))
        if xb.input_major and xb.split is not None and used.size < (1.0 - SPARSE_INPUT_FRACTION) * xb.n_in:
            # the rows of the inputs in use of both read matrices, and [v, g̃(v)]: one product
            v = x[:, used]
            drive = np.concatenate([v, self._rational(v)], axis=1) @ xb.read.take(used, axis=1).reshape(-1, xb.n_out)
            drive += xb.b
        else:
            drive = self._read_forward(0, x)
        energy = self._read_energy_j(0, x, transposed=False)
        self._drive_cache = (x.copy(), drive, energy)
        return drive, energy

    def read_weights(self) -> tuple[dict[str, np.ndarray], dict]:
        """Measure the programmed state: effective weights and biases at the read bias.

        Each cell is measured by the bench for ``t_cell_read_s``, long enough that read noise
        averages out (what a verify read does); the chip is biased at the read voltage meanwhile.
        """
        c = self.config
        cells = sum(xb.g.size for xb in self._xbars)
        g_total = sum(float(xb.g.sum()) for xb in self._xbars)
        device_time = cells * c.t_cell_read_s
        report = self._report(device_time, 0, {"read": g_total * c.v_read_v**2 * c.t_cell_read_s})
        return self._weights(), report

    def _weights(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Copies of the effective weights and biases (what a weight read measures), all or ``names``."""
        out: dict[str, np.ndarray] = {}
        for name in weight_names(self.n_crossbars) if names is None else names:
            xb = self._xbars[self.layer_of(name)]
            out[name] = (xb.w if name[0] == "W" else xb.b).copy()
        return out

    def targets(self) -> dict[str, np.ndarray]:
        """The grid targets last programmed (NaN where never written): the controller's record."""
        out = {}
        for k, xb in enumerate(self._xbars):
            out[f"W{k}"] = xb.target[:, : xb.n_in].copy()
            out[f"b{k}"] = xb.target[:, xb.n_in].copy()
        return out

    def quantize(self, k: int, w: np.ndarray) -> np.ndarray:
        """Grid target of crossbar ``k`` nearest to ``w`` (clipped to ``±w_max``)."""
        w_max, levels = self.w_max[k], self.config.levels
        if levels == 0:
            return np.clip(np.asarray(w, dtype=np.float64), -w_max, w_max)
        step = w_max / (levels - 1)
        q = np.multiply(w, 1.0 / step, dtype=np.float64)
        np.rint(q, out=q)
        np.clip(q, -(levels - 1), levels - 1, out=q)
        q *= step
        return q

    def program(self, targets: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
        """Write-and-verify the named arrays (``W{k}``, ``b{k}``) to their grid targets.

        Returns the achieved weights of every array written to, and a report with the pairs
        rewritten, the failures (flat indices per array), time and energy. Only pairs whose grid
        target changed are rewritten.
        """
        new_targets: dict[int, np.ndarray] = {}
        for name, w in targets.items():
            k = self.layer_of(name)
            full = new_targets.setdefault(k, self._xbars[k].target.copy())
            full[self._columns(k, name)] = self.quantize(k, w)
        return self._write_all(self._changed(new_targets), names=list(targets))

    def update(self, deltas: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
        """Incremental write: move each pair of the named arrays by ``delta`` in whole grid steps.

        Like a pulsed learning rule, the number of level steps is ``delta/step`` rounded
        stochastically (unbiased), so updates smaller than a level still act in expectation.
        Pairs never programmed start from the nominal 0; results saturate at ``±w_max``.
        Arrays not named are left alone.
        """
        levels = self.config.levels
        new_targets: dict[int, np.ndarray] = {}
        for name, delta in deltas.items():
            k = self.layer_of(name)
            xb = self._xbars[k]
            full = new_targets.setdefault(k, xb.target.copy())
            cols = self._columns(k, name)
            current = np.nan_to_num(full[cols], nan=0.0)
            delta = np.asarray(delta, dtype=np.float64)
            if levels:
                step = xb.w_max / (levels - 1)
                u = self.noise.take("rounding", delta.size).reshape(delta.shape)
                moved = current + np.floor(delta / step + u) * step
            else:
                moved = current + delta
            full[cols] = np.clip(moved, -xb.w_max, xb.w_max)
        return self._write_all(self._changed(new_targets), names=list(deltas))

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every weight array: ``W{k}`` is ``(n_{k+1}, n_k)``, ``b{k}`` is ``(n_{k+1},)``."""
        out: dict[str, tuple[int, ...]] = {}
        for k in range(self.n_crossbars):
            out[f"W{k}"] = (self.sizes[k + 1], self.sizes[k])
            out[f"b{k}"] = (self.sizes[k + 1],)
        return out

    def layer_of(self, name: str) -> int:
        """Crossbar index of a weight array name (``W0``, ``b0``, …); ``KeyError`` for any other name."""
        try:
            return self._names[name]
        except KeyError:
            raise KeyError(name) from None

    def _columns(self, k: int, name: str) -> tuple[slice, slice | int]:
        """Where array ``name`` sits in crossbar ``k``'s pair array: the weight columns or the bias column."""
        n_in = self._xbars[k].n_in
        return (slice(None), slice(0, n_in)) if name[0] == "W" else (slice(None), n_in)

    def program_cells(self, cells: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> tuple[dict[str, np.ndarray], dict]:
        """:meth:`program` of single cells: ``cells[name] = (index, value)``, flat indices into
        array ``name`` (row-major) and their target weights; the other cells keep their targets.

        The same write as :meth:`program` of the whole array with those cells changed (each value
        to its grid target, only pairs whose grid target changed rewritten), without passing over
        the cells that were not named: a training step moves a fraction of the cells across a level.
        """
        parts: dict[int, dict[str, tuple]] = {}
        for name, (index, value) in cells.items():
            k = self.layer_of(name)
            xb = self._xbars[k]
            index = np.asarray(index, dtype=np.int64)
            pair = index + index // xb.n_in if name[0] == "W" else index * (xb.n_in + 1) + xb.n_in
            q = self.quantize(k, value)
            # the old targets read in place (no gather of whole records: write_pairs reads them where
            # they lie, or gathers them if it takes the general way); never-written (NaN) counts as changed
            keep = changed_pairs(xb.records, xb.target_column, pair, q)
            if not keep.all():
                keep = np.flatnonzero(keep)
                index, pair, q = index.take(keep), pair.take(keep), q.take(keep)
            parts.setdefault(k, {})[name[0]] = (pair, q, index)
        # one write per crossbar, its weights then its biases (one pass of the write's fixed costs);
        # where the pairs sit in the read matrices: the weights' own flat index, the biases' rows
        writes = []
        for k, by_kind in sorted(parts.items()):
            pieces = [by_kind[kind] for kind in "Wb" if kind in by_kind]
            joined = pieces[0][:2] if len(pieces) == 1 else [np.concatenate([p[j] for p in pieces]) for j in range(2)]
            writes.append((k, *joined, None, (by_kind["W"][2] if "W" in by_kind else None,
                                              by_kind["b"][2] if "b" in by_kind else None)))
        return self._write_all(writes, names=list(cells))

    def _changed(self, new_targets: Mapping[int, np.ndarray]) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray,
                                                                          tuple[None, None]]]:
        """``(k, flat pair indices, grid targets, their records, (None, None))`` of the pairs whose
        target differs from the last written (see :meth:`_write_all`)."""
        writes = []
        for k, full in new_targets.items():
            xb = self._xbars[k]
            flat, old = full.ravel(), xb.target.ravel()
            changed = np.flatnonzero(~np.isnan(flat) & ~(flat == old))  # never-written (NaN) old counts as changed
            writes.append((k, changed, flat[changed], xb.records.take(changed, axis=0), (None, None)))
        return writes

    def _write_all(self, writes: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray | None, tuple[Any, Any]]],
                   names: Sequence[str]) -> tuple[dict, dict]:
        """Write each ``(k, flat pair indices, grid targets, the pairs' records or None, (w_idx, b_idx))``
        (``w_idx``/``b_idx``: where the pairs sit in the weights or biases, when known; see
        :meth:`CrossbarArray.store`); report as :meth:`program` does."""
        c = self.config
        written = failures = pulses = switches = junction_failures = 0
        e_write = e_verify = 0.0
        most_attempts = 0
        failed: dict[str, np.ndarray] = {f"{p}{k}": np.empty(0, np.int64) for k, *_ in writes for p in "Wb"}
        for k, changed, values, records, (w_idx, b_idx) in writes:
            xb = self._xbars[k]
            w: WriteOutcome = write_pairs(xb, changed, values, records, c, self.noise, self._pulses, w_idx, b_idx)
            self._note_written(k, changed)
            if k == 0 and changed.size:
                self._drive_cache = None  # the input drive changed with the conductances
            written += changed.size
            failures += w.failed.size
            pulses += w.pulses
            switches += w.switches
            junction_failures += w.junction_failures
            e_write += w.e_write_j
            e_verify += w.e_verify_j
            most_attempts = max(most_attempts, w.most_attempts)
            rows, cols = np.divmod(w.failed, xb.n_in + 1)
            weight_part = cols < xb.n_in
            failed[f"W{k}"] = np.concatenate([failed[f"W{k}"], rows[weight_part] * xb.n_in + cols[weight_part]])
            failed[f"b{k}"] = np.concatenate([failed[f"b{k}"], rows[~weight_part]])
        device_time = pulses * (c.t_pulse_s + c.t_read_s)
        achieved = self._weights(names)
        report = self._report(
            device_time,
            0,
            {"write": e_write, "verify": e_verify},
            pairs_written=int(written),
            pulses=int(pulses),
            junction_switches=int(switches),
            junction_failures=int(junction_failures),
            pulses_per_pair_max=int(most_attempts),
            failures=int(failures),
            failed={name: failed[name].astype(np.int64) for name in names},
        )
        report["instrument_time_s"] += pulses * c.t_write_verify_s
        return achieved, report

    def junctions_per_cell(self) -> int:
        """Binary MTJs in parallel in one cell: ``levels − 1`` (one analog element for continuous levels)."""
        return junctions_per_cell(self.config)

    # ------------------------------------------------------------------ non-volatile state
    def _note_written(self, k: int, pairs: np.ndarray) -> None:
        """Remember that crossbar ``k``'s pairs ``pairs`` were written (for :meth:`state_changes`).

        Kept as the written index arrays while there are at most :data:`WRITTEN_ARRAYS` of them
        holding fewer indices than the crossbar has pairs (a durable server asks after every write:
        a list of one array); past that, as a flag per pair (a caller that never asks, a server
        without durable state, holds a byte per pair and pays a scatter per write).
        """
        if self._written is None or not pairs.size:
            return
        held = self._written[k]
        if isinstance(held, np.ndarray):
            held[pairs] = True
            return
        held.append(pairs)
        self._written_count[k] += pairs.size
        if len(held) > WRITTEN_ARRAYS or self._written_count[k] > self._xbars[k].pairs:
            flags = np.zeros(self._xbars[k].pairs, dtype=bool)
            for a in held:
                flags[a] = True
            self._written[k] = flags

    def state_changes(self) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
        """The cells of :meth:`export_state` written since the previous call: per exported array,
        flat indices (row-major, int64) and their values now; None when they are not known (after
        :meth:`restore_state`), and the caller must compare whole states. Each call starts a new
        interval.

        Why: a server with durable state journals every write; comparing whole exported states
        costs a training step about 3 ms (a 6 MB gather and a 13 MB comparison), the written
        pairs about 0.2 ms. An index may repeat, and a pair written to the value it held is
        listed too: what is listed holds the values of the state now.
        """
        written, self._written = self._written, [[] for _ in self._xbars]
        self._written_count = [0] * len(self._xbars)
        if written is None:
            return None
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for k, xb in enumerate(self._xbars):
            held = written[k]
            if isinstance(held, np.ndarray):
                pairs = np.flatnonzero(held)
            elif held:
                pairs = np.concatenate(held).astype(np.int64, copy=False)
            else:
                continue
            target, g_plus, g_minus = xb.programmed(pairs)
            # x{k}.g is (2, n_out, n_in+1): the + cells' conductances, then the − cells'
            out[f"x{k}.g"] = (np.concatenate([pairs, pairs + xb.pairs]), np.concatenate([g_plus, g_minus]))
            out[f"x{k}.target"] = (pairs, target)
        return out

    def export_state(self) -> dict[str, np.ndarray]:
        """The programmed (non-volatile) state: per crossbar ``k`` the cell conductances
        ``x{k}.g`` [S], shape ``(2, n_out, n_in+1)``, and the grid targets ``x{k}.target``
        (NaN: never written). Everything else is fabrication (drawn from the seed) or derived.
        The targets are a view of the model's own records (no copy: read them before the next
        write); the conductances, interleaved in the records, are a C-ordered copy.
        """
        out: dict[str, np.ndarray] = {}
        for k, xb in enumerate(self._xbars):
            out[f"x{k}.g"] = np.ascontiguousarray(xb.g)
            out[f"x{k}.target"] = xb.target
        return out

    def restore_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Put back a state from :meth:`export_state` of the same chip (same sizes, config, seed).

        The derived read matrices are recomputed from the conductances with the same arithmetic
        as a write, so the restored weights equal the exported ones bit for bit. A conductance a
        hair outside its cell's range (a state saved by ``crossbar-1.1``, whose float32 chips' ranges
        were not yet float32 numbers) is put back within it.
        """
        expected = set(self.export_state())
        if set(state) != expected:
            raise ValueError(f"state must hold exactly {sorted(expected)}, got {sorted(state)}")
        for k, xb in enumerate(self._xbars):
            g, target = np.asarray(state[f"x{k}.g"]), np.asarray(state[f"x{k}.target"])
            if g.shape != xb.g.shape or target.shape != xb.target.shape:
                raise ValueError(f"crossbar {k}: state shapes {g.shape}, {target.shape} do not fit "
                                 f"{xb.g.shape}, {xb.target.shape}")
            if not np.all(np.isfinite(g)) or np.any(g < xb.floor * (1 - 1e-6)) or np.any(g > xb.ceil * (1 + 1e-6)):
                raise ValueError(f"crossbar {k}: conductances outside the cells' reachable range")
        for k, xb in enumerate(self._xbars):
            xb.set_state(np.clip(np.asarray(state[f"x{k}.g"], dtype=np.float64), xb.floor, xb.ceil),
                         np.asarray(state[f"x{k}.target"], dtype=np.float64))
        self._drive_cache = None  # the input drive belongs to the conductances just replaced
        self._written = None  # every cell may have changed

    # ------------------------------------------------------------------ description
    def describe(self) -> dict[str, Any]:
        """Topology, ranges and model version (the driver adds capabilities and limits)."""
        return {
            "kind": "mtj-crossbar",
            "model_version": MODEL_VERSION,
            "topology": {
                "sizes": list(self.sizes),
                "w_max": list(self.w_max),
                "weights": weight_names(self.n_crossbars),
                "shapes": {name: list(shape) for name, shape in self.weight_shapes().items()},
            },
            "levels": self.config.levels,
            "input_max": self.config.v_read_max_v / self.config.v_read_v,
        }
