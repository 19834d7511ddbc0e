"""OpenAPI: bodies documented in both encodings, problems documented on every route.

Request and response models are registered under ``components/schemas`` twice: as
``<Model>`` (JSON: arrays are ``ArrayJSON`` nested lists) and ``<Model>.msgpack`` (arrays are
``ArrayMsgpack`` maps). Routes that read raw bodies reference them through ``openapi_extra``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from device_server.errors import ProblemModel
from device_server.schemas import (
    ARRAY_JSON_REF,
    ARRAY_JSON_SCHEMA,
    ARRAY_MARKER,
    ARRAY_MSGPACK_REF,
    ARRAY_MSGPACK_SCHEMA,
)
from trainer_client.codec import JSON, MSGPACK, PROBLEM_JSON

_REF = "#/components/schemas/{model}"
_documented: dict[str, type[BaseModel]] = {}


def _refs(model: type[BaseModel]) -> dict[str, Any]:
    _documented[model.__name__] = model
    return {
        JSON: {"schema": {"$ref": _REF.format(model=model.__name__)}},
        MSGPACK: {"schema": {"$ref": _REF.format(model=model.__name__ + ".msgpack")}},
    }


def body_doc(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a route that decodes ``model`` from JSON or MessagePack itself."""
    return {"requestBody": {"required": required, "content": _refs(model)}}


def header_doc(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An optional header parameter, for a route that reads the header itself."""
    return {"name": name, "in": "header", "required": False, "description": description,
            "schema": {**schema, "title": name, "description": description}}


def response_doc(model: type[BaseModel]) -> dict[int, dict[str, Any]]:
    return {200: {"description": "Success (encoding chosen by Accept)", "content": _refs(model)}}


_STATUS_TEXT = {
    400: "Body cannot be decoded", 401: "No key, or an unknown, revoked or expired key",
    403: "The key's role lacks the scope this route requires", 404: "Unknown device, layer or lease",
    409: "Device leased by someone else, or stale lease token", 413: "Body over the size limit",
    415: "Content type not supported", 422: "Invalid input (shape, dtype, NaN/Inf, beyond a limit, unknown field)",
    428: "Lease token missing", 429: "The key's device-seconds quota is spent", 503: "Device faulted or offline",
}


def problem_responses(*statuses: int) -> dict[int, dict[str, Any]]:
    return {
        s: {"description": _STATUS_TEXT[s], "content": {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model="Problem")}}}}
        for s in statuses
    }


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with a generator that adds the two-encoding schemas."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["ArrayJSON"] = ARRAY_JSON_SCHEMA
        components["ArrayMsgpack"] = ARRAY_MSGPACK_SCHEMA
        components["Problem"] = ProblemModel.model_json_schema()
        for name, model in _documented.items():
            js = model.model_json_schema(ref_template=_REF)
            for sub, sub_schema in js.pop("$defs", {}).items():
                components.setdefault(sub, _with_arrays(sub_schema, ARRAY_JSON_REF))
            components[name] = _with_arrays(js, ARRAY_JSON_REF)
            components[name + ".msgpack"] = _to_msgpack(_with_arrays(js, ARRAY_MSGPACK_REF))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _with_arrays(schema: Any, ref: str) -> Any:
    """Replace every array placeholder in ``schema`` by a reference to ``ref``."""
    if isinstance(schema, dict) and ARRAY_MARKER.keys() <= schema.keys():
        rest = {k: v for k, v in schema.items() if k not in ARRAY_MARKER and k != "title"}
        return {"$ref": ref, **rest}
    if isinstance(schema, dict):
        return {k: _with_arrays(v, ref) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_with_arrays(v, ref) for v in schema]
    return schema


def _to_msgpack(schema: dict[str, Any]) -> dict[str, Any]:
    """Point references to other documented bodies at their MessagePack variants."""
    text = json.dumps(schema)
    for name in _documented:
        text = text.replace(f'"{_REF.format(model=name)}"', f'"{_REF.format(model=name + ".msgpack")}"')
    return json.loads(text)
