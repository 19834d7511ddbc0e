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
``(W + L·B) x − C·B g(x)`` with ``g(x) = x/(D + a x²)`` (:func:`mtj.ap_bias_split`): the two read
matrices follow every write, and a read evaluates only ``g``.

Neurons are STNOs at their steady state, ``ρ(h) = p₀(ζ(h))/p₀(ζ_max)``
(:mod:`device_models.stno`). ``relax`` iterates the synchronous dynamics of the prototypical
EP setting (Laborieux et al., Front. Neurosci. 15:633674 (2021))

    s_n ← (1−κ) s_n + κ ρ(W_{n−1} s_{n−1} + b_{n−1} + W_nᵀ s_{n+1} [+ β (y − s_N) for n = N]),

with the input drive ``W_0 x + b_0`` computed once per batch: the free and nudged phases of an
EP step send the same ``x``, and the drive is kept until crossbar 0 is rewritten (an emulation
shortcut: the chip's energy still counts a read of crossbar 0 at every update).

Programming is write-and-verify of binary MTJs: a cell of ``levels`` states is ``levels − 1``
junctions in parallel; the lower cell of the pair sits at its floor (reset state), the other is
set to ``floor + |w|·G_unit``. Each junction that must change state gets pulses until its verify
read confirms it or the attempt limit is spent; the attempts are geometric with the switching
probability ``P_sw = 1 − exp(−t_p/τ)``, ``τ = τ₀ exp[Δ(1 − I/I_c0)]`` of the write current
(current-controlled pulses; :mod:`device_models.mtj`). The switched cell lands with the cycle-to-cycle error
``prog_std`` × the conductance range. A target outside the cell's own range (device-to-device
spread, stuck cells) or a junction that never switched is reported as a failure. Only pairs
whose grid target changed are rewritten.

Every operation reports the chip's own time and energy from its physics (DESIGN.md §2): reads
``Σ V²·G·t_read``, neurons ``Σ R·I²·t``, writes ``V·I·t_pulse`` per pulse; and the bench's
``instrument_time_s`` (bus round trip, per-sample DAC/ADC, per-pulse write-verify).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from device_models import mtj, stno
from device_models.noise import standard_normal
from device_models.config import CrossbarConfig

MODEL_VERSION = "crossbar-1.1"

#: Above this fraction of pairs rewritten in one write, the read matrices are recomputed whole
#: (a few passes) rather than patched cell by cell (gathers and scatters of every changed cell).
DENSE_WRITE_FRACTION = 0.25

#: Codes of a cell's fabrication state.
FREE, STUCK_P, STUCK_AP = 0, 1, 2


def default_w_max(fan_in: int) -> float:
    """Weight range of a crossbar fed by ``fan_in`` inputs: ``4/√fan_in`` (a fabrication gain).

    Chosen so that weights a few times the usual ``1/√fan_in`` initial scale fit on the grid.
    """
    return float(4.0 / np.sqrt(fan_in))


def weight_names(n_crossbars: int) -> list[str]:
    """Names of the programmable arrays: ``W0, b0, W1, b1, …``."""
    return [f"{p}{k}" for k in range(n_crossbars) for p in ("W", "b")]


