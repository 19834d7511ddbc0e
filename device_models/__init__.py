"""Pure physics of spintronic devices (numpy/scipy only; no I/O, no HTTP).

Modules: :mod:`stno` (oscillator neurons), :mod:`mtj` (tunnel junctions), :mod:`crossbar`
(the MTJ crossbar network chip), :mod:`config` (declared settings), :mod:`presets`.
"""

__all__ = ["config", "crossbar", "mtj", "presets", "stno"]
