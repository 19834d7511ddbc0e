"""Pure physics of spintronic devices (numpy/scipy only; no I/O, no HTTP).

Modules: :mod:`stno` (oscillator closed forms and neuron activation), :mod:`stno_sde` (the STNO
SDE integrator), :mod:`stno_array` (the STNO array chip), :mod:`stno_config`, :mod:`macrospin`
(LLG reference), :mod:`mtj` (tunnel junctions), :mod:`crossbar` (the MTJ crossbar network chip),
:mod:`config` (declared settings), :mod:`presets`.
"""

__all__ = ["config", "crossbar", "macrospin", "mtj", "presets", "stno", "stno_array", "stno_config", "stno_sde"]
