"""``Idempotency-Key`` on writes: a retried key returns the first result, applied once.

The cache remembers, per (device, operation, key), the request body (its fingerprint, compared
byte for byte) and the result it produced. A retry with the same key and the same body gets the stored result
(``Idempotent-Replayed: true``); the same key with a different body is refused (422), since
applying it would silently break the promise. The device lock serialises a device's writes, so
a retry that arrives while the first is still running waits for it and then replays it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from device_server.errors import InvalidInput


def result_bytes(obj: Any) -> int:
    """Approximate memory held by a stored result: its arrays' bytes plus a small overhead per item."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes + 112
    if isinstance(obj, dict):
        return 64 + sum(result_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return 56 + sum(result_bytes(v) for v in obj)
    return 32


class BodyFingerprint:
    """What a request body was, for ``Idempotency-Key`` checks: the body itself, compared byte for
    byte against a stored one (cheaper than hashing megabytes on every request), and its SHA-256
    (``str()``), computed once when first needed — by the durable store, which keeps digests."""

    __slots__ = ("body", "_digest")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._digest: str | None = None

    def __str__(self) -> str:
        if self._digest is None:
            self._digest = hashlib.sha256(self.body).hexdigest()
        return self._digest

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BodyFingerprint):
            return self.body == other.body
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class IdempotencyCache:
    """Memory of write results keyed by ``Idempotency-Key``, bounded in entries and in bytes
    (oldest dropped first): a key is honoured at least until ``capacity`` newer writes or
    ``max_bytes`` of newer results have been stored."""

    def __init__(self, capacity: int, max_bytes: int = 256 * 2**20) -> None:
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str, str], tuple[BodyFingerprint | str, Any, int]] = OrderedDict()

    @staticmethod
    def fingerprint(body: bytes) -> BodyFingerprint:
        return BodyFingerprint(body)

    def lookup(self, device_id: str, operation: str, key: str, fingerprint: BodyFingerprint | str) -> Any | None:
        with self._lock:
            item = self._items.get((device_id, operation, key))
            if item is None:
                return None
            stored_fp, result, _ = item
            if stored_fp != fingerprint:
                raise InvalidInput(
                    f"Idempotency-Key {key!r} was already used for a different {operation} request",
                    field="Idempotency-Key",
                )
            return result

    def store(self, device_id: str, operation: str, key: str, fingerprint: BodyFingerprint | str, result: Any) -> None:
        size = result_bytes(result) + (len(fingerprint.body) if isinstance(fingerprint, BodyFingerprint) else 64)
        with self._lock:
            old = self._items.pop((device_id, operation, key), None)
            if old is not None:
                self._bytes -= old[2]
            self._items[(device_id, operation, key)] = (fingerprint, result, size)
            self._bytes += size
            while len(self._items) > 1 and (len(self._items) > self._capacity or self._bytes > self._max_bytes):
                _, (_, _, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)
