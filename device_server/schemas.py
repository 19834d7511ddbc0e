"""Request and response bodies of the HTTP API, the same in JSON and in MessagePack.

Arrays are validated once here, at the edge: a numeric (integer or floating) dtype, finite
values, real nested lists (not ragged). Shapes are the driver's business (it knows its
topology); declared limits are enforced by :mod:`device_server.validation`.
In the OpenAPI document every array is ``ArrayJSON`` (nested lists) in JSON bodies and
``ArrayMsgpack`` (``{dtype, shape, data}``) in MessagePack bodies.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

ARRAY_JSON_REF = "#/components/schemas/ArrayJSON"
ARRAY_MSGPACK_REF = "#/components/schemas/ArrayMsgpack"

ARRAY_JSON_SCHEMA = {
    "title": "ArrayJSON",
    "description": "An n-dimensional array as nested lists of numbers (row-major).",
    "oneOf": [{"type": "number"}, {"type": "array", "items": {"$ref": ARRAY_JSON_REF}}],
}
ARRAY_MSGPACK_SCHEMA = {
    "title": "ArrayMsgpack",
    "description": "An n-dimensional array in MessagePack: dtype (NumPy type string such as '<f4'), "
    "shape, and the raw C-order bytes as a bin object.",
    "type": "object",
    "required": ["dtype", "shape", "data"],
    "properties": {
        "dtype": {"type": "string", "examples": ["<f4", "<f8"]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"type": "string", "format": "binary"},
    },
    "additionalProperties": False,
}


def to_array(value: Any) -> np.ndarray:
    """Accept an array from either codec; refuse what no device should see."""
    if isinstance(value, np.ndarray):
        a = value
        if a.dtype.kind != "f" or a.dtype.itemsize not in (4, 8):
            raise ValueError(f"dtype {a.dtype} is not accepted; send float32 or float64 arrays")
    elif isinstance(value, (list, int, float)) and not isinstance(value, bool):
        try:
            a = np.asarray(value)  # JSON numbers become int64/float64; strings, bools, nulls do not
        except (ValueError, TypeError, OverflowError):
            raise ValueError("expected nested lists of numbers of equal length (a rectangular array)") from None
        if a.dtype.kind not in "iuf":
            raise ValueError("expected nested lists of numbers only (no strings, booleans, nulls or huge integers)")
    else:
        raise ValueError(f"expected an array, got {type(value).__name__}")
    if a.dtype.kind not in "iuf":
        raise ValueError(f"dtype {a.dtype} is not accepted; send float32 or float64 numbers")
    if a.dtype.kind in "iu":
        a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError("contains NaN or Inf")
    return a


def _integers(value: Any, what: str) -> np.ndarray:
    """A 1-D integer array from either codec (a binary array of an integer dtype, or a JSON list)."""
    if isinstance(value, np.ndarray):
        a = value
    elif isinstance(value, list):
        try:
            a = np.asarray(value)
        except (ValueError, TypeError, OverflowError):
            raise ValueError(f"expected {what}: a list of integers") from None
        if a.size == 0:
            a = a.astype(np.int64)
    else:
        raise ValueError(f"expected {what}, got {type(value).__name__}")
    if a.dtype.kind not in "iu" or a.ndim != 1:
        raise ValueError(f"expected {what}: a 1-D array of integers, got dtype {a.dtype} and {a.ndim} dimension(s)")
    if a.dtype.kind == "u" and a.dtype.itemsize == 8 and a.size and int(a.max()) > np.iinfo(np.int64).max:
        # would wrap to a negative (or another valid) number when cast to int64: refuse, never reinterpret
        raise ValueError(f"expected {what}: {int(a.max())} is beyond the 64-bit signed integer range")
    return a


def to_index(value: Any) -> np.ndarray:
    """Accept a 1-D array of non-negative integer indices."""
    a = _integers(value, "flat indices")
    if a.size and int(a.min()) < 0:
        raise ValueError("indices must be non-negative")
    return a.astype(np.int64, copy=False)


def to_mask(value: Any) -> np.ndarray:
    """Accept a bit mask packed eight cells to a byte (``numpy.packbits``, big-endian bit order)."""
    a = _integers(value, "a packed bit mask")
    if a.dtype != np.uint8 and a.size and (int(a.min()) < 0 or int(a.max()) > 255):
        raise ValueError("a packed bit mask holds bytes (0..255)")
    return a.astype(np.uint8, copy=False)


def to_level(value: Any) -> np.ndarray:
    """Accept grid levels: integers of any width (level × the declared resolution is the target,
    computed in float64; int8 on the wire stays int8 here, no widened copy)."""
    return _integers(value, "grid levels")


#: Placeholder in generated schemas, replaced by a reference to ArrayJSON or ArrayMsgpack.
ARRAY_MARKER = {"x-spinhil-array": True}

Array = Annotated[np.ndarray, PlainValidator(to_array), WithJsonSchema(ARRAY_MARKER)]
IndexArray = Annotated[np.ndarray, PlainValidator(to_index), WithJsonSchema(ARRAY_MARKER)]
MaskArray = Annotated[np.ndarray, PlainValidator(to_mask), WithJsonSchema(ARRAY_MARKER)]
LevelArray = Annotated[np.ndarray, PlainValidator(to_level), WithJsonSchema(ARRAY_MARKER)]


class _Body(BaseModel):
    # strict: "5", true or 1.5 are not a step count, "0.5" is not a β
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, arbitrary_types_allowed=True, strict=True)


class ForwardRequest(_Body):
    """One feed-forward measurement."""

    x: Array = Field(description="inputs (batch, n_in of the first layer applied), in units of the read bias")
    layers: list[int] | None = Field(
        None, max_length=64, description="crossbars to apply, consecutive (e.g. [1] for one layer); all when omitted"
    )


class Nudge(_Body):
    """A nudged phase run after a relax phase, from the state it settled in."""

    beta: float = Field(description="nudging strength of this phase")
    steps: int = Field(ge=1, le=2**31, description="synchronous updates of this phase")


class Cells(_Body):
    """Single cells of a weight array: which (``index`` or ``mask``) and their targets (``value`` or ``level``)."""

    index: IndexArray | None = Field(None, description="flat indices into the array (row-major), strictly increasing")
    mask: MaskArray | None = Field(None, description="instead of index: one bit per cell of the array (row-major), "
                                   "packed eight to a byte, most significant bit first (numpy.packbits); 1 = written")
    value: Array | None = Field(None, description="target weights of those cells, in order")
    level: LevelArray | None = Field(None, description="instead of value: grid levels (integers, int8 on the wire for "
                                     "a few dozen levels); target = level × the array's declared resolution "
                                     "(describe: noise.program.resolution)")

    @model_validator(mode="after")
    def _one_of_each(self) -> "Cells":
        if (self.index is None) == (self.mask is None):
            raise ValueError("give the cells by 'index' or by 'mask', not both or neither")
        if (self.value is None) == (self.level is None):
            raise ValueError("give the targets as 'value' or as 'level', not both or neither")
        return self


class ProgramRequest(_Body):
    """Absolute write of weight arrays by name (W0, b0, W1, …)."""

    weights: dict[str, Array] | None = Field(None, max_length=128, description="target weights by array name")
    cells: dict[str, Cells] | None = Field(None, max_length=128, description="instead of whole arrays: single "
                                           "cells by array name; the others keep their targets")
    return_achieved: bool = Field(True, description="answer the achieved weights (false: report only)")

    @model_validator(mode="after")
    def _one_form(self) -> "ProgramRequest":
        if (self.weights is None) == (self.cells is None):
            raise ValueError("give either 'weights' (whole arrays) or 'cells' (single cells), not both or neither")
        return self


class RelaxRequest(_Body):
    """One phase of Equilibrium Propagation: let the network settle and measure every layer."""

    x: Array = Field(description="inputs (batch, n_0), in units of the read bias")
    beta: float = Field(0.0, description="nudging strength (0: free phase)")
    target: Array | None = Field(None, description="output target (batch, n_N); required when beta != 0")
    steps: int = Field(20, ge=1, le=2**31, description="synchronous updates to run (the device declares its limit)")
    init: list[Array] | None = Field(None, max_length=64,
                                     description="initial state, one (batch, n_k) array per neuron layer")
    nudges: list[Nudge] | None = Field(None, max_length=8, description="nudged phases to run after this one, "
                                       "each from the state it settled in (kept on the device); their states "
                                       "come back in 'nudged'")
    layers: list[int] | None = Field(None, max_length=64, description="neuron layers of this phase to measure and "
                                     "return (indices into init's list, ascending); all when omitted")
    program: ProgramRequest | None = Field(None, description="a write (as PUT weights) applied before the phases, "
                                           "in the same transaction; its report under report.program")


class UpdateRequest(_Body):
    """Incremental write: change weight arrays by the given deltas."""

    deltas: dict[str, Array] = Field(max_length=128, description="weight changes by array name")
    return_achieved: bool = Field(True, description="answer the achieved weights (false: report only)")


class DriveRecord(_Body):
    """What ``drive`` records: which oscillators, how often, from when, which quantities."""

    oscillators: list[int] | None = Field(None, max_length=4096,
                                          description="indices of the oscillators to record (all when omitted)")
    every: int = Field(1, ge=1, le=2**31, description="steps between two samples")
    start: int = Field(0, ge=0, le=2**31, description="first step recorded (skip a transient)")
    quantities: list[Literal["power", "amplitude", "phase", "spectrum"]] = Field(
        ["power"], min_length=1, max_length=4,
        description="power [W], amplitude |c|, phase [rad] (against the nominal f0), spectrum [W/Hz] with frequency_hz")


class DriveRequest(_Body):
    """Apply input sequences to an oscillator array and record output traces."""

    u: Array = Field(description="input currents (batch, steps, inputs), in units of the threshold current I_th")
    dt: float = Field(description="[s] duration of one step (one input sample)")
    record: DriveRecord = Field(default_factory=DriveRecord, description="what to record (default: every "
                                "oscillator's power at every step)")


class ProbeRequest(_Body):
    """A measurement of one of the chip's test structures (``GET /v1/devices/{id}`` → ``structures``)."""

    structure: str = Field(max_length=64, description="test structure to measure (e.g. 'junction', 'resonator')")
    inputs: dict[str, Array] = Field(max_length=32, description="the structure's inputs by name, in their units")


