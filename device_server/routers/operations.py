"""Device operations: forward, relax, program, update, read_weights, drive, probe — one request per phase.

Each route prepares its driver call from the validated body and hands the rest to
:func:`run_operation`, the one place that checks the key, scope and headers, checks the lease,
decodes and validates the body, enforces the declared limits, serialises the device (an
instrument does one thing at a time: its calls run on its own thread), replays idempotent
writes, adds the provenance to the driver's report, paces the answer in ``real`` latency mode,
and queues the driver's ``idle()`` once the answer is out. docs/api.md ("How an operation is
served") says why the path is laid out this way: a training step is one such request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from device_server.audit import record_of
from device_server.auth import Principal, caller
from device_server.body import (
    INLINE_BYTES,
    after_sent,
    check_content_type,
    encoded_off_loop,
    parse,
    read_body,
    response_media,
)
from device_server.context import ServerContext
from device_server.drivers.base import ContractViolation, Driver, DriverError, OpResult, summed_report
from device_server.drivers.declaration import report_problems
from device_server.errors import CapabilityMissing, Forbidden, InvalidInput, LeaseRequired, NotFound
from device_server.leases import Lease
from device_server.openapi import body_doc, header_doc, problem_responses, response_doc
from device_server.schemas import (
    DriveRequest,
    DriveResponse,
    ForwardRequest,
    ForwardResponse,
    ProbeRequest,
    ProbeResponse,
    ProgramRequest,
    RelaxRequest,
    RelaxResponse,
    UpdateRequest,
    WeightsResponse,
    WriteResponse,
)
from device_server.validation import decode_cells, enforce, enforce_step
from trainer_client import codec



class OperationRoute(APIRoute):
    """A device operation's route: documented by FastAPI from its signature and ``openapi_extra`` as
    any route, but called with just its path's ``device_id`` and the request. The endpoint resolves
    the rest itself (:func:`run_operation`); FastAPI's request handler and dependency solver, which
    cost a training step about 0.15 ms for one path parameter, are not run."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            return await endpoint(request.path_params["device_id"], request)

        return handle


router = APIRouter(prefix="/v1/devices", tags=["operations"], route_class=OperationRoute)

#: The scopes of the routes: measuring, and writing weights.
OPERATE, PROGRAM = "operate:devices", "program:devices"
#: The headers every operation reads (documented by :func:`_op_doc`, read by :func:`_headers`).
HEADERS = (
    header_doc("X-Lease-Token", "token of the caller's current lease on the device (required)", {"type": "string"}),
    header_doc("X-Lease-Fencing", "the lease's fencing number; a stale one is refused (409)",
               {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}),
    header_doc("Idempotency-Key", "a retried key returns the first result, applied once",
               {"type": "string", "maxLength": 200}),
)
#: Operations that change the device's non-volatile state: durable before they are answered.
WRITES = frozenset({"program", "update"})
#: Operations whose changes to the non-volatile state are persisted before they are answered: the
#: writes, and ``probe`` (pulses switch a chip's test junctions; its answer is not kept for replay).
PERSISTED = WRITES | {"probe"}

#: A prepared call: limits enforced, ready to run on the driver in a worker thread.
Call = Callable[[Driver], OpResult]


