"""``Idempotency-Key`` on writes: a retried key returns the first result, applied once.

The cache remembers, per (device, operation, key), a fingerprint of the request body and the
result it produced. A retry with the same key and the same body gets the stored result
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


class IdempotencyCache:
    """Memory of write results keyed by ``Idempotency-Key``, bounded in entries and in bytes
    (oldest dropped first): a key is honoured at least until ``capacity`` newer writes or
    ``max_bytes`` of newer results have been stored."""

    def __init__(self, capacity: int, max_bytes: int = 256 * 2**20) -> None:
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str, str], tuple[str, Any, int]] = OrderedDict()

    @staticmethod
    def fingerprint(body: bytes) -> str:
        return hashlib.sha256(body).hexdigest()

    def lookup(self, device_id: str, operation: str, key: str, fingerprint: str) -> Any | None:
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

    def store(self, device_id: str, operation: str, key: str, fingerprint: str, result: Any) -> None:
        size = result_bytes(result)
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
