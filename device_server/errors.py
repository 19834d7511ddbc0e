"""One error shape: RFC 9457 problem details, with the field that was wrong.

Every failure the server answers is a :class:`Problem` (or is turned into one by the handlers
installed in :func:`install_handlers`), serialised as ``application/problem+json``::

    {"type": "https://spinhil.dev/problems/invalid-input", "title": "Invalid input",
     "status": 422, "detail": "x: expected shape (batch, 64), got (3, 5)", "field": "x",
     "instance": "/v1/devices/crossbar-digits/forward", "request_id": "…"}

Problem tree (status in brackets)::

    Problem
    ├── MalformedBody [400]        body cannot be decoded
    ├── Unauthorized [401]         no API key, or an unknown, revoked or expired one
    ├── Forbidden [403]            a known key whose role lacks the scope
    ├── NotFound [404]             unknown device, layer, array or lease
    │   └── CapabilityMissing      an operation the device does not declare
    ├── MethodNotAllowed [405]     a path without that method (with Allow)
    ├── LeaseConflict [409]        leased by someone else, or a stale lease token
    ├── PayloadTooLarge [413]      body over the configured limit
    ├── UnsupportedMediaType [415] content type not supported
    ├── InvalidInput [422]         shape, dtype, NaN/Inf, beyond a safe-operating limit, unknown field
    ├── LeaseRequired [428]        operation sent without a lease token
    ├── QuotaExceeded [429]        the key's device-seconds quota is spent
    ├── DeviceUnavailable [503]    device faulted or offline (with Retry-After)
    └── DriverContractViolation [500]  the driver broke the contract (a bug on the lab's side)
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from device_server.drivers.base import ContractViolation, DeviceFault, DriverError, InvalidArgument, UnknownName
from trainer_client.codec import CodecError, PROBLEM_JSON

PROBLEM_BASE = "https://spinhil.dev/problems/"
log = logging.getLogger("device_server")


class ProblemModel(BaseModel):
    """Schema of a problem-details body (for OpenAPI)."""

    type: str
    title: str
    status: int
    detail: str
    field: str | None = None
    instance: str | None = None
    request_id: str | None = None


class Problem(Exception):
    """An error answered as problem details. Subclasses fix ``status``, ``slug`` and ``title``."""

    status = 500
    slug = "internal"
    title = "Internal error"

    def __init__(self, detail: str, field: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.headers = headers or {}

    def body(self, instance: str | None = None, request_id: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.field is not None:
            out["field"] = self.field
        if instance is not None:
            out["instance"] = instance
        if request_id is not None:
            out["request_id"] = request_id
        return out


class MalformedBody(Problem):
    status, slug, title = 400, "malformed-body", "Malformed body"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class CapabilityMissing(NotFound):
    slug, title = "capability-missing", "Operation not supported by this device"


class MethodNotAllowed(Problem):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class LeaseConflict(Problem):
    status, slug, title = 409, "lease-conflict", "Lease conflict"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class InvalidInput(Problem):
    status, slug, title = 422, "invalid-input", "Invalid input"


class LeaseRequired(Problem):
    status, slug, title = 428, "lease-required", "Lease required"


class QuotaExceeded(Problem):
    status, slug, title = 429, "quota-exceeded", "Quota exceeded"


class DeviceUnavailable(Problem):
    status, slug, title = 503, "device-unavailable", "Device unavailable"


class DriverContractViolation(Problem):
    """Not the caller's mistake: the driver answered outside its contract. Logged, never hidden."""

    status, slug, title = 500, "driver-contract-violation", "Driver contract violation"


def from_driver_error(exc: DriverError) -> Problem:
    """Map a driver's error onto the problem tree."""
    if isinstance(exc, UnknownName):
        return NotFound(f"{exc.field}: {exc.detail}", field=exc.field)
    if isinstance(exc, DeviceFault):
        return DeviceUnavailable(f"{exc.field}: {exc.detail}", field=exc.field,
                                 headers={"Retry-After": str(int(max(1, exc.retry_after_s)))})
    if isinstance(exc, InvalidArgument):
        return InvalidInput(f"{exc.field}: {exc.detail}", field=exc.field)
    return InvalidInput(str(exc), field=exc.field)


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    request.state.problem_detail = problem.detail  # for the audit record
    return JSONResponse(
        problem.body(instance=request.url.path, request_id=request_id),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) if parts else "body"


def validation_problem(errors: list[dict[str, Any]]) -> InvalidInput:
    """A 422 naming the first invalid field of a pydantic validation error (all listed in detail)."""
    msgs = [f"{_field_of(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in errors]
    first = _field_of(tuple(errors[0].get("loc", ()))) if errors else "body"
    return InvalidInput("; ".join(msgs), field=first)


def install_handlers(app: FastAPI) -> None:
    """Turn every error into problem details; never a bare 500 page for a caller's mistake."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(DriverError)
    async def _driver(request: Request, exc: DriverError) -> JSONResponse:
        return problem_response(request, from_driver_error(exc))

    @app.exception_handler(ContractViolation)
    async def _contract(request: Request, exc: ContractViolation) -> JSONResponse:
        log.error("driver contract violation on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(request, DriverContractViolation(f"driver broke rule {exc.rule!r}: {exc.detail}",
                                                                 field=exc.rule))

    @app.exception_handler(CodecError)
    async def _codec(request: Request, exc: CodecError) -> JSONResponse:
        return problem_response(request, MalformedBody(str(exc), field="body"))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(request, validation_problem(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            problem: Problem = NotFound(f"no route {request.method} {request.url.path}", field="path")
        elif exc.status_code == 405:
            problem = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}", field="method",
                                       headers=dict(exc.headers or {}))
        else:
            problem = Problem(str(exc.detail))
            problem.status = exc.status_code
        return problem_response(request, problem)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(request, Problem(f"unexpected server error: {type(exc).__name__}"))