async def run_operation(
    request: Request,
    device_id: str,
    operation: str,
    scope: str,
    prepare: Callable[[Any, dict, dict, Principal], Call],  # (payload, declaration, clipped, caller)
    model: type[BaseModel] | None = None,
) -> Response:
    # The routes take only the path and the request (OperationRoute): what they need is resolved here, in the
    # order FastAPI's dependencies would (key and scope, then headers), without its dependency solver — a quarter
    # of a millisecond of a training step's HTTP overhead, for three headers and a key.
    who = await caller(request, (scope,))
    token, fencing, idempotency_key = _headers(request)
    ctx: ServerContext = request.app.state.ctx
    driver = ctx.device(device_id)
    if operation not in driver.capabilities:
        raise CapabilityMissing(
            f"device {device_id!r} ({driver.kind}) does not declare the capability {operation!r}; "
            f"it declares {sorted(driver.capabilities)}",
            field="operation",
        )
    body, media = b"", ""
    if model is not None:
        media = check_content_type(request)
        body = await read_body(request, ctx.settings.max_body_bytes)
    if not token:
        raise LeaseRequired(f"{operation} touches the device: send the lease token in X-Lease-Token", field="X-Lease-Token")
    request.state.audit = {"device_id": device_id, "fencing": fencing, "action": operation}  # what was presented
    ctx.leases.check(device_id, token, fencing)
    clipped: dict[str, int] = {}

    def decode_and_prepare() -> tuple[Call, str]:
        # the CPU work before the device: decode, validate, limits, fingerprint
        payload = parse(model, body, media) if model is not None else None
        fingerprint = ctx.idempotency.fingerprint(body)  # keyed by operation already; hashed only if kept on disk
        return prepare(payload, driver.declaration(), clipped, who), fingerprint

    if model is None or (codec.is_msgpack(media) and len(body) < INLINE_BYTES):
        call, fingerprint = decode_and_prepare()  # copy-free decode of a small body: cheaper than a hop
    else:
        call, fingerprint = await run_in_threadpool(decode_and_prepare)
    # a write changes non-volatile state: durable before it is answered (a relax may carry one)
    writes = operation in WRITES or bool(getattr(call, "writes", False))
    persisted = writes or operation in PERSISTED  # a probe's pulses switch test junctions: state too
    action = operation if operation in WRITES or not writes else f"program+{operation}"
    owner = who.key_id
    sent_key = idempotency_key
    if idempotency_key and owner:  # one caller's key never answers another caller's request
        idempotency_key = f"{owner}:{idempotency_key}"

    async with ctx.lock(device_id):
        lease = ctx.leases.check(device_id, token, fencing)  # again: the lease may have lapsed while we waited
        request.state.audit = {"device_id": device_id, "lease_id": lease.lease_id, "fencing": lease.fencing,
                               "action": action}
        if idempotency_key:
            stored = ctx.idempotency.lookup(device_id, operation, idempotency_key, fingerprint)
            if stored is None and writes and ctx.durable.may_replay(device_id, operation, idempotency_key):
                try:
                    stored = await ctx.on_device(device_id, ctx.durable.recall, device_id, operation,
                                                 idempotency_key, fingerprint)
                except ValueError:
                    raise InvalidInput(f"Idempotency-Key {sent_key!r} was already used for a different "
                                       f"{operation} request", field="Idempotency-Key") from None
            if stored is not None:
                return await encoded_off_loop(request, stored, headers={"Idempotent-Replayed": "true"})
        durable = persisted and ctx.durable.store.durable
        request_id = getattr(request.state, "request_id", "")
        answer_media = response_media(request)

        def execute() -> tuple[dict[str, Any], bytes]:
            # On the device's thread, in one hop: the call, its provenance, for a write the state on disk before
            # it is answered (a failed write is rolled back to what is on disk), the answer kept for a retry of its
            # key, and the answer encoded while its arrays are still in this core's cache.
            started = time.perf_counter()
            try:
                result = call(driver)
                content = _with_provenance(result, driver, operation, device_id, lease, request_id,
                                           time.perf_counter() - started, clipped)
                data = codec.encode(content, answer_media)
                if durable:  # a MessagePack answer is stored for a replay as it was encoded
                    ctx.durable.persist_write(device_id, driver, operation, idempotency_key if writes else None, owner,
                                              fingerprint, content, data if answer_media == codec.MSGPACK else None,
                                              _ok_record(request, content["report"]) if writes else None)
            except BaseException:
                if persisted:
                    ctx.durable.rollback(device_id, driver)
                raise
            if idempotency_key:
                ctx.idempotency.store(device_id, operation, idempotency_key, fingerprint, content)
            return content, data

        t0 = time.perf_counter()
        content, data = await ctx.on_device(device_id, execute)
        report = content["report"]
        request.state.audit |= {"device_time_s": report["device_time_s"], "energy_j": report["energy_j"]}
        ctx.metrics.operation_done(device_id, operation, report)
        pace = ctx.settings.latency_scale * report["instrument_time_s"] - (time.perf_counter() - t0)
        if pace > 0:
            await asyncio.sleep(pace)
    idle = None if type(driver).idle is Driver.idle else partial(ctx.after_answer, device_id, driver.idle)
    return Response(data, media_type=answer_media, background=None if idle is None else after_sent(idle))


