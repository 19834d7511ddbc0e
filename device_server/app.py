"""FastAPI app factory. Nothing is built at import time: ``create_app(settings)`` builds the lab."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from device_server import __version__
from device_server.audit import AuditTrail
from device_server.context import ServerContext
from device_server.edge import EdgeMiddleware
from device_server.errors import install_handlers
from device_server.lab import Lab, load_lab
from device_server.openapi import install_openapi
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


def create_app(settings: Settings | None = None, lab: Lab | None = None) -> FastAPI:
    """Build a server for ``settings`` (the lab file it names, or the built-in default lab)."""
    settings = settings or Settings()
    lab = lab or load_lab(settings.lab)
    ctx = ServerContext.build(settings, lab)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.close()

    app = FastAPI(title="SpinHIL device server", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.ctx = ctx
    install_handlers(app)
    # operations first, on the app's own router: a request is matched against the routes in this order, and a
    # training step is one operation request after another. An included router is kept as a branch that each
    # request is matched into twice (FastAPI's include_router); routes of the app itself are matched once, as
    # routes declared with @app.post are (about 40 µs of a step's path, measured).
    app.router.routes[:0] = operations.router.routes
    for module in (health, devices, leases, admin, audit):
        app.include_router(module.router)
    install_openapi(app)
    app.add_middleware(EdgeMiddleware, metrics=ctx.metrics, audit=AuditTrail(ctx.store))
    return app
