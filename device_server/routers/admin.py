"""Administration: API keys (``admin:keys``) and breaking a lease (``admin:leases``)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from device_server.auth import Principal, authorize, create_key, key_status, public_key
from device_server.body import check_content_type, encoded, parse, read_body
from device_server.deps import Ctx
from device_server.errors import NotFound
from device_server.openapi import body_doc, problem_responses
from device_server.schemas import BreakRequest, KeyRequest

router = APIRouter(prefix="/v1/admin", tags=["admin"])

KeyAdmin = Annotated[Principal, Security(authorize, scopes=["admin:keys"])]
LeaseAdmin = Annotated[Principal, Security(authorize, scopes=["admin:leases"])]


def _listed(row: dict[str, Any], now: float) -> dict[str, Any]:
    return {**public_key(row), "status": key_status(row, now)}


@router.get("/keys", summary="API keys: id, name, role, created, expires, last used, status (never the secret)",
            responses=problem_responses(401, 403))
async def list_keys(ctx: Ctx, who: KeyAdmin) -> dict[str, Any]:
    now = time.time()
    return {"keys": [_listed(row, now) for row in await run_in_threadpool(ctx.store.keys)]}


@router.post("/keys", status_code=201, summary="Create an API key; the answer's `key` is shown this once",
             openapi_extra=body_doc(KeyRequest), responses=problem_responses(400, 401, 403, 415, 422))
async def create(request: Request, ctx: Ctx, who: KeyAdmin) -> Response:
    p = parse(KeyRequest, await read_body(request, ctx.settings.max_body_bytes), check_content_type(request))
    expires = None if p.expires_in_days is None else p.expires_in_days * 86400.0
    key, row = await run_in_threadpool(create_key, ctx.store, p.name, p.role, expires, p.quota_device_s)
    request.state.audit = {"detail": f"created key {row['key_id']} ({p.name}, {p.role})"}
    return encoded(request, {"key": key, **_listed(row, time.time())}, status_code=201)


@router.delete("/keys/{key_id}", summary="Revoke an API key (it is refused from the next request on)",
               responses=problem_responses(401, 403, 404))
async def revoke(key_id: str, request: Request, ctx: Ctx, who: KeyAdmin) -> Response:
    if not await run_in_threadpool(lambda: ctx.store.set_key(key_id, revoked_at=time.time())):
        raise NotFound(f"no API key {key_id!r}", field="key_id")
    request.state.audit = {"detail": f"revoked key {key_id}"}
    return encoded(request, _listed(ctx.store.key(key_id) or {}, time.time()))


@router.post("/leases/{lease_id}/break", summary="Break anyone's lease, with a recorded reason; the next "
             "in the queue gets the device", openapi_extra=body_doc(BreakRequest),
             responses=problem_responses(400, 401, 403, 404, 415, 422))
async def break_lease(lease_id: str, request: Request, ctx: Ctx, who: LeaseAdmin) -> Response:
    p = parse(BreakRequest, await read_body(request, ctx.settings.max_body_bytes), check_content_type(request))
    lease = await run_in_threadpool(ctx.leases.break_lease, lease_id, p.reason)
    request.state.audit = {"device_id": lease.device_id, "lease_id": lease.lease_id, "fencing": lease.fencing,
                           "detail": f"broken: {p.reason}"}
    return encoded(request, {**lease.public(ctx.leases.now(), time.time()), "expires_in_s": 0.0,
                             "broken": True, "reason": p.reason})