def _ok_record(request: Request, report: dict[str, Any]) -> dict[str, Any] | None:
    """The audit record of this call answered 200, committed with its write (``committed``: the edge
    then records no second one; an answer that fails after all is recorded by the edge as such)."""
    request.state.audit |= {"device_time_s": report["device_time_s"], "energy_j": report["energy_j"]}
    record = record_of(request.scope, {"status": 200, "headers": []})
    request.state.audit["committed"] = True
    return record


def _headers(request: Request) -> tuple[str | None, int | None, str | None]:
    """``(lease token, fencing number, idempotency key)`` from the request's headers; 422 naming the header
    for a fencing number that is not a whole number in [0, 2**63 - 1] or a key longer than 200 characters."""
    headers = request.headers
    fencing_text = headers.get("x-lease-fencing")
    fencing = None
    if fencing_text is not None:
        text = fencing_text.strip()
        if not (text.isascii() and text.isdigit()) or int(text) > 2**63 - 1:
            raise InvalidInput(f"X-Lease-Fencing: expected a whole number in [0, 2**63 - 1], got {fencing_text[:40]!r}",
                               field="X-Lease-Fencing")
        fencing = int(text)
    key = headers.get("idempotency-key")
    if key is not None and len(key) > 200:
        raise InvalidInput(f"Idempotency-Key: at most 200 characters, got {len(key)}", field="Idempotency-Key")
    return headers.get("x-lease-token"), fencing, key


def _with_provenance(result: OpResult, driver: Driver, operation: str, device_id: str, lease: Lease, request_id: str,
                     wall_s: float, clipped: dict[str, int]) -> dict[str, Any]:
    """The answer: the driver's arrays and its report with the provenance the server adds (DESIGN.md §2)."""
    broken = report_problems(result.report)
    if broken:
        raise ContractViolation("provenance", "; ".join(broken))
    info = driver.describe_brief()
    report = {
        **result.report,
        "operation": operation,
        "device_id": device_id,
        "driver": info["driver"],
        "model_version": info["model_version"],
        "seed": info["seed"],
        "lease_id": lease.lease_id,
        "fencing": lease.fencing,
        "request_id": request_id,
        "wall_time_s": wall_s,
    }
    if clipped:
        report["clipped"] = clipped
    return {**result.arrays, "report": report}


def _op_doc(summary: str, request_model: type[BaseModel] | None, response_model: type[BaseModel],
            scope: str = OPERATE) -> dict[str, Any]:
    extra = body_doc(request_model) if request_model is not None else {}
    extra |= {"parameters": list(HEADERS), "security": [{"HTTPBearer": [scope]}]}
    return {
        "summary": summary,
        "openapi_extra": extra,
        "responses": {**response_doc(response_model), **problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 428, 503)},
    }


@router.post("/{device_id}/forward", **_op_doc("One feed-forward measurement", ForwardRequest, ForwardResponse))
async def forward(device_id: str, request: Request) -> Response:
    def prepare(p: ForwardRequest, decl: dict, clipped: dict, who: Principal) -> Call:
        limits = decl["limits"]
        x = enforce(limits, "x", p.x, clipped=clipped)
        enforce(limits, "batch", len(p.x), field="x")
        return lambda d: d.forward(x, p.layers)

    return await run_operation(request, device_id, "forward", OPERATE, prepare, ForwardRequest)