def ap_share_s(g_p: np.ndarray, g_ap: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Antiparallel share [S] of cells at conductance ``g`` between their ``g_ap`` and ``g_p``.

    A multi-level cell at fraction ``f`` of its range is ``f`` parallel and ``1 − f`` antiparallel;
    only the latter depends on the bias through ``TMR(V)``.
    """
    span = g_p - g_ap
    return np.divide(g_p - g, span, out=np.zeros_like(span), where=span > 0) * g_ap


@dataclass
class _Crossbar:
    """State of one crossbar: per-cell fabrication draws and the programmed conductances [S]."""

    n_out: int
    n_in: int
    w_max: float
    g_unit_s: float  # conductance difference [S] worth a weight of 1
    g_range_s: float  # calibrated conductance range [S] of a pair, worth w_max
    g_p: np.ndarray  # (2, n_out, n_in+1) parallel conductance of + and − cells
    g_ap: np.ndarray  # (2, n_out, n_in+1) antiparallel conductance at the read bias
    floor: np.ndarray  # (2, …) lowest reachable conductance (G_AP, or the stuck value)
    ceil: np.ndarray  # (2, …) highest reachable conductance (G_P, or the stuck value)
    g: np.ndarray  # (2, …) achieved conductances
    target: np.ndarray  # (n_out, n_in+1) grid target of each pair (NaN: never written)
    w: np.ndarray  # (n_out, n_in) effective weight at the read bias, emulation dtype
    b: np.ndarray  # (n_out,) effective bias
    w_ap: np.ndarray | None  # (n_out, n_in) AP part of w, for the bias nonlinearity
    read: np.ndarray  # (2, n_out, n_in) what a read multiplies: [W + L·B, −C·B] (bias on) or [W] (off)
    col_g_sum: np.ndarray  # (n_in+1,) Σ over rows of G⁺+G⁻: forward-read power per V²
    row_g_sum: np.ndarray  # (n_out,) Σ over columns of G⁺+G⁻ (weights only): transposed read
    split: tuple[float, float, float, float] | None  # mtj.ap_bias_split constants (None: bias nonlinearity off)

    def set_read(self, split: tuple[float, float, float, float] | None) -> None:
        """Rebuild the read matrices from ``w`` and ``w_ap`` (:func:`mtj.ap_bias_split` constants)."""
        if split is None:
            self.read = self.w[None]
            return
        linear, c = split[0], split[1]
        read = np.empty((2, *self.w.shape), dtype=self.w.dtype)
        np.multiply(self.w_ap, linear, out=read[0])
        read[0] += self.w
        np.multiply(self.w_ap, -c, out=read[1])
        self.read = read

    def refresh(self, dtype: np.dtype, nonlinear: bool) -> np.ndarray:
        """Recompute the derived read matrices from the conductances (all cells at once: cheaper
        than :meth:`set_cells` when most cells changed). Returns the antiparallel share [S] of
        every cell, shape ``(2, n_out·(n_in+1))``."""
        full = (self.g[0] - self.g[1]) / self.g_unit_s
        self.w = np.ascontiguousarray(full[:, : self.n_in], dtype=dtype)
        self.b = np.ascontiguousarray(full[:, self.n_in], dtype=dtype)
        ap = ap_share_s(self.g_p, self.g_ap, self.g)
        if nonlinear:
            self.w_ap = np.ascontiguousarray((ap[0] - ap[1])[:, : self.n_in] / self.g_unit_s, dtype=dtype)
        self.set_read(self.split)
        total = self.g[0] + self.g[1]
        self.col_g_sum = total.sum(axis=0)
        self.row_g_sum = total[:, : self.n_in].sum(axis=1)
        return ap.reshape(2, -1)

    def set_cells(self, idx: np.ndarray, g_plus: np.ndarray, g_minus: np.ndarray) -> np.ndarray:
        """Store new conductances of the pairs at flat indices ``idx`` and update the derived
        matrices there only (a training step rewrites few cells of a large array).

        Returns the antiparallel share [S] of the new cells, shape ``(2, idx.size)``.
        """
        n1 = self.n_in + 1
        g_plus_flat, g_minus_flat = self.g.reshape(2, -1)  # views: put() writes through
        old_total = g_plus_flat.take(idx) + g_minus_flat.take(idx)
        g_plus_flat.put(idx, g_plus)
        g_minus_flat.put(idx, g_minus)
        rows, cols = np.divmod(idx, n1)
        weight = (g_plus - g_minus) / self.g_unit_s
        ap = ap_share_s(np.take(self.g_p.reshape(2, -1), idx, axis=1), np.take(self.g_ap.reshape(2, -1), idx, axis=1),
                        np.stack([g_plus, g_minus]))
        ap_weight = (ap[0] - ap[1]) / self.g_unit_s if self.w_ap is not None else None
        in_w = cols < self.n_in
        all_w = bool(in_w.all())
        w_idx = idx - rows  # flat index in the (n_out, n_in) weight matrix: r·n_in + c
        if not all_w:
            self.b[rows[~in_w]] = weight[~in_w]
            w_idx, weight = w_idx[in_w], weight[in_w]
            ap_weight = None if ap_weight is None else ap_weight[in_w]
        self.w.put(w_idx, weight)
        if ap_weight is None:
            self.read = self.w[None]
        else:
            self.w_ap.put(w_idx, ap_weight)
            # the arithmetic of set_read, in the read dtype: a restore (refresh) gives the same bits
            linear, c = self.split[0], self.split[1]
            ap_cast = ap_weight.astype(self.w.dtype)
            folded = np.multiply(ap_cast, linear)
            folded += weight.astype(self.w.dtype)
            self.read[0].put(w_idx, folded)
            self.read[1].put(w_idx, np.multiply(ap_cast, -c))
        delta = g_plus + g_minus - old_total
        self.col_g_sum += np.bincount(cols, weights=delta, minlength=n1)
        self.row_g_sum += np.bincount(rows if all_w else rows[in_w], weights=delta if all_w else delta[in_w],
                                      minlength=self.n_out)
        return ap


@dataclass
class _WriteOutcome:
    """What write-and-verify of some pairs of one crossbar did: failures, pulses, energy."""

    failed: np.ndarray  # flat pair indices reported failed
    pulses: int  # write pulses (each with its verify read)
    switches: int  # junction switches asked for
    junction_failures: int  # junctions that did not switch within the attempt limit
    most_attempts: int  # pulses of the pair that took the most
    e_write_j: float
    e_verify_j: float

    @staticmethod
    def nothing() -> "_WriteOutcome":
        return _WriteOutcome(np.zeros(0, np.int64), 0, 0, 0, 0, 0.0, 0.0)


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
        fab_seq, op_seq = np.random.SeedSequence(self.seed).spawn(2)
        fab_rng = np.random.default_rng(fab_seq)
        self._rng = np.random.default_rng(op_seq)
        self._xbars = [
            self._fabricate(self.sizes[k + 1], self.sizes[k], self.w_max[k], fab_rng) for k in range(self.n_crossbars)
        ]
        self._names = {name: int(name[1:]) for name in weight_names(self.n_crossbars)}
        self._drive_cache: tuple[np.ndarray, np.ndarray] | None = None  # (x, W₀x + b₀) of the last relax

    # ------------------------------------------------------------------ fabrication
    def _fabricate(self, n_out: int, n_in: int, w_max: float, rng: np.random.Generator) -> _Crossbar:
        c = self.config
        shape = (2, n_out, n_in + 1)
        r_p = c.r_p_ohm * np.maximum(1.0 + c.r_p_dtod * rng.standard_normal(shape), 0.1)
        tmr0 = c.tmr0 * np.maximum(1.0 + c.tmr_dtod * rng.standard_normal(shape), 0.0)
        g_p = 1.0 / r_p
        g_ap = mtj.g_ap_s(g_p, tmr0, c.v_read_v, c.v_h_v)
        stuck = np.full(shape, FREE, dtype=np.int8)
        if c.stuck_fraction > 0:
            is_stuck = rng.random(shape) < c.stuck_fraction
            stuck[is_stuck] = np.where(rng.random(int(is_stuck.sum())) < 0.5, STUCK_P, STUCK_AP)
        stuck_value = np.where(stuck == STUCK_P, g_p, g_ap)
        floor = np.where(stuck == FREE, g_ap, stuck_value)
        ceil = np.where(stuck == FREE, g_p, stuck_value)
        g_range = self._calibrated_range_s(g_p, g_ap, stuck)
        xb = _Crossbar(
            n_out=n_out,
            n_in=n_in,
            w_max=w_max,
            g_unit_s=g_range / w_max,
            g_range_s=g_range,
            g_p=g_p,
            g_ap=g_ap,
            floor=floor,
            ceil=ceil,
            g=floor.copy(),  # fresh chip: every cell in its reset state
            target=np.full((n_out, n_in + 1), np.nan),
            w=np.empty(0),
            b=np.empty(0),
            w_ap=None,
            col_g_sum=np.empty(0),
            row_g_sum=np.empty(0),
            read=np.empty(0),
            split=mtj.ap_bias_split(c.v_read_v, c.tmr0, c.v_h_v) if c.bias_nonlinearity else None,
        )
        xb.refresh(self.dtype, c.bias_nonlinearity)
        return xb

    def _calibrated_range_s(self, g_p: np.ndarray, g_ap: np.ndarray, stuck: np.ndarray) -> float:
        """Conductance difference [S] worth ``w_max``: what all but 0.1 % of the free pairs can reach.

        A pair reaches ``+w_max`` if ``G_P⁺ − G_AP⁻ ≥ w_max·G_unit`` (and symmetrically for
        ``−w_max``). Taking the nominal cell's range instead would leave the top levels out of
        reach of about half the pairs under the device-to-device spread; a calibration at
        fabrication picks the range the chip can actually deliver (the nominal one when there is
        no spread).
        """
        c = self.config
        nominal = 1.0 / c.r_p_ohm - float(mtj.g_ap_s(1.0 / c.r_p_ohm, c.tmr0, c.v_read_v, c.v_h_v))
        free = (stuck[0] == FREE) & (stuck[1] == FREE)
        reach = np.minimum(g_p[0] - g_ap[1], g_p[1] - g_ap[0])[free]
        if reach.size == 0 or (c.r_p_dtod == 0 and c.tmr_dtod == 0):
            return nominal
        return float(min(nominal, np.quantile(reach, 0.001)))

    # ------------------------------------------------------------------ reads
    def _rational(self, v: np.ndarray) -> np.ndarray | None:
        """``g(v)`` of the bias nonlinearity (:func:`mtj.ap_bias_split`); None when it is off.

        Computed once per state and update, shared by the reads that state drives.
        """
        split = self._xbars[0].split
        return None if split is None else mtj.ap_bias_rational(v, split[2], split[3])

    def _read_forward(self, k: int, v: np.ndarray, g: np.ndarray | None = None,
                      out: np.ndarray | None = None) -> np.ndarray:
        """Column-to-row read of crossbar ``k``: ``W_k v + b_k`` (+ bias nonlinearity).

        With the nonlinearity, ``(W + L·B) v − C·B g(v) + b`` (:func:`mtj.ap_bias_split`): the
        same current as ``W v + B[v∘(s(v) − 1)] + b``, three fewer passes over ``v``.
        ``g``: ``g(v)`` if the caller has it already; ``out``: where to write the result.
        """
        xb = self._xbars[k]
        h = np.matmul(v, xb.read[0].T, out=out)
        if xb.split is not None:
            h += (self._rational(v) if g is None else g) @ xb.read[1].T
        h += xb.b
        return h

    def _read_transposed(self, k: int, v: np.ndarray, g: np.ndarray | None = None,
                         out: np.ndarray | None = None) -> np.ndarray:
        """Row-to-column read of crossbar ``k``: ``W_kᵀ v`` (+ bias nonlinearity, one product of
        ``[v, g(v)]`` with the stacked read matrices)."""
        xb = self._xbars[k]
        if xb.split is None:
            return np.matmul(v, xb.read[0], out=out)
        g = self._rational(v) if g is None else g
        return np.matmul(np.concatenate([v, g], axis=1), xb.read.reshape(2 * xb.n_out, xb.n_in), out=out)

    def _read_energy_j(self, k: int, v: np.ndarray, transposed: bool) -> float:
        """``Σ V²·G·t_read`` of one read of crossbar ``k`` for every sample of ``v``."""
        c, xb = self.config, self._xbars[k]
        v2 = np.square(v, dtype=np.float64)
        if transposed:
            power = float(v2.sum(axis=0) @ xb.row_g_sum)
        else:
            power = float(v2.sum(axis=0) @ xb.col_g_sum[: xb.n_in] + v.shape[0] * xb.col_g_sum[xb.n_in])
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
        noise = standard_normal(self._rng, s.shape, self.dtype)
        noise *= std
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
        """
        c = self.config
        x = np.asarray(x, dtype=self.dtype)
        batch = x.shape[0]
        n = self.n_crossbars
        if init is None:
            states = [np.zeros((batch, self.sizes[k + 1]), dtype=self.dtype) for k in range(n)]
        else:
            states = [np.array(s, dtype=self.dtype) for s in init]
        y = None if target is None else np.asarray(target, dtype=self.dtype)
        drive = self._input_drive(x)
        e_input = self._read_energy_j(0, x, transposed=False)  # one read of crossbar 0, per update
        terms = {"read": 0.0, "neuron": 0.0}
        phases = []
        free = states
        for j, (b, t) in enumerate([(beta, steps), *nudges]):
            settled, e_read, e_neuron, residual = self._settle(drive, free, y, float(b), int(t))
            terms["read"] += t * e_input + e_read
            terms["neuron"] += e_neuron
            phases.append((settled, {"beta": b, "steps": t, "residual": residual}))
            if j == 0:
                free = settled
        keep = range(n) if layers is None else layers
        measured = [self._measure(free[k]) for k in keep]
        nudged = [[self._measure(s) for s in settled] for settled, _ in phases[1:]]
        updates = steps + sum(int(t) for _, t in nudges)
        device_time = batch * updates * (c.t_read_s + c.t_neuron_s)
        first = phases[0][1]
        extra: dict[str, Any] = {"steps": steps, "residual": first["residual"], "beta": beta}
        if nudges:
            extra["nudges"] = [info for _, info in phases[1:]]
        report = self._report(device_time, batch * len(phases), terms, **extra)
        return measured, nudged, report

    def _layer_buffer(self, batch: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """One contiguous array holding every neuron layer's ``(batch, n_k)`` block, and the blocks
        (views): element-wise work on all layers is one NumPy call instead of one per layer."""
        flat = np.empty(batch * sum(self.sizes[1:]), dtype=self.dtype)
        return flat, self._blocks_of(flat, batch)

    def _settle(self, drive: np.ndarray, states: list[np.ndarray], y: np.ndarray | None, beta: float,
                steps: int) -> tuple[list[np.ndarray], float, float, float]:
        """``steps`` synchronous updates from ``states`` (left untouched): the true settled states,
        the read energy [J] of the reads driven by neuron layers, the neuron energy [J] and the
        residual ``max |s(t) − s(t−1)|`` of the last update. The drive ``W₀x + b₀`` is given.

        All layers live in one buffer (:meth:`_layer_buffer`), double-buffered between updates:
        the bias nonlinearity's ``g``, the neuron energy, the activation and the squared states
        are one call each per update over every layer; the reads write into their layer's block.
        """
        c = self.config
        rate = c.relax_rate
        n = self.n_crossbars
        batch = drive.shape[0]
        split = self._xbars[0].split
        cur, cur_s = self._layer_buffer(batch)
        new, new_s = self._layer_buffer(batch)
        for block, s in zip(cur_s, states):
            block[...] = s
        scratch = np.empty_like(cur)
        g, g_s = self._layer_buffer(batch) if n > 1 and split is not None else (None, [None] * n)
        # Σ over updates of every squared state: the read energy of the crossbars a layer drives
        # (forward into k+1, transposed into k) is linear in its column sums
        squares = np.zeros_like(cur) if n > 1 else None
        nudge = np.empty_like(cur_s[-1]) if beta != 0.0 else None
        e_neuron = 0.0
        residual = 0.0
        for t in range(steps):
            if g is not None:
                mtj.ap_bias_rational(cur, split[2], split[3], out=g)
            if squares is not None:
                np.multiply(cur, cur, out=scratch)
                squares += scratch
            for k in range(n):  # neuron layer k+1, fed by crossbar k (and k+1 transposed)
                h = new_s[k]
                if k + 1 < n:
                    self._read_transposed(k + 1, cur_s[k + 1], g_s[k + 1], out=h)
                    if k == 0:
                        h += drive
                    else:
                        h += self._read_forward(k, cur_s[k - 1], g_s[k - 1])
                elif k == 0:
                    np.copyto(h, drive)
                else:
                    self._read_forward(k, cur_s[k - 1], g_s[k - 1], out=h)
                if nudge is not None and k + 1 == n:
                    np.subtract(y, cur_s[k], out=nudge)
                    nudge *= beta
                    h += nudge
            e_neuron += self._neuron_energy_j(new, scratch)
            self._activate(new, out=new)
            if rate != 1.0:
                new -= cur
                new *= rate
                new += cur
            if t == steps - 1:
                np.subtract(new, cur, out=scratch)
                residual = float(np.max(np.abs(scratch, out=scratch)))
            cur, new, cur_s, new_s = new, cur, new_s, cur_s
        power = 0.0  # Σ (V/V_read)²·G [S] of the reads fed by neuron layers, over samples and updates
        if squares is not None:
            sums = [block.sum(axis=0, dtype=np.float64) for block in self._blocks_of(squares, batch)]
            for k in range(n - 1):  # layer k+1 drives crossbar k+1 forward (columns) …
                xb = self._xbars[k + 1]
                power += float(sums[k] @ xb.col_g_sum[: xb.n_in]) + steps * batch * float(xb.col_g_sum[xb.n_in])
            for k in range(1, n):  # … and crossbar k transposed (rows)
                power += float(sums[k] @ self._xbars[k].row_g_sum)
        return cur_s, power * c.v_read_v**2 * c.t_read_s, e_neuron, residual

    def _blocks_of(self, flat: np.ndarray, batch: int) -> list[np.ndarray]:
        """The layer blocks of a buffer laid out as :meth:`_layer_buffer`'s."""
        blocks, offset = [], 0
        for width in self.sizes[1:]:
            blocks.append(flat[offset:offset + batch * width].reshape(batch, width))
            offset += batch * width
        return blocks

    def _input_drive(self, x: np.ndarray) -> np.ndarray:
        """``W₀x + b₀`` (with the bias nonlinearity) of this input, reused while ``x`` and crossbar 0 stay the same.

        The comparison costs one pass over ``x``; the product it saves is the largest of a phase.
        """
        cached = self._drive_cache
        if cached is not None and cached[0].shape == x.shape and np.array_equal(cached[0], x):
            return cached[1]
        drive = self._read_forward(0, x)
        self._drive_cache = (x.copy(), drive)
        return drive

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
        for k, xb in enumerate(self._xbars):
            out[f"W{k}"] = xb.w
            out[f"b{k}"] = xb.b
        return {name: out[name].copy() for name in (out if names is None else names)}

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
                moved = current + np.floor(delta / step + self._rng.random(delta.shape)) * step
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
        writes = []
        for name, (index, value) in cells.items():
            k = self.layer_of(name)
            xb = self._xbars[k]
            index = np.asarray(index, dtype=np.int64)
            pair = index + index // xb.n_in if name[0] == "W" else index * (xb.n_in + 1) + xb.n_in
            q = self.quantize(k, value)
            keep = ~(q == xb.target.reshape(-1)[pair])  # never-written (NaN) old counts as changed
            writes.append((k, pair[keep], q[keep]))
        return self._write_all(writes, names=list(cells))

    def _changed(self, new_targets: Mapping[int, np.ndarray]) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """``(k, flat pair indices, grid targets)`` of the pairs whose target differs from the last written."""
        writes = []
        for k, full in new_targets.items():
            flat, old = full.ravel(), self._xbars[k].target.ravel()
            changed = np.flatnonzero(~np.isnan(flat) & ~(flat == old))  # never-written (NaN) old counts as changed
            writes.append((k, changed, flat[changed]))
        return writes

    def _write_all(self, writes: Sequence[tuple[int, np.ndarray, np.ndarray]], names: Sequence[str]) -> tuple[dict, dict]:
        """Write each ``(k, flat pair indices, grid targets)``; report as :meth:`program` does."""
        c = self.config
        written = failures = pulses = switches = junction_failures = 0
        e_write = e_verify = 0.0
        most_attempts = 0
        failed: dict[str, np.ndarray] = {f"{p}{k}": np.empty(0, np.int64) for k, _, _ in writes for p in "Wb"}
        for k, changed, values in writes:
            xb = self._xbars[k]
            w = self._write_cells(xb, changed, values)
            if k == 0 and changed.size:
                self._drive_cache = None  # the input drive changed with the conductances
            xb.target.reshape(-1)[changed] = values
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
        return max(self.config.levels - 1, 1)

    def _cell_levels(self, xb: _Crossbar, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Junctions in the P state of the + and − cell of pairs at weight ``w`` (NaN: reset, 0).

        With continuous levels a cell is one analog element: 1 when it carries the weight, else 0.
        """
        w = np.nan_to_num(w, nan=0.0)
        levels = self.config.levels
        if levels:
            q = np.rint(w * ((levels - 1) / xb.w_max)).astype(np.int64)
            return np.maximum(q, 0), np.maximum(-q, 0)
        return (w > 0).astype(np.int64), (w < 0).astype(np.int64)

    def _write_cells(self, xb: _Crossbar, idx: np.ndarray, w: np.ndarray) -> _WriteOutcome:
        """Write-and-verify the pairs at flat indices ``idx`` to weights ``w``.

        The pair's target conductances are those of the grid (the lower cell at its floor, the
        other ``|w|·G_unit`` above it). Each cell's junctions that must change state are switched by
        current-controlled pulses of ``t_pulse_s`` (the current the nominal junction draws at
        ``v_write_v``), each verified, with ``P_sw`` from that current
        (:func:`mtj.write_verify_attempts`); a junction that does not switch within
        ``write_attempts_max`` pulses leaves its cell one junction off and the pair failed, and so
        does a target beyond the cell's reach (spread, stuck cells). The switched junctions land with
        the cycle-to-cycle conductance error ``prog_std`` of the range on the active cell.
        """
        c = self.config
        if idx.size == 0:
            return _WriteOutcome.nothing()
        dense = idx.size == xb.target.size  # every pair rewritten (continuous levels): no gathers
        sel: slice | np.ndarray = slice(None) if dense else idx
        floor_p, floor_m = xb.floor[0].reshape(-1)[sel], xb.floor[1].reshape(-1)[sel]
        ceil_p, ceil_m = xb.ceil[0].reshape(-1)[sel], xb.ceil[1].reshape(-1)[sel]
        dg = w * xb.g_unit_s
        gt_p = np.maximum(floor_p, floor_m + dg)  # the lower cell of the pair stays at its floor
        gt_m = gt_p - dg
        fail = (gt_p > ceil_p * (1 + 1e-12)) | (gt_m > ceil_m * (1 + 1e-12))
        if c.prog_std > 0:
            err = c.prog_std * xb.g_range_s * self._rng.standard_normal(idx.size)
            plus_active = (gt_p - floor_p) >= (gt_m - floor_m)
            gt_p = gt_p + np.where(plus_active, err, 0.0)
            gt_m = gt_m + np.where(plus_active, 0.0, err)
        # --- the junction switches of write-and-verify, per cell of the pair
        n_j = self.junctions_per_cell()
        new_p, new_m = self._cell_levels(xb, w)
        old_p, old_m = self._cell_levels(xb, xb.target.reshape(-1)[sel])
        moves = np.stack([new_p - old_p, new_m - old_m])  # + : AP → P switches, − : P → AP
        g_p_cells = np.stack([xb.g_p[0].reshape(-1)[sel], xb.g_p[1].reshape(-1)[sel]])
        g_ap_cells = np.stack([xb.g_ap[0].reshape(-1)[sel], xb.g_ap[1].reshape(-1)[sel]])
        # current-controlled pulses: every junction gets the current the nominal junction draws at
        # v_write_v in the state it leaves (AP when it moves to P, moves > 0), whatever its own spread
        v_w = c.v_write_v
        i_nom = mtj.junction_current_a(v_w, np.array([mtj.P, mtj.AP]), n_j * c.r_p_ohm, c.tmr0, c.v_h_v)
        i_j = np.where(moves > 0, i_nom[1], i_nom[0])
        i_c0 = np.where(moves > 0, c.i_c0_ap2p_a, c.i_c0_p2ap_a)
        p_sw = mtj.switching_probability(c.t_pulse_s, mtj.dwell_time_s(i_j, i_c0, c.delta, c.tau0_s))
        ap_boost = float(mtj.ap_bias_factor(np.array(v_w), c.v_read_v, c.tmr0, c.v_h_v))
        r_j = n_j / np.where(moves > 0, g_ap_cells * ap_boost, g_p_cells)  # the junction's own resistance
        p_sw[np.stack([floor_p == ceil_p, floor_m == ceil_m])] = 0.0  # a stuck cell never confirms
        n_switch = np.abs(moves)
        attempts, failed_j = mtj.write_verify_attempts(n_switch.ravel(), p_sw.ravel(), c.write_attempts_max,
                                                       self._rng)
        attempts, failed_j = attempts.reshape(n_switch.shape), failed_j.reshape(n_switch.shape)
        if failed_j.any():  # each junction left behind keeps its cell one junction step short of the move
            step = (g_p_cells - g_ap_cells) / n_j
            shortfall = np.sign(moves) * failed_j * step
            gt_p = gt_p - shortfall[0]
            gt_m = gt_m - shortfall[1]
            fail |= (failed_j > 0).any(axis=0)
        g_p = np.clip(gt_p, floor_p, ceil_p)
        g_m = np.clip(gt_m, floor_m, ceil_m)
        if dense:
            xb.g[0].reshape(-1)[:] = g_p
            xb.g[1].reshape(-1)[:] = g_m
            xb.refresh(self.dtype, c.bias_nonlinearity)
        elif idx.size > DENSE_WRITE_FRACTION * xb.target.size:
            xb.g[0].reshape(-1).put(idx, g_p)
            xb.g[1].reshape(-1).put(idx, g_m)
            xb.refresh(self.dtype, c.bias_nonlinearity)
        else:
            xb.set_cells(idx, g_p, g_m)
        pair_attempts = attempts.sum(axis=0)
        # V·I·t_pulse = I²·R_j·t_pulse per pulse on the junction being switched; a verify read of its
        # cell after each
        write = c.t_pulse_s * float(np.sum(attempts * i_j**2 * r_j))
        verify = c.v_read_v**2 * c.t_read_s * float(attempts[0] @ g_p + attempts[1] @ g_m)
        return _WriteOutcome(
            failed=idx[fail],
            pulses=int(pair_attempts.sum()),
            switches=int(n_switch.sum()),
            junction_failures=int(failed_j.sum()),
            most_attempts=int(pair_attempts.max()),
            e_write_j=write,
            e_verify_j=verify,
        )

    # ------------------------------------------------------------------ non-volatile state
    def export_state(self) -> dict[str, np.ndarray]:
        """The programmed (non-volatile) state: per crossbar ``k`` the cell conductances
        ``x{k}.g`` [S], shape ``(2, n_out, n_in+1)``, and the grid targets ``x{k}.target``
        (NaN: never written). Everything else is fabrication (drawn from the seed) or derived.
        The arrays are the model's own (no copy): read them before the next write.
        """
        out: dict[str, np.ndarray] = {}
        for k, xb in enumerate(self._xbars):
            out[f"x{k}.g"] = xb.g
            out[f"x{k}.target"] = xb.target
        return out

    def restore_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Put back a state from :meth:`export_state` of the same chip (same sizes, config, seed).

        The derived read matrices are recomputed from the conductances with the same arithmetic
        as a write, so the restored weights equal the exported ones bit for bit.
        """
        expected = set(self.export_state())
        if set(state) != expected:
            raise ValueError(f"state must hold exactly {sorted(expected)}, got {sorted(state)}")
        for k, xb in enumerate(self._xbars):
            g, target = np.asarray(state[f"x{k}.g"]), np.asarray(state[f"x{k}.target"])
            if g.shape != xb.g.shape or target.shape != xb.target.shape:
                raise ValueError(f"crossbar {k}: state shapes {g.shape}, {target.shape} do not fit "
                                 f"{xb.g.shape}, {xb.target.shape}")
            if not np.all(np.isfinite(g)) or np.any(g < xb.floor * (1 - 1e-9)) or np.any(g > xb.ceil * (1 + 1e-9)):
                raise ValueError(f"crossbar {k}: conductances outside the cells' reachable range")
        for k, xb in enumerate(self._xbars):
            xb.g = np.array(state[f"x{k}.g"], dtype=np.float64)
            xb.target = np.array(state[f"x{k}.target"], dtype=np.float64)
            xb.refresh(self.dtype, self.config.bias_nonlinearity)
        self._drive_cache = None  # the input drive belongs to the conductances just replaced

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
