"""Leases and queues: take (or wait in line), keep alive, release; follow a ticket (long-poll or SSE).

Every route names the scope it needs (``write:lease``); the taker's key owns the lease and the
ticket, and only that key sees a ticket or replays a take.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from device_server.auth import Principal, authorize
from device_server.body import check_content_type, encoded, parse, read_body
from device_server.context import ServerContext
from device_server.deps import Ctx
from device_server.leases import Lease, QueueStatus, queue_public
from device_server.openapi import body_doc, problem_responses
from device_server.schemas import KeepaliveRequest, LeaseRequest

router = APIRouter(prefix="/v1", tags=["leases"])

TokenHeader = Annotated[str | None, Header(alias="X-Lease-Token", description="the lease's token")]
IdemHeader = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                          description="a retried take returns the same lease or ticket")]
LeaseWriter = Annotated[Principal, Security(authorize, scopes=["write:lease"])]
#: [s] server-side poll period of a long-poll or event stream (how soon a waiter learns of a grant).
POLL_PERIOD_S = 0.05
#: [s] longest silence on an event stream (then a comment line).
SSE_HEARTBEAT_S = 15.0


def _public(ctx: ServerContext, lease: Lease, with_token: bool = False) -> dict[str, Any]:
    return lease.public(ctx.leases.now(), time.time(), with_token=with_token)


def _ticket(ctx: ServerContext, status: QueueStatus) -> dict[str, Any]:
    return queue_public(status, ctx.leases.now(), time.time())


def _audit(request: Request, lease: Lease | None = None, **extra: Any) -> None:
    if lease is not None:
        extra |= {"device_id": lease.device_id, "lease_id": lease.lease_id, "fencing": lease.fencing}
    request.state.audit = extra


@router.post("/devices/{device_id}/leases", status_code=201,
             summary="Take the device's lease (201), or a place in its queue with queue: true (202)",
             openapi_extra=body_doc(LeaseRequest, required=False),
             responses={202: {"description": "Queued: a ticket with position and estimated wait; poll "
                                              "GET /v1/queue/{ticket_id}"},
                        **problem_responses(400, 401, 403, 404, 409, 415, 422, 429)})
async def take_lease(device_id: str, request: Request, ctx: Ctx, who: LeaseWriter,
                     idempotency_key: IdemHeader = None) -> Response:
    ctx.device(device_id)
    media = check_content_type(request, allow_empty=True)
    body = await read_body(request, ctx.settings.max_body_bytes)
    p = parse(LeaseRequest, body, media)
    ttl = min(p.ttl_s or ctx.settings.lease_ttl_s, ctx.settings.max_lease_ttl_s)
    holder = p.holder if p.holder != "anonymous" or who.key_id == "open" else who.name
    taken = await run_in_threadpool(ctx.leases.acquire, device_id, holder, ttl, who.key_id, p.queue, idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if taken.replayed else None
    if taken.lease is not None:
        _audit(request, taken.lease)
        return encoded(request, _public(ctx, taken.lease, with_token=True), status_code=201, headers=headers)
    assert taken.queued is not None
    _audit(request, device_id=device_id, detail=f"queued at position {taken.queued.position}")
    return encoded(request, _ticket(ctx, taken.queued), status_code=202,
                   headers={**(headers or {}), "Location": f"/v1/queue/{taken.queued.ticket.ticket_id}"})


@router.get("/queue/{ticket_id}",
            summary="A ticket's place in the queue; waits up to wait_s for a change (long-poll). "
                    "Each poll keeps the ticket; once granted, the answer holds the lease and its token",
            responses=problem_responses(401, 403, 404))
async def poll_ticket(
    ticket_id: str, request: Request, ctx: Ctx, who: LeaseWriter,
    wait_s: Annotated[float, Query(ge=0, le=60, description="[s] wait this long for the position to change")] = 0.0,
) -> Response:
    status = await run_in_threadpool(ctx.leases.poll, ticket_id, who.key_id)
    deadline = time.monotonic() + min(wait_s, status.ticket.ttl_s / 2)
    seen = (status.ticket.state, status.position)
    while status.ticket.state == "waiting" and time.monotonic() < deadline:
        await asyncio.sleep(POLL_PERIOD_S)
        status = await run_in_threadpool(ctx.leases.poll, ticket_id, who.key_id)
        if (status.ticket.state, status.position) != seen:
            break
    return encoded(request, _ticket(ctx, status))


@router.get("/queue/{ticket_id}/events",
            summary="A ticket's place as server-sent events: `position` at every change, then `granted` "
                    "(with the lease and its token) or the state it ended in; the open stream keeps the ticket",
            responses={200: {"content": {"text/event-stream": {}}}, **problem_responses(401, 403, 404)})
async def ticket_events(ticket_id: str, request: Request, ctx: Ctx, who: LeaseWriter) -> StreamingResponse:
    first = await run_in_threadpool(ctx.leases.poll, ticket_id, who.key_id)  # 404 before the stream starts

    async def events() -> AsyncIterator[str]:
        status, seen, quiet_s = first, None, 0.0
        while True:
            body = _ticket(ctx, status)
            if (body["state"], body["position"]) != seen:
                seen, quiet_s = (body["state"], body["position"]), 0.0
                name = "position" if body["state"] == "waiting" else body["state"]
                yield f"event: {name}\ndata: {json.dumps(body)}\n\n"
            if body["state"] != "waiting":
                return
            if quiet_s >= SSE_HEARTBEAT_S:  # a comment line keeps proxies from closing a quiet stream
                quiet_s = 0.0
                yield ": waiting\n\n"
            await asyncio.sleep(POLL_PERIOD_S)
            quiet_s += POLL_PERIOD_S
            status = await run_in_threadpool(ctx.leases.poll, ticket_id, who.key_id)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.delete("/queue/{ticket_id}", summary="Leave the queue", responses=problem_responses(401, 403, 404))
async def cancel_ticket(ticket_id: str, request: Request, ctx: Ctx, who: LeaseWriter) -> Response:
    t = await run_in_threadpool(ctx.leases.cancel, ticket_id, who.key_id)
    _audit(request, device_id=t.device_id)
    return encoded(request, {"ticket_id": t.ticket_id, "device_id": t.device_id, "state": t.state})


@router.post("/leases/{lease_id}/keepalive", summary="Extend a lease by its TTL (never past the key's quota)",
             openapi_extra=body_doc(KeepaliveRequest, required=False),
             responses=problem_responses(401, 403, 404, 409, 415, 422, 428, 429))
async def keepalive(lease_id: str, request: Request, ctx: Ctx, who: LeaseWriter, token: TokenHeader = None) -> Response:
    media = check_content_type(request, allow_empty=True)
    p = parse(KeepaliveRequest, await read_body(request, ctx.settings.max_body_bytes), media)
    ttl = None if p.ttl_s is None else min(p.ttl_s, ctx.settings.max_lease_ttl_s)
    lease = await run_in_threadpool(ctx.leases.keepalive, lease_id, token, ttl)
    _audit(request, lease)
    return encoded(request, _public(ctx, lease))


@router.delete("/leases/{lease_id}", summary="Release a lease (the next in the queue gets the device)",
               responses=problem_responses(401, 403, 404, 409, 428))
async def release(lease_id: str, request: Request, ctx: Ctx, who: LeaseWriter, token: TokenHeader = None) -> Response:
    lease = await run_in_threadpool(ctx.leases.release, lease_id, token)
    _audit(request, lease)
    return encoded(request, {**_public(ctx, lease), "expires_in_s": 0.0, "released": True})