@router.post("/{device_id}/relax", **_op_doc("Settle the network (free or nudged phase) and measure it", RelaxRequest, RelaxResponse))
async def relax(device_id: str, request: Request) -> Response:
    def prepare(p: RelaxRequest, decl: dict, clipped: dict, who: Principal) -> Call:
        limits = decl["limits"]
        x = enforce(limits, "x", p.x, clipped=clipped)
        enforce(limits, "batch", len(p.x), field="x")
        beta = enforce(limits, "beta", p.beta)
        steps = enforce(limits, "steps", p.steps)
        target = enforce(limits, "target", p.target, clipped=clipped)
        init = None if p.init is None else [
            enforce(limits, "init", s, field=f"init[{k}]", clipped=clipped) for k, s in enumerate(p.init)
        ]
        nudges = [(enforce(limits, "beta", n.beta, field=f"nudges[{j}].beta"),
                   enforce(limits, "steps", n.steps, field=f"nudges[{j}].steps")) for j, n in enumerate(p.nudges or [])]
        _check_phases(decl, target, nudges, p.layers)
        if p.program is not None and PROGRAM not in who.scopes:  # a write needs the writer's scope
            raise Forbidden(f"key {who.key_id} ({who.name}, role {who.role}) lacks scope program:devices, which a "
                            "relax that carries a write needs", field="program")
        write = None if p.program is None else _write("program", p.program, decl, clipped, prefix="program.")

        def call(d: Driver) -> OpResult:
            if write is not None:  # refuse the phases before the write, not after: the device stays untouched
                d.check_relax(x, beta, target, steps, init, nudges, p.layers)
            written = None if write is None else write(d)
            if p.nudges is None and p.layers is None:
                result = d.relax(x, beta, target, steps, init)
            else:
                result = d.relax_nudged(x, beta, target, steps, init, nudges, p.layers)
            if written is None:
                return result
            arrays = {**result.arrays, **written.arrays}
            return OpResult(arrays, summed_report(result.report, written.report, program=written.report))

        call.writes = write is not None  # type: ignore[attr-defined]
        return call

    return await run_operation(request, device_id, "relax", OPERATE, prepare, RelaxRequest)


def _check_phases(decl: dict, target: Any, nudges: list[tuple[float, int]], layers: list[int] | None) -> None:
    """What every driver's nudged phases need, checked at the edge (drivers that keep the default
    ``relax_nudged`` check nothing themselves): a target for a nudge, and measured layers given
    ascending, without repeats, within the device's neuron layers (``topology.sizes``)."""
    if target is None and any(b != 0.0 for b, _ in nudges):
        raise InvalidInput("target: a nudged phase (beta != 0) needs a target", field="target")
    if layers is None:
        return
    sizes = decl["topology"].get("sizes")
    top = len(sizes) - 2 if sizes else None
    if not layers or layers != sorted(set(layers)) or layers[0] < 0 or (top is not None and layers[-1] > top):
        span = "" if top is None else f" within 0..{top}"
        raise InvalidInput(f"layers: give neuron layers ascending, without repeats{span}; got {layers}", field="layers")


def _write(kind: str, p: ProgramRequest | UpdateRequest, decl: dict, clipped: dict, prefix: str = "") -> Call:
    """Check every named array against the declaration: a known name, values (program) or step (update).

    ``prefix``: where the write sits in the body (``program.`` inside a relax), for the field names.
    """
    limits, weights = decl["limits"], list(decl["topology"].get("weights") or [])
    cells = getattr(p, "cells", None)
    field = prefix + ("deltas" if kind == "update" else ("cells" if cells is not None else "weights"))
    given = p.deltas if kind == "update" else (cells if cells is not None else p.weights)
    for name in given:
        if name not in weights:
            raise NotFound(f"{field}.{name}: no such array; the device has {weights}", field=f"{field}.{name}")
    if cells is not None:
        sparse = {}
        for name, c in cells.items():
            index, value = decode_cells(decl, name, c.index, c.mask, c.value, c.level, f"{field}.{name}")
            given_as = f"{field}.{name}.{'value' if c.level is None else 'level'}"
            sparse[name] = (index, enforce(limits, name, value, field=given_as, clipped=clipped))
    elif kind == "program":
        arrays = {name: enforce(limits, name, a, field=f"{field}.{name}", clipped=clipped) for name, a in given.items()}
    else:
        arrays = {name: enforce_step(limits, name, a, field=f"{field}.{name}") for name, a in given.items()}

    def call(d: Driver) -> OpResult:
        try:
            if cells is not None:
                result = d.program_cells(sparse)
            else:
                result = d.program(arrays) if kind == "program" else d.update(arrays)
        except DriverError as exc:  # the driver names fields of a PUT body; inside a relax they sit under prefix
            if not prefix or exc.field.startswith(prefix):
                raise
            raise type(exc)(prefix + exc.field, exc.detail) from exc
        if not p.return_achieved:
            result.arrays.pop("achieved", None)
        return result

    return call


