"""Dependencies: a route's signature says what it needs (after the FastAPI template's ``deps.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from device_server.context import ServerContext


async def get_context(request: Request) -> ServerContext:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request for a lookup
    return request.app.state.ctx


Ctx = Annotated[ServerContext, Depends(get_context)]
