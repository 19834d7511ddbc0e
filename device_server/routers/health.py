"""Health and Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from device_server import __version__
from device_server.deps import Ctx

router = APIRouter(tags=["health"])


@router.get("/v1/health", summary="Liveness, version and which lab this server runs (no key needed)",
            openapi_extra={"security": []})
async def health(ctx: Ctx) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "lab": ctx.lab.name,
        "lab_source": ctx.lab.source,
        "lab_config_sha256": ctx.lab.config_sha256,
        "devices": len(ctx.lab.devices),
        "latency": ctx.settings.latency,
        "uptime_s": time.time() - ctx.started_at,
        "auth": "open" if ctx.settings.open else "api-key",
        "durable": ctx.store.durable,
    }


@router.get("/metrics", summary="Prometheus metrics (text exposition format; no key needed)",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}}, openapi_extra={"security": []})
async def metrics(ctx: Ctx) -> Response:
    for device_id in ctx.lab.devices:
        ctx.metrics.leased.labels(device_id).set(1 if ctx.leases.current(device_id) else 0)
        ctx.metrics.queued.labels(device_id).set(ctx.leases.queue_length(device_id))
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