class LeaseRequest(_Body):
    holder: str = Field("anonymous", max_length=200,
                        description="who holds the lease (shown to others); the key's name when omitted")
    ttl_s: float | None = Field(None, gt=0, description="[s] time to live; the server default when omitted")
    queue: bool = Field(False, description="wait in the device's FIFO queue when it is held (202 and a ticket) "
                        "instead of a 409")


class BreakRequest(_Body):
    reason: str = Field(min_length=1, max_length=2000, description="why the lease is broken (recorded in the audit)")


class KeyRequest(_Body):
    name: str = Field(min_length=1, max_length=200, description="whose key (a person or a robot)")
    role: str = Field("user", pattern="^(observer|user|admin)$", description="observer, user or admin")
    expires_in_days: float | None = Field(None, gt=0, description="[days] until the key stops working; never when omitted")
    quota_device_s: float | None = Field(None, ge=0, description="[s] device-seconds the key may hold devices; "
                                         "unlimited when omitted")


class KeepaliveRequest(_Body):
    ttl_s: float | None = Field(None, gt=0, description="[s] new time to live; unchanged when omitted")


# ----------------------------------------------------------------------------- responses (docs)
class Report(BaseModel):
    """Provenance and cost of an operation (DESIGN.md §2)."""

    model_config = ConfigDict(extra="allow")

    operation: str
    device_id: str
    driver: str
    model_version: str
    seed: int | None
    lease_id: str
    fencing: int
    request_id: str
    device_time_s: float = Field(description="[s] time on the chip itself")
    instrument_time_s: float = Field(description="[s] time on the bench")
    energy_j: float = Field(description="[J] energy of the operation, sum of energy_terms_j")
    energy_terms_j: dict[str, float]
    wall_time_s: float = Field(description="[s] server wall time of the operation")


class ForwardResponse(BaseModel):
    outputs: list[Array]
    layers: list[int]
    report: Report


class RelaxResponse(BaseModel):
    states: list[Array]
    nudged: list[list[Array]] | None = None
    report: Report


class DriveResponse(BaseModel):
    traces: dict[str, Array]
    report: Report


class WriteResponse(BaseModel):
    achieved: dict[str, Array]
    report: Report


class ProbeResponse(BaseModel):
    outputs: dict[str, Array]
    report: Report


class WeightsResponse(BaseModel):
    weights: dict[str, Array]
    report: Report
