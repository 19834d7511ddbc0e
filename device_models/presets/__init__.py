"""Named presets of the crossbar network's non-idealities.

``default-v1`` is the preset accuracy targets are judged on (DESIGN.md §7): it may be made
more physical, never lowered to meet a target. ``ideal`` switches every non-ideality off and
is the reference every figure is shown beside.

Sources: R_P, TMR₀ and V_h are typical of CoFeB/MgO MTJs (e.g. Ikeda et al., Nat. Mater. 9,
721 (2010)); Q ≈ 2 and the current limit ζ ≤ 4 follow Slavin & Tiberkevich, IEEE Trans. Magn.
45, 1875 (2009). Caution: the spreads and noise levels are the project's ``default-v1``
choices, not fitted to one chip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from device_models.config import CrossbarConfig

T = TypeVar("T")

DEFAULT_V1 = CrossbarConfig()

IDEAL = CrossbarConfig(
    levels=0,
    prog_std=0.0,
    read_std=0.0,
    r_p_dtod=0.0,
    tmr_dtod=0.0,
    stuck_fraction=0.0,
    bias_nonlinearity=False,
)

PRESETS: dict[str, CrossbarConfig] = {"default-v1": DEFAULT_V1, "ideal": IDEAL}


def lookup(presets: Mapping[str, T], name: str, what: str = "preset") -> T:
    """The entry ``name`` of a preset table; ``KeyError`` names the known ones."""
    try:
        return presets[name]
    except KeyError:
        raise KeyError(f"unknown {what} {name!r}; known: {sorted(presets)}") from None


def get_preset(name: str) -> CrossbarConfig:
    """The crossbar preset called ``name``; ``KeyError`` names the known ones."""
    return lookup(PRESETS, name)
