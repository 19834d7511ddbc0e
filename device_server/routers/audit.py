"""``GET /v1/audit``: the audit log, filtered, for keys with ``read:audit`` (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Security
from fastapi.concurrency import run_in_threadpool

from device_server.auth import Principal, authorize
from device_server.deps import Ctx
from device_server.openapi import problem_responses

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/audit", summary="Audit records, oldest first, filtered; page with after_id",
            responses=problem_responses(401, 403, 422))
async def read_audit(
    ctx: Ctx,
    who: Annotated[Principal, Security(authorize, scopes=["read:audit"])],
    key_id: Annotated[str | None, Query(max_length=32, description="the caller's key id")] = None,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
    lease_id: Annotated[str | None, Query(max_length=32)] = None,
    action: Annotated[str | None, Query(max_length=64, description="route name: take_lease, forward, program, …")] = None,
    outcome: Annotated[str | None, Query(pattern="^(ok|replayed|refused|error)$")] = None,
    status: Annotated[int | None, Query(ge=100, le=599)] = None,
    request_id: Annotated[str | None, Query(max_length=100)] = None,
    request_id_prefix: Annotated[str | None, Query(max_length=100, description="e.g. a training run's id")] = None,
    idempotency_key: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[float | None, Query(description="[s] Unix time, inclusive")] = None,
    until: Annotated[float | None, Query(description="[s] Unix time, exclusive")] = None,
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1, description="only records after this id (paging)")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    filters = {"key_id": key_id, "device_id": device_id, "lease_id": lease_id, "action": action,
               "outcome": outcome, "status": status, "request_id": request_id,
               "request_id_prefix": request_id_prefix, "idempotency_key": idempotency_key,
               "since": since, "until": until}
    records = await run_in_threadpool(ctx.store.audit, filters, limit, after_id)
    return {"records": records, "next_after_id": records[-1]["id"] if len(records) == limit else None}
