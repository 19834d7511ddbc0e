"""What a driver must declare, and the check that it did (DESIGN.md §2).

The Driver contract fixes, for each operation, the inputs it takes; a driver that lists the
operation in ``capabilities`` must declare a limit for every one of them in
``describe()["limits"]`` — in the style of QCoDeS parameters: a label, a unit, ``min``/``max``,
a ``step`` (the largest single change one call may make) and a ``policy`` saying whether the
server rejects (422) or clips a value beyond the limit. The server enforces the declaration for
every driver alike, so a limit that is not declared is a limit nobody enforces: such a driver is
refused when the lab is loaded, with a message naming the missing declaration.

Operation inputs, by contract::

    forward       x, batch                       (x: (batch, sizes[layer]))
    relax         x, beta, target, steps, init, batch
    program       one limit per weight array name (its values)
    update        one limit per weight array name, with ``step`` (the largest |delta|)
    read_weights  —
    drive         u, dt, steps, batch, every, start, oscillators
                                                 (u: (batch, steps, inputs); every, start,
                                                 oscillators: what to record)
    probe         one limit per input of each test structure, named ``{structure}.{input}``

``batch`` is the number of rows of ``x`` one call may carry. Every operation's report holds
:data:`REPORT_FIELDS` (seconds and joules, finite, not negative); the server adds the rest of
the provenance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

#: Operations of the contract: the Driver method that implements each, and its declared inputs.
OPERATION_INPUTS: dict[str, tuple[str, ...]] = {
    "describe": (),
    "forward": ("x", "batch"),
    "relax": ("x", "beta", "target", "steps", "init", "batch"),
    "program": (),  # + one limit per weight array (topology.weights)
    "update": (),  # + one limit per weight array, with a step
    "read_weights": (),
    "drive": ("u", "dt", "steps", "batch", "every", "start", "oscillators"),
    "probe": (),  # + one limit per input of each declared test structure (structures)
}
#: Operations that address the weight arrays named in ``topology.weights``.
WEIGHT_OPERATIONS = frozenset({"program", "update", "read_weights"})
#: Operations whose inputs are layer-shaped, sized by ``topology.sizes``.
LAYER_OPERATIONS = frozenset({"forward", "relax"})
#: What the driver's report must carry for every operation (the server adds ids and wall time).
REPORT_FIELDS = ("device_time_s", "instrument_time_s", "energy_j")
#: The provenance every answer carries once the server has added its part (DESIGN.md §2).
PROVENANCE_FIELDS = (
    "device_id", "driver", "model_version", "seed", "lease_id",
    "device_time_s", "instrument_time_s", "energy_j", "wall_time_s",
)


class LimitSpec(BaseModel):
    """One declared input: what it is, in which unit, within which limits, and what happens beyond."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = None
    unit: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    policy: Literal["reject", "clip"] = "reject"
    doc: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> LimitSpec:
        if not self.unit.strip():
            raise ValueError("unit must name the unit ('1' for a pure number)")
        for name in ("min", "max", "step"):
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"{name} must be finite, got {v}")
        if self.min is None and self.max is None:
            raise ValueError("declare min, max or both: a limit without bounds enforces nothing")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0, got {self.step}")
        if self.policy == "clip" and (self.min is None or self.max is None):
            raise ValueError("policy 'clip' needs both min and max")
        return self


def required_inputs(capabilities: Iterable[str], weights: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Per declared operation, the names whose limits must be declared."""
    weights = tuple(weights)
    out: dict[str, tuple[str, ...]] = {}
    for op in capabilities:
        names = OPERATION_INPUTS.get(op, ())
        if op in ("program", "update"):
            names = names + weights
        out[op] = names
    return out


def declaration_problems(declaration: Mapping[str, Any], implemented: Iterable[str]) -> list[str]:
    """Everything wrong with a driver's ``describe()``, as messages naming the field; [] if none.

    ``implemented`` are the operations whose Driver methods the class overrides: a capability
    declared but not implemented is as wrong as a limit not declared.
    """
    problems: list[str] = []
    for key in ("kind", "model_version", "capabilities", "topology", "limits"):
        if key not in declaration:
            problems.append(f"describe() lacks {key!r}")
    if problems:
        return problems
    caps = list(declaration["capabilities"])
    implemented = set(implemented)
    for op in caps:
        if op not in OPERATION_INPUTS:
            problems.append(f"capabilities: {op!r} is not an operation of the contract {sorted(OPERATION_INPUTS)}")
        elif op != "describe" and op not in implemented:
            problems.append(f"capabilities: {op!r} is declared but the driver does not implement it")
    if {"program", "update"} & set(caps) and declaration.get("driver") != "real" \
            and not {"export_state", "restore_state"} <= implemented:
        problems.append("export_state/restore_state: an emulated device that can be written must export and restore "
                        "its programmed state, or an acknowledged write is lost at restart (a real chip keeps its own)")
    topology = declaration["topology"]
    weights: list[str] = []
    if WEIGHT_OPERATIONS & set(caps):
        weights = list(topology.get("weights") or [])
        shapes = topology.get("shapes") or {}
        if not weights:
            problems.append("topology.weights: weight operations are declared but no weight array is named")
        for name in weights:
            if name not in shapes:
                problems.append(f"topology.shapes: no shape declared for weight array {name!r}")
    if LAYER_OPERATIONS & set(caps) and not topology.get("sizes"):
        problems.append("topology.sizes: forward/relax are declared but the layer sizes are not")
    limits = declaration["limits"]
    if "probe" in caps:
        structures = declaration.get("structures") or {}
        if not structures:
            problems.append("structures: probe is declared but no test structure is")
        for sname, sdecl in structures.items():
            for iname in (sdecl or {}).get("inputs") or []:
                if f"{sname}.{iname}" not in limits:
                    problems.append(f"limits.{sname}.{iname}: probe of {sname!r} takes {iname!r} but no limit is declared")
    for name, spec in limits.items():
        try:
            LimitSpec.model_validate(spec)
        except ValidationError as exc:
            reasons = "; ".join(e["msg"] for e in exc.errors())
            problems.append(f"limits.{name}: {reasons}")
    for op, names in required_inputs(caps, weights).items():
        for name in names:
            if name not in limits:
                problems.append(f"limits.{name}: {op} takes {name!r} but no limit is declared for it")
            elif op == "update" and limits[name].get("step") is None:
                problems.append(f"limits.{name}.step: update takes deltas of {name!r} but no step (largest change) is declared")
    return problems


def report_problems(report: Mapping[str, Any]) -> list[str]:
    """What is missing or implausible in a driver's report: times and energy present, finite, ≥ 0."""
    problems = []
    for name in REPORT_FIELDS:
        value = report.get(name)
        if value is None:
            problems.append(f"report lacks {name!r}")
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            problems.append(f"report.{name} = {value!r} is not a finite number ≥ 0")
    return problems
