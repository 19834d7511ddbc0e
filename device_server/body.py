"""Reading, decoding and answering bodies: size limit, content negotiation, one codec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTask

from device_server.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType, validation_problem
from trainer_client import codec

M = TypeVar("M", bound=BaseModel)


def check_content_type(request: Request, allow_empty: bool = False) -> str:
    """The request's media type if we can decode it; 415 otherwise."""
    content_type = request.headers.get("content-type")
    if not content_type and allow_empty:
        return codec.JSON
    if codec.is_msgpack(content_type) or codec.is_json(content_type):
        return codec.media_type(content_type)
    raise UnsupportedMediaType(
        f"Content-Type {content_type or '(none)'!r} is not supported; send {codec.MSGPACK} or {codec.JSON}",
        field="Content-Type",
    )


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused with 413 as soon as it exceeds ``max_bytes`` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body of {int(declared)} bytes exceeds the limit of {max_bytes} bytes", field="body")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body exceeds the limit of {max_bytes} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def parse(model: type[M], body: bytes, media: str) -> M:
    """Decode ``body`` and validate it as ``model``: 400 if undecodable, 422 if invalid."""
    if not body:
        payload: Any = {}
    else:
        try:
            payload = codec.decode(body, media)
        except codec.CodecError as exc:
            raise MalformedBody(str(exc), field="body") from exc
    if not isinstance(payload, dict):
        raise MalformedBody(f"the body must be a map/object, got {type(payload).__name__}", field="body")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise validation_problem(list(exc.errors())) from exc


def response_media(request: Request) -> str:
    """MessagePack if the client accepts it (or sent it without an Accept), else JSON."""
    accept = request.headers.get("accept", "")
    ranked = []
    for order, part in enumerate(accept.split(",")):
        media, _, params = part.partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            ranked.append((-q, order, codec.media_type(media)))
    for _, _, media in sorted(ranked):
        if media in codec.MSGPACK_TYPES:
            return codec.MSGPACK
        if media in codec.JSON_TYPES:
            return codec.JSON
    if codec.is_msgpack(request.headers.get("content-type")) and (not accept or "*/*" in accept):
        return codec.MSGPACK
    return codec.JSON


def encoded(request: Request, content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    media = response_media(request)
    return Response(codec.encode(content, media), status_code=status_code, media_type=media, headers=headers)


#: Below this many bytes of arrays, MessagePack bodies are decoded and answers encoded on the event
#: loop: a worker-thread hop costs two wake-ups, more than the copy-free codec's work (on a loaded
#: machine each wake-up waits for a core); above it, or in JSON, the work moves off the loop.
INLINE_BYTES = 1 << 20


def array_bytes(obj: Any) -> int:
    """Bytes of the NumPy arrays in ``obj`` (nested dicts and lists): the size of a binary answer."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(array_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(array_bytes(v) for v in obj)
    return 0


async def encoded_off_loop(request: Request, content: Any, headers: dict[str, str] | None = None) -> Response:
    """:func:`encoded`, in a worker thread unless it is small MessagePack: megabytes of JSON must
    not stall keepalives and health."""
    media = response_media(request)
    if media == codec.MSGPACK and array_bytes(content) < INLINE_BYTES:
        data = codec.encode(content, media)
    else:
        data = await run_in_threadpool(codec.encode, content, media)
    return Response(data, media_type=media, headers=headers)


def after_sent(fn: Callable[[], None]) -> BackgroundTask:
    """A response's background task calling ``fn()`` once the answer has been sent, on the event loop
    (Starlette would hop to a thread for a plain function): for ``fn`` that only queues work elsewhere."""

    async def call() -> None:
        fn()

    return BackgroundTask(call)