@router.put("/{device_id}/weights", **_op_doc("Program weights (write-and-verify); answers the achieved weights",
                                              ProgramRequest, WriteResponse, PROGRAM))
async def program(device_id: str, request: Request) -> Response:
    def prepare(p: ProgramRequest, decl: dict, clipped: dict, who: Principal) -> Call:
        return _write("program", p, decl, clipped)

    return await run_operation(request, device_id, "program", PROGRAM, prepare, ProgramRequest)


@router.post("/{device_id}/weights:update", **_op_doc("Incremental write (pulses)", UpdateRequest, WriteResponse,
                                                     PROGRAM))
async def update(device_id: str, request: Request) -> Response:
    def prepare(p: UpdateRequest, decl: dict, clipped: dict, who: Principal) -> Call:
        return _write("update", p, decl, clipped)

    return await run_operation(request, device_id, "update", PROGRAM, prepare, UpdateRequest)


@router.get("/{device_id}/weights", **_op_doc("Measure the programmed weights", None, WeightsResponse))
async def read_weights(device_id: str, request: Request) -> Response:
    def prepare(_: None, decl: dict, clipped: dict, who: Principal) -> Call:
        return lambda d: d.read_weights()

    return await run_operation(request, device_id, "read_weights", OPERATE, prepare)


@router.post("/{device_id}/drive", **_op_doc("Apply input sequences and record output traces", DriveRequest, DriveResponse))
async def drive(device_id: str, request: Request) -> Response:
    def prepare(p: DriveRequest, decl: dict, clipped: dict, who: Principal) -> Call:
        limits, rec = decl["limits"], p.record
        u = enforce(limits, "u", p.u, clipped=clipped)
        if u.ndim != 3:
            raise InvalidInput(f"u: expected an array (batch, steps, inputs), got {u.ndim} dimension(s)", field="u")
        enforce(limits, "batch", u.shape[0], field="u")
        enforce(limits, "steps", u.shape[1], field="u")
        dt = enforce(limits, "dt", p.dt)
        every = enforce(limits, "every", rec.every, field="record.every")
        start = enforce(limits, "start", rec.start, field="record.start")
        oscillators = enforce(limits, "oscillators", rec.oscillators, field="record.oscillators")
        return lambda d: d.drive(u, dt, oscillators, every, start, rec.quantities)

    return await run_operation(request, device_id, "drive", OPERATE, prepare, DriveRequest)


@router.post("/{device_id}/probe", **_op_doc("Measure a test structure of the chip (characterisation)", ProbeRequest,
                                             ProbeResponse))
async def probe(device_id: str, request: Request) -> Response:
    def prepare(p: ProbeRequest, decl: dict, clipped: dict, who: Principal) -> Call:
        structures = decl.get("structures") or {}
        if p.structure not in structures:
            raise NotFound(f"structure: no test structure {p.structure!r}; the device has {sorted(structures)}",
                           field="structure")
        expected = list(structures[p.structure].get("inputs") or [])
        for name in p.inputs:
            if name not in expected:
                raise InvalidInput(f"inputs.{name}: {p.structure!r} takes {expected}", field=f"inputs.{name}")
        for name in expected:
            if name not in p.inputs:
                raise InvalidInput(f"inputs.{name}: {p.structure!r} needs it (inputs: {expected})",
                                   field=f"inputs.{name}")
        limits = decl["limits"]
        inputs = {name: enforce(limits, f"{p.structure}.{name}", a, field=f"inputs.{name}", clipped=clipped)
                  for name, a in p.inputs.items()}
        return lambda d: d.probe(p.structure, inputs)

    return await run_operation(request, device_id, "probe", OPERATE, prepare, ProbeRequest)
