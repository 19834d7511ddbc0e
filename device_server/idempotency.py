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

from device_server.errors import InvalidInput


class IdempotencyCache:
    """Bounded memory of write results keyed by ``Idempotency-Key`` (oldest dropped first)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str, str], tuple[str, Any]] = OrderedDict()

    @staticmethod
    def fingerprint(body: bytes) -> str:
        return hashlib.sha256(body).hexdigest()

    def lookup(self, device_id: str, operation: str, key: str, fingerprint: str) -> Any | None:
        with self._lock:
            item = self._items.get((device_id, operation, key))
            if item is None:
                return None
            stored_fp, result = item
            if stored_fp != fingerprint:
                raise InvalidInput(
                    f"Idempotency-Key {key!r} was already used for a different {operation} request",
                    field="Idempotency-Key",
                )
            return result

    def store(self, device_id: str, operation: str, key: str, fingerprint: str, result: Any) -> None:
        with self._lock:
            self._items[(device_id, operation, key)] = (fingerprint, result)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
