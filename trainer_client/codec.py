"""The wire codec of the SpinHIL HTTP API: one encoding of arrays for both sides.

Two media types carry the same bodies:

- ``application/msgpack`` (the client's default): a MessagePack map whose arrays are maps
  ``{"dtype": "<f4", "shape": [128, 784], "data": <bin, C order>}`` — no text round trip, a
  copy-free decode into NumPy;
- ``application/json``: arrays as nested lists of numbers, for curl and other languages.

The format belongs to the API contract, so it lives here on the client's side (which must
never import the server) and the server imports it: there is exactly one codec.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
import numpy as np

MSGPACK = "application/msgpack"
JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
#: Media types accepted as MessagePack (the registered one and two common aliases).
MSGPACK_TYPES = frozenset({MSGPACK, "application/x-msgpack", "application/vnd.msgpack"})
JSON_TYPES = frozenset({JSON, PROBLEM_JSON})
#: Array keys of the binary encoding.
ARRAY_KEYS = frozenset({"dtype", "shape", "data"})


class CodecError(ValueError):
    """A body that cannot be decoded (malformed MessagePack or JSON, a broken array map)."""


def media_type(content_type: str | None) -> str:
    """The bare, lower-case media type of a ``Content-Type`` header (parameters dropped)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_msgpack(content_type: str | None) -> bool:
    return media_type(content_type) in MSGPACK_TYPES


def is_json(content_type: str | None) -> bool:
    return media_type(content_type) in JSON_TYPES


def _to_msgpack(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)  # (at least one dimension: the shape sent is the array's own)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"cannot encode an array of dtype {arr.dtype}")
        # a memoryview is packed as bin without an intermediate bytes copy
        data = memoryview(arr.reshape(-1)).cast("B") if arr.size else b""
        return {"dtype": arr.dtype.str, "shape": list(obj.shape), "data": data}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__}")


#: The dtypes named in bodies so far, by the string sent: a training step decodes about twenty arrays
#: of three or four dtypes, and a dict lookup is a fraction of building a dtype from its name.
_DTYPES: dict[str, np.dtype] = {}


def _from_msgpack_map(d: dict[Any, Any]) -> Any:
    # called for every map of a body (a dict already: cheaper than pairs), so the common case stays short
    if len(d) == 3 and d.keys() == ARRAY_KEYS and isinstance(d["data"], (bytes, bytearray, memoryview)):
        shape = d["shape"]
        # MessagePack integers decode as exact ints (``type(True) is bool``, not int: refused as before)
        if type(shape) is not list or not all(type(n) is int and n >= 0 for n in shape):
            raise CodecError(f"broken array map: shape must be a list of non-negative integers, got {shape!r}")
        name = d["dtype"]
        dtype = _DTYPES.get(name) if type(name) is str else None
        if dtype is None:
            try:
                dtype = np.dtype(name)
            except (TypeError, ValueError) as exc:
                raise CodecError(f"broken array map: unknown dtype {name!r}") from exc
            if type(name) is str and len(_DTYPES) < 64:  # bounded: a client cannot grow it without end
                _DTYPES[name] = dtype
        if math.prod(shape) * dtype.itemsize != len(d["data"]) or dtype.itemsize == 0:
            raise CodecError(f"broken array map: {len(d['data'])} bytes do not hold shape {shape} of {dtype}")
        return np.frombuffer(d["data"], dtype=dtype).reshape(shape)
    return d


def _to_json(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def encode(obj: Any, content_type: str = MSGPACK) -> bytes:
    """Encode ``obj`` (dicts, lists, numbers, strings, NumPy arrays) as ``content_type``."""
    if is_msgpack(content_type):
        return msgpack.packb(obj, default=_to_msgpack, use_bin_type=True)
    if is_json(content_type):
        return json.dumps(obj, default=_to_json, separators=(",", ":"), allow_nan=False).encode()
    raise CodecError(f"unsupported media type {content_type!r}")


def decode(body: bytes, content_type: str = MSGPACK) -> Any:
    """Decode a body; arrays come back as read-only NumPy views (MessagePack) or lists (JSON)."""
    try:
        if is_msgpack(content_type):
            return msgpack.unpackb(body, raw=False, object_hook=_from_msgpack_map, strict_map_key=False)
        if is_json(content_type):
            return json.loads(body)
    except CodecError:
        raise
    except (ValueError, TypeError, RecursionError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError) as exc:
        raise CodecError(f"malformed {media_type(content_type)} body: {exc}") from exc
    raise CodecError(f"unsupported media type {content_type!r}")
