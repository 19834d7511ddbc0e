"""Leases: take, keep alive, release. One holder per device; the token carries a fencing number."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from device_server.body import check_content_type, encoded, parse, read_body
from device_server.context import ServerContext
from device_server.deps import Ctx
from device_server.leases import Lease
from device_server.openapi import body_doc, problem_responses
from device_server.schemas import KeepaliveRequest, LeaseRequest

router = APIRouter(prefix="/v1", tags=["leases"])

TokenHeader = Annotated[str | None, Header(alias="X-Lease-Token", description="the lease's token")]
IdemHeader = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def _public(ctx: ServerContext, lease: Lease, with_token: bool = False) -> dict[str, Any]:
    return lease.public(ctx.leases.now(), time.time(), with_token=with_token)


@router.post("/devices/{device_id}/leases", status_code=201, summary="Take the device's lease",
             openapi_extra=body_doc(LeaseRequest, required=False),
             responses=problem_responses(400, 404, 409, 415, 422))
async def take_lease(device_id: str, request: Request, ctx: Ctx, idempotency_key: IdemHeader = None) -> Response:
    ctx.device(device_id)
    media = check_content_type(request, allow_empty=True)
    body = await read_body(request, ctx.settings.max_body_bytes)
    p = parse(LeaseRequest, body, media)
    ttl = min(p.ttl_s or ctx.settings.lease_ttl_s, ctx.settings.max_lease_ttl_s)
    fingerprint = ctx.idempotency.fingerprint(body) if idempotency_key else ""
    if idempotency_key:
        # a retried take (its answer was lost) gets the lease it already holds, not a 409
        stored = ctx.idempotency.lookup(device_id, "lease", idempotency_key, fingerprint)
        current = ctx.leases.current(device_id)
        if stored is not None and current is not None and current.lease_id == stored:
            return encoded(request, _public(ctx, current, with_token=True), status_code=201,
                           headers={"Idempotent-Replayed": "true"})
    lease = ctx.leases.acquire(device_id, p.holder, ttl)
    if idempotency_key:
        ctx.idempotency.store(device_id, "lease", idempotency_key, fingerprint, lease.lease_id)
    return encoded(request, _public(ctx, lease, with_token=True), status_code=201)


@router.post("/leases/{lease_id}/keepalive", summary="Extend a lease by its TTL",
             openapi_extra=body_doc(KeepaliveRequest, required=False),
             responses=problem_responses(404, 409, 415, 422))
async def keepalive(lease_id: str, request: Request, ctx: Ctx, token: TokenHeader = None) -> Response:
    media = check_content_type(request, allow_empty=True)
    p = parse(KeepaliveRequest, await read_body(request, ctx.settings.max_body_bytes), media)
    ttl = None if p.ttl_s is None else min(p.ttl_s, ctx.settings.max_lease_ttl_s)
    return encoded(request, _public(ctx, ctx.leases.keepalive(lease_id, token, ttl)))


@router.delete("/leases/{lease_id}", summary="Release a lease", responses=problem_responses(404, 409))
async def release(lease_id: str, request: Request, ctx: Ctx, token: TokenHeader = None) -> Response:
    lease = ctx.leases.release(lease_id, token)
    return encoded(request, {**_public(ctx, lease), "expires_in_s": 0.0, "released": True})
