"""The server's one middleware: request id, request metrics and the audit record of every call.

Pure ASGI, one wrapper of ``send`` for all three jobs: a request body is never copied, and an
answer passes one extra layer on its way out, not one per job (a training step sends about
300 KB each way, and every layer is a Python call on the step's critical path).
"""

from __future__ import annotations

import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from device_server.audit import AuditTrail
from device_server.metrics import Metrics


class EdgeMiddleware:
    """``X-Request-ID`` (echoed, or made), request counts and latency by route, and the audit record
    made when the answer's status line is ready and committed before it is sent (:mod:`device_server.audit`)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, audit: AuditTrail) -> None:
        self.app = app
        self.metrics = metrics
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:100]
                break
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = False
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode("latin-1")))
                await self.audit.answered(scope, message)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            if not started:
                await self.audit.failed(scope)
            raise
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - t0)
