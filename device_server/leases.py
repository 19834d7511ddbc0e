"""Simple leases: one holder per device, a time to live, keepalive, release, a fencing number.

A lease is taken on a device and answered with a secret ``token`` and a ``fencing`` number
that only grows per device. Every operation that touches the device presents the token
(``X-Lease-Token``); the server accepts it only if it belongs to the device's current, unexpired
lease, so a holder whose lease expired — or was released and taken by someone else — is
refused even when its requests arrive late. A client that dies stops its keepalives and its
lease lapses within one TTL. (The queue, identity and durable leases come with the
multi-user issue.)
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device_server.errors import LeaseConflict, LeaseRequired, NotFound


def _same_token(expected: str, given: str) -> bool:
    """Constant-time comparison that also takes non-ASCII header values (as bytes, never a 500)."""
    return secrets.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))


@dataclass
class Lease:
    lease_id: str
    device_id: str
    token: str
    fencing: int
    holder: str
    ttl_s: float
    expires_at: float  # on the manager's monotonic clock

    def public(self, now: float, wall_now: float, with_token: bool = False) -> dict[str, Any]:
        """The lease as answered over HTTP; the token only to the one who took it."""
        remaining = max(0.0, self.expires_at - now)
        out = {
            "lease_id": self.lease_id,
            "device_id": self.device_id,
            "fencing": self.fencing,
            "holder": self.holder,
            "ttl_s": self.ttl_s,
            "expires_in_s": remaining,
            "expires_at": wall_now + remaining,
        }
        if with_token:
            out["token"] = self.token
        return out


class LeaseManager:
    """Leases of every device of a lab, in memory, safe across threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._by_device: dict[str, Lease] = {}
        self._by_id: dict[str, Lease] = {}
        self._fencing: dict[str, int] = {}

    def _expire(self, now: float) -> None:
        for device_id, lease in list(self._by_device.items()):
            if lease.expires_at <= now:
                del self._by_device[device_id]
                self._by_id.pop(lease.lease_id, None)

    def now(self) -> float:
        return self._clock()

    def current(self, device_id: str) -> Lease | None:
        with self._lock:
            self._expire(self._clock())
            return self._by_device.get(device_id)

    def acquire(self, device_id: str, holder: str, ttl_s: float) -> Lease:
        with self._lock:
            now = self._clock()
            self._expire(now)
            held = self._by_device.get(device_id)
            if held is not None:
                raise LeaseConflict(
                    f"device {device_id!r} is leased by {held.holder!r} for another "
                    f"{held.expires_at - now:.1f} s",
                    field="device_id",
                    headers={"Retry-After": str(max(1, int(held.expires_at - now + 0.999)))},
                )
            fencing = self._fencing.get(device_id, 0) + 1
            self._fencing[device_id] = fencing
            lease = Lease(
                lease_id=uuid.uuid4().hex,
                device_id=device_id,
                token=secrets.token_urlsafe(24),
                fencing=fencing,
                holder=holder,
                ttl_s=ttl_s,
                expires_at=now + ttl_s,
            )
            self._by_device[device_id] = lease
            self._by_id[lease.lease_id] = lease
            return lease

    def _own(self, lease_id: str, token: str | None) -> Lease:
        if not token:
            raise LeaseRequired("send the lease's token in X-Lease-Token", field="X-Lease-Token")
        lease = self._by_id.get(lease_id)
        if lease is None:
            raise NotFound(f"lease {lease_id!r} does not exist or has expired", field="lease_id")
        if not _same_token(lease.token, token):
            raise LeaseConflict(f"X-Lease-Token does not belong to lease {lease_id!r}", field="X-Lease-Token")
        return lease

    def keepalive(self, lease_id: str, token: str | None, ttl_s: float | None = None) -> Lease:
        with self._lock:
            now = self._clock()
            self._expire(now)
            lease = self._own(lease_id, token)
            if ttl_s is not None:
                lease.ttl_s = ttl_s
            lease.expires_at = now + lease.ttl_s
            return lease

    def release(self, lease_id: str, token: str | None) -> Lease:
        with self._lock:
            self._expire(self._clock())
            lease = self._own(lease_id, token)
            del self._by_id[lease_id]
            del self._by_device[lease.device_id]
            return lease

    def check(self, device_id: str, token: str) -> Lease:
        """The current lease of ``device_id`` if ``token`` is its token; 409 otherwise."""
        with self._lock:
            self._expire(self._clock())
            lease = self._by_device.get(device_id)
            if lease is None:
                raise LeaseConflict(
                    f"lease token is stale: device {device_id!r} is not leased (expired or released)",
                    field="X-Lease-Token",
                )
            if not _same_token(lease.token, token):
                raise LeaseConflict(
                    f"device {device_id!r} is leased by {lease.holder!r} (fencing {lease.fencing}); "
                    "this lease token is not the current holder's",
                    field="X-Lease-Token",
                )
            return lease
