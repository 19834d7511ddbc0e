"""Declared limits, enforced by the server for every driver alike (DESIGN.md §2).

A driver declares ``{field: {min, max, step, unit, policy}}`` in ``describe()['limits']`` (format:
:mod:`device_server.drivers.declaration`). Before the driver is called, each named input is
checked: beyond the limit it is refused with a 422 that names the field, the value and the limit
(``policy = "reject"``), or clipped and counted in the report (``policy = "clip"``); a change
larger than the declared ``step`` is refused. Nothing beyond a safe-operating limit reaches the
hardware.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from device_server.errors import InvalidInput


def enforce(limits: dict[str, dict[str, Any]], name: str, value: Any, field: str | None = None,
            clipped: dict[str, int] | None = None) -> Any:
    """Check ``value`` (number or array) against the limit declared for ``name``; return it (clipped)."""
    spec = limits.get(name)
    if spec is None or value is None:
        return value
    lo, hi = spec.get("min"), spec.get("max")
    kind = type(value)
    if (kind is float or kind is int) and -2**53 <= value <= 2**53:
        # a plain number within the limits (half of a step's checks: β, step counts, batch): compared as
        # below, without building a 0-d array and two reductions. A float compares as NumPy's float64
        # does; an integer is exact as a float in this range, where NumPy compares it as one too.
        if (lo is None or value >= float(lo)) and (hi is None or value <= float(hi)):
            return value
    field = field or name
    arr = np.asarray(value)
    if arr.size == 0:
        return value
    # compare in the value's own precision: float32(1/7) > 1/7, yet it is the float32 clip at 1/7
    cast = arr.dtype.type if arr.dtype.kind == "f" else float
    low_bad = lo is not None and arr.min() < cast(lo)
    high_bad = hi is not None and arr.max() > cast(hi)
    if not (low_bad or high_bad):
        return value
    if spec.get("policy", "reject") == "clip":
        out = np.clip(arr, cast(lo), cast(hi))
        if clipped is not None:
            clipped[field] = int(np.count_nonzero(out != arr))
        return out if isinstance(value, np.ndarray) else out.item()
    worst = float(arr.min()) if low_bad else float(arr.max())
    unit = spec.get("unit", "")
    # a count is shown whole (1000001, not 1e+06), and a limit on a derived quantity says which
    shown = str(int(worst)) if worst.is_integer() and abs(worst) < 1e15 else f"{worst:.6g}"
    what = "value" if field == name else spec.get("label", name)
    raise InvalidInput(
        f"{field}: {what} {shown} is beyond the device's limit [{lo}, {hi}] {unit}".rstrip(),
        field=field,
    )


def enforce_step(limits: dict[str, dict[str, Any]], name: str, delta: Any, field: str) -> Any:
    """Refuse a change larger than the declared ``step`` of ``name`` (the largest single change)."""
    step = (limits.get(name) or {}).get("step")
    arr = np.asarray(delta)
    if step is None or arr.size == 0:
        return delta
    worst = float(np.abs(arr).max())
    cast = arr.dtype.type if arr.dtype.kind == "f" else float
    if worst > cast(step):
        unit = limits[name].get("unit", "")
        raise InvalidInput(f"{field}: a change of {worst:.6g} exceeds the device's step {step:.6g} {unit}".rstrip(),
                           field=field)
    return delta


def decode_cells(decl: dict[str, Any], name: str, index: Any, mask: Any, value: Any, level: Any,
                 field: str) -> tuple[np.ndarray, np.ndarray]:
    """``(flat indices, target values)`` of a single-cell write given by index or packed mask, and by
    value or grid level (level × the resolution the device declares for ``name``).

    The compact forms exist for the wire: a training step rewrites a sixth of a large array, and
    a bit per cell plus a byte per level is a fifth of an int32 index and a float32 value.
    """
    if mask is not None:
        size = int(np.prod(decl["topology"]["shapes"][name]))
        if mask.size != (size + 7) // 8:
            raise InvalidInput(f"{field}.mask: {mask.size} bytes, expected {(size + 7) // 8} for {size} cells",
                               field=f"{field}.mask")
        bits = np.unpackbits(mask).view(bool)
        if bits[size:].any():
            raise InvalidInput(f"{field}.mask: bits set beyond the array's {size} cells", field=f"{field}.mask")
        index = np.flatnonzero(bits[:size])
    if level is not None:
        resolution = float((((decl.get("noise") or {}).get("program") or {}).get("resolution") or {}).get(name) or 0.0)
        if not resolution > 0:
            raise InvalidInput(f"{field}.level: the device declares no grid for {name}; send 'value'",
                               field=f"{field}.level")
        value = level * resolution
    return index, value
