"""FastAPI app factory. Nothing is built at import time: ``create_app(settings)`` builds the lab."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from device_server import __version__
from device_server.context import ServerContext
from device_server.errors import install_handlers
from device_server.lab import Lab, load_lab
from device_server.metrics import Metrics
from device_server.openapi import install_openapi
from device_server.audit import AuditMiddleware
from device_server.routers import admin, audit, devices, health, leases, operations
from device_server.settings import Settings

DESCRIPTION = """Spintronic chips as instruments on a bench: physics, noise, limits, latency, energy.

Arrays travel as MessagePack (`application/msgpack`, arrays as `{dtype, shape, data}`) or JSON
(nested lists); `Content-Type` and `Accept` choose. Errors are RFC 9457 problem details naming
the field. Operations that touch a device need the lease token in `X-Lease-Token`; writes take
an `Idempotency-Key`. Unless the server runs `--open`, every route but `/v1/health` and
`/metrics` needs an API key (`Authorization: Bearer shl_…`) whose role carries the scope the
route names (roles: observer, user, admin).
"""


class RequestContextMiddleware:
    """Request id (``X-Request-ID``, echoed or made) and request metrics, as pure ASGI (no body copy)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:100] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = {"code": 500}
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], label, str(status["code"])).inc()
            self.metrics.latency.labels(scope["method"], label).observe(time.perf_counter() - t0)


def create_app(settings: Settings | None = None, lab: Lab | None = None) -> FastAPI:
    """Build a server for ``settings`` (the lab file it names, or the built-in default lab)."""
    settings = settings or Settings()
    lab = lab or load_lab(settings.lab)
    ctx = ServerContext.build(settings, lab)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.store.close()

    app = FastAPI(title="SpinHIL device server", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.ctx = ctx
    install_handlers(app)
    for module in (health, devices, leases, operations, admin, audit):
        app.include_router(module.router)
    install_openapi(app)
    app.add_middleware(AuditMiddleware, store=ctx.store)
    app.add_middleware(RequestContextMiddleware, metrics=ctx.metrics)
    return app
