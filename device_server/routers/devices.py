"""The device list and each device's description."""

from __future__ import annotations

from typing import Any

from typing import Annotated

from fastapi import APIRouter, Security

from device_server.auth import Principal, authorize
from device_server.context import ServerContext
from device_server.deps import Ctx
from device_server.openapi import problem_responses

router = APIRouter(prefix="/v1/devices", tags=["devices"])
Reader = Annotated[Principal, Security(authorize, scopes=["read:devices"])]


def _status(ctx: ServerContext, device_id: str) -> dict[str, Any]:
    lease = ctx.leases.current(device_id)
    return {
        "status": "leased" if lease else "idle",
        "holder": lease.holder if lease else None,
        "fencing": lease.fencing if lease else None,
        "queue_length": ctx.leases.queue_length(device_id),
    }


@router.get("", summary="Devices of this lab: id, kind, status, holder, queue length",
            responses=problem_responses(401, 403))
async def list_devices(ctx: Ctx, who: Reader) -> dict[str, Any]:
    return {
        "devices": [
            {"id": device_id, "kind": d.kind, "driver": d.driver_type, **_status(ctx, device_id)}
            for device_id, d in ctx.lab.devices.items()
        ]
    }


@router.get("/{device_id}", summary="describe(): topology, capabilities, declared settings and limits",
            responses=problem_responses(401, 403, 404))
async def describe(device_id: str, ctx: Ctx, who: Reader) -> dict[str, Any]:
    return {**ctx.device(device_id).describe(), **_status(ctx, device_id)}
