"""Leases with fencing, a fair FIFO queue per device, quotas, and their durable record.

A lease is taken on a device and answered with a secret ``token`` and a ``fencing`` number that
only grows per device (also across restarts: it is stored). Every operation that touches the
device presents the token (``X-Lease-Token``) and may present the fencing number
(``X-Lease-Fencing``); the server accepts them only if they belong to the device's current,
unexpired lease, so a holder whose lease expired, was released, broken or taken over is refused
even when its requests arrive late (Kleppmann's fencing tokens, "How to do distributed
locking", 2016).

Queue: whoever asks for a held device with ``queue: true`` gets a ticket, served first come,
first served. A ticket is kept by polling it (each poll counts as a keepalive); one not polled
for its TTL lapses, so a dead waiter never blocks the line. When the lease ends (released,
expired, broken), the first live ticket is granted a new lease at once; its holder collects the
token at its next poll, and a waiter that died meanwhile loses the lease within one TTL.

Quotas: a key may have a budget of device-seconds (wall time holding devices). Leases and
keepalives never extend past it; a key with nothing left is refused with 429.

State lives in memory (every operation checks it without touching the disk) and is written
through to the :class:`~device_server.store.Store` on every change; tokens are stored as
SHA-256 hashes only. After a restart the manager reloads live leases, tickets, fencing
counters and usage, so a client's token and ticket stay valid.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device_server.errors import InvalidInput, LeaseConflict, LeaseRequired, NotFound, QuotaExceeded
from device_server.store import Store

#: Ended holds per device used for the wait estimate.
HOLD_HISTORY = 50
#: [s] a quota with less left than this is spent (the two clocks of a hold differ by microseconds).
QUOTA_RESOLUTION_S = 0.01
#: Ended tickets remembered (so a late poll learns what became of its ticket), oldest forgotten first.
ENDED_TICKETS = 10_000


def token_sha256(token: str) -> str:
    """What is stored of a secret (lease token, API key): its SHA-256, never the secret itself."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _same_token(expected_sha256: str, given: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash (non-ASCII safe, never a 500)."""
    return secrets.compare_digest(expected_sha256, token_sha256(given))


@dataclass
class Lease:
    lease_id: str
    device_id: str
    token_sha256: str
    fencing: int
    holder: str
    owner: str  # API key id of the taker ("open" without keys)
    ttl_s: float
    expires_at: float  # on the manager's monotonic clock
    acquired_at: float  # Unix time [s]
    idempotency_key: str | None = None
    token: str | None = None  # plain token, memory only: replayed to a retried take

    def public(self, now: float, wall_now: float, with_token: bool = False) -> dict[str, Any]:
        """The lease as answered over HTTP; the token only to the one who took it."""
        remaining = max(0.0, self.expires_at - now)
        out: dict[str, Any] = {
            "lease_id": self.lease_id,
            "device_id": self.device_id,
            "fencing": self.fencing,
            "holder": self.holder,
            "owner": self.owner,
            "ttl_s": self.ttl_s,
            "expires_in_s": remaining,
            "expires_at": wall_now + remaining,
        }
        if with_token:
            out["token"] = self.token
        return out


@dataclass
class Ticket:
    """A place in a device's queue."""

    ticket_id: str
    device_id: str
    seq: int
    holder: str
    owner: str
    ttl_s: float
    enqueued_at: float  # Unix time [s]
    seen_at: float  # monotonic: last poll
    state: str = "waiting"  # waiting | granted | lapsed | cancelled | refused
    lease_id: str | None = None
    idempotency_key: str | None = None
    detail: str = ""


@dataclass
class QueueStatus:
    ticket: Ticket
    position: int  # 1 = next; 0 once granted
    estimated_wait_s: float
    lease: Lease | None = None


@dataclass
class Taken:
    """The answer to a take: a lease (with its token) or a place in the queue."""

    lease: Lease | None = None
    queued: QueueStatus | None = None
    replayed: bool = False


class LeaseManager:
    """Leases and queues of every device of a lab, safe across threads, written through to a store."""

    def __init__(self, store: Store | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 quota_of: Callable[[str], float | None] | None = None) -> None:
        """``quota_of(owner)``: the owner's device-seconds quota (None: unlimited); by default
        the ``quota_device_s`` of the owner's API key in ``store``."""
        self._clock = clock
        self._wall = wall
        self._store = store
        if quota_of is None:
            quota_of = (lambda owner: (store.key(owner) or {}).get("quota_device_s")) if store else (lambda _: None)
        self._quota_of = quota_of
        self._ended: deque[str] = deque()
        self._lock = threading.Lock()
        self._by_device: dict[str, Lease] = {}
        self._by_id: dict[str, Lease] = {}
        self._fencing: dict[str, int] = {}
        self._queues: dict[str, list[Ticket]] = {}
        self._tickets: dict[str, Ticket] = {}
        self._used: dict[str, float] = {}  # [s] ended holds per owner
        self._holds: dict[str, deque[float]] = {}
        self._seq = 0
        if store is not None:
            self._load(store.load_leasing())

    # ------------------------------------------------------------------ persistence
    def _load(self, saved: dict[str, Any]) -> None:
        now, wall = self._clock(), self._wall()
        self._fencing = dict(saved["fencing"])
        self._used = dict(saved["used"])
        self._holds = {d: deque(h[:HOLD_HISTORY], maxlen=HOLD_HISTORY) for d, h in saved["holds"].items()}
        self._seq = saved["queue_seq"]
        for row in saved["active"]:
            lease = Lease(lease_id=row["lease_id"], device_id=row["device_id"], token_sha256=row["token_sha256"],
                          fencing=row["fencing"], holder=row["holder"], owner=row["owner"], ttl_s=row["ttl_s"],
                          expires_at=now + (row["expires_at"] - wall), acquired_at=row["acquired_at"],
                          idempotency_key=row["idempotency_key"])
            self._by_device[lease.device_id] = lease
            self._by_id[lease.lease_id] = lease
            self._fencing[lease.device_id] = max(self._fencing.get(lease.device_id, 0), lease.fencing)
        for row in saved["tickets"]:
            # a restart is nobody's fault: every waiter gets a fresh TTL to poll again
            t = Ticket(ticket_id=row["ticket_id"], device_id=row["device_id"], seq=row["seq"], holder=row["holder"],
                       owner=row["owner"], ttl_s=row["ttl_s"], enqueued_at=row["enqueued_at"], seen_at=now,
                       state=row["state"], lease_id=row["lease_id"], idempotency_key=row["idempotency_key"])
            self._tickets[t.ticket_id] = t
            if t.state == "waiting":
                self._queues.setdefault(t.device_id, []).append(t)

    def _save_lease(self, lease: Lease, new: bool = False, **end: Any) -> None:
        if self._store is None:
            return
        wall = self._wall() + (lease.expires_at - self._clock())
        row = {"lease_id": lease.lease_id, "device_id": lease.device_id, "fencing": lease.fencing,
               "token_sha256": lease.token_sha256, "holder": lease.holder, "owner": lease.owner,
               "ttl_s": lease.ttl_s, "acquired_at": lease.acquired_at, "expires_at": wall,
               "idempotency_key": lease.idempotency_key, **end}
        self._store.save_lease(row, new)

    def _save_ticket(self, t: Ticket, new: bool = False) -> None:
        if t.state != "waiting":
            self._ended.append(t.ticket_id)
            while len(self._ended) > ENDED_TICKETS:
                self._tickets.pop(self._ended.popleft(), None)
        if self._store is None:
            return
        self._store.save_ticket({"ticket_id": t.ticket_id, "device_id": t.device_id, "seq": t.seq,
                                 "holder": t.holder, "owner": t.owner, "ttl_s": t.ttl_s,
                                 "enqueued_at": t.enqueued_at, "state": t.state, "lease_id": t.lease_id,
                                 "idempotency_key": t.idempotency_key}, new)

    # ------------------------------------------------------------------ bookkeeping
    def now(self) -> float:
        return self._clock()

    def _end(self, lease: Lease, reason: str, broken_reason: str | None = None) -> None:
        wall = self._wall()
        self._by_device.pop(lease.device_id, None)
        self._by_id.pop(lease.lease_id, None)
        ended = min(wall, wall + (lease.expires_at - self._clock()))  # an expired lease ended at its expiry
        held = max(0.0, ended - lease.acquired_at)
        self._used[lease.owner] = self._used.get(lease.owner, 0.0) + held
        self._holds.setdefault(lease.device_id, deque(maxlen=HOLD_HISTORY)).appendleft(held)
        self._save_lease(lease, ended_at=ended, end_reason=reason, broken_reason=broken_reason)

    def _expire(self, now: float) -> None:
        """End leases past their expiry, drop tickets not polled for their TTL, grant free devices."""
        for lease in list(self._by_device.values()):
            if lease.expires_at <= now:
                self._end(lease, "expired")
        for device_id, queue in self._queues.items():
            for t in [t for t in queue if now - t.seen_at > t.ttl_s]:
                queue.remove(t)
                t.state, t.detail = "lapsed", "not polled within its TTL"
                self._save_ticket(t)
            self._promote(device_id, now)

    def _promote(self, device_id: str, now: float) -> None:
        """Grant the device to the first ticket in line whose owner has quota left."""
        queue = self._queues.get(device_id, [])
        while queue and device_id not in self._by_device:
            t = queue.pop(0)
            remaining = self._remaining(t.owner)
            if remaining <= 0:
                t.state, t.detail = "refused", "device-seconds quota spent while waiting"
                self._save_ticket(t)
                continue
            lease = self._new_lease(device_id, t.holder, t.owner, min(t.ttl_s, remaining), now, t.idempotency_key)
            t.state, t.lease_id = "granted", lease.lease_id
            self._save_ticket(t)

    def _new_lease(self, device_id: str, holder: str, owner: str, ttl_s: float, now: float,
                   idempotency_key: str | None) -> Lease:
        fencing = self._fencing.get(device_id, 0) + 1
        self._fencing[device_id] = fencing
        token = secrets.token_urlsafe(24)
        lease = Lease(lease_id=uuid.uuid4().hex, device_id=device_id, token_sha256=token_sha256(token),
                      fencing=fencing, holder=holder, owner=owner, ttl_s=ttl_s, expires_at=now + ttl_s,
                      acquired_at=self._wall(), idempotency_key=idempotency_key, token=token)
        self._by_device[device_id] = lease
        self._by_id[lease.lease_id] = lease
        self._save_lease(lease, new=True)
        return lease

    def _used_s(self, owner: str) -> float:
        wall = self._wall()
        live = sum(wall - lease.acquired_at for lease in self._by_id.values() if lease.owner == owner)
        return self._used.get(owner, 0.0) + live

    def _remaining(self, owner: str) -> float:
        """[s] the owner's quota left; 0 when spent."""
        quota_device_s = self._quota_of(owner)
        if quota_device_s is None:
            return float("inf")
        left = quota_device_s - self._used_s(owner)
        return left if left >= QUOTA_RESOLUTION_S else 0.0

    def _status(self, t: Ticket, now: float) -> QueueStatus:
        if t.state != "waiting":
            return QueueStatus(t, 0, 0.0, self._by_id.get(t.lease_id or ""))
        queue = self._queues.get(t.device_id, [])
        position = queue.index(t) + 1
        holds = self._holds.get(t.device_id)
        current = self._by_device.get(t.device_id)
        mean_hold = sum(holds) / len(holds) if holds else (current.ttl_s if current else t.ttl_s)
        held = self._wall() - current.acquired_at if current else 0.0
        rest = max(mean_hold - held, 0.0) if holds else (max(current.expires_at - now, 0.0) if current else 0.0)
        return QueueStatus(t, position, rest + (position - 1) * mean_hold)

    # ------------------------------------------------------------------ queries
    def current(self, device_id: str) -> Lease | None:
        with self._lock:
            self._expire(self._clock())
            return self._by_device.get(device_id)

    def queue_length(self, device_id: str) -> int:
        with self._lock:
            return len(self._queues.get(device_id, []))

    def used_device_s(self, owner: str) -> float:
        with self._lock:
            return self._used_s(owner)

    # ------------------------------------------------------------------ taking and the queue
    def acquire(self, device_id: str, holder: str, ttl_s: float, owner: str = "open", queue: bool = False,
                idempotency_key: str | None = None) -> Taken:
        """Take the device's lease, or a place in its queue (``queue=True``) when it is held."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            if idempotency_key:
                replay = self._replay(device_id, owner, idempotency_key, now)
                if replay is not None:
                    return replay
            remaining = self._remaining(owner)
            if remaining <= 0:
                raise QuotaExceeded(f"key {owner} has used its {self._quota_of(owner):g} device-seconds",
                                    field="Authorization")
            held = self._by_device.get(device_id)
            waiting = self._queues.get(device_id, [])
            if held is None and not waiting:
                return Taken(lease=self._new_lease(device_id, holder, owner, min(ttl_s, remaining), now,
                                                   idempotency_key))
            if not queue:
                who = f"leased by {held.holder!r} for another {held.expires_at - now:.1f} s" if held else "being handed on"
                raise LeaseConflict(
                    f"device {device_id!r} is {who}, with {len(waiting)} waiting; send queue: true to wait in line",
                    field="device_id",
                    headers={"Retry-After": str(max(1, int((held.expires_at - now) if held else 1) + 1))},
                )
            self._seq += 1
            t = Ticket(ticket_id=uuid.uuid4().hex, device_id=device_id, seq=self._seq, holder=holder, owner=owner,
                       ttl_s=ttl_s, enqueued_at=self._wall(), seen_at=now, idempotency_key=idempotency_key)
            self._queues.setdefault(device_id, []).append(t)
            self._tickets[t.ticket_id] = t
            self._save_ticket(t, new=True)
            return Taken(queued=self._status(t, now))

    def _replay(self, device_id: str, owner: str, key: str, now: float) -> Taken | None:
        """A retried take (its answer was lost): the same lease or ticket, to the same key only."""
        lease = self._by_device.get(device_id)
        if lease is not None and lease.idempotency_key == key and lease.owner == owner:
            if lease.token is None:  # taken before a restart: the plain token is gone, issue a new one
                lease.token = secrets.token_urlsafe(24)
                lease.token_sha256 = token_sha256(lease.token)
                self._save_lease(lease)
            return Taken(lease=lease, replayed=True)
        for t in self._queues.get(device_id, []):
            if t.idempotency_key == key and t.owner == owner:
                t.seen_at = now
                return Taken(queued=self._status(t, now), replayed=True)
        return None

    def poll(self, ticket_id: str, owner: str) -> QueueStatus:
        """A ticket's place (and a keepalive for it); once granted, the lease with its token."""
        with self._lock:
            now = self._clock()
            t = self._tickets.get(ticket_id)
            if t is None or t.owner != owner:
                raise NotFound(f"ticket {ticket_id!r} does not exist", field="ticket_id")
            if t.state == "waiting":
                t.seen_at = now
            self._expire(now)
            status = self._status(t, now)
            if status.lease is not None and status.lease.token is None:
                lease = status.lease  # granted before a restart: issue the token now
                lease.token = secrets.token_urlsafe(24)
                lease.token_sha256 = token_sha256(lease.token)
                self._save_lease(lease)
            return status

    def cancel(self, ticket_id: str, owner: str) -> Ticket:
        with self._lock:
            t = self._tickets.get(ticket_id)
            if t is None or t.owner != owner:
                raise NotFound(f"ticket {ticket_id!r} does not exist", field="ticket_id")
            if t.state == "waiting":
                self._queues[t.device_id].remove(t)
                t.state = "cancelled"
                self._save_ticket(t)
            return t

    # ------------------------------------------------------------------ holding
    def _own(self, lease_id: str, token: str | None) -> Lease:
        if not token:
            raise LeaseRequired("send the lease's token in X-Lease-Token", field="X-Lease-Token")
        lease = self._by_id.get(lease_id)
        if lease is None:
            raise NotFound(f"lease {lease_id!r} does not exist or has ended", field="lease_id")
        if not _same_token(lease.token_sha256, token):
            raise LeaseConflict(f"X-Lease-Token does not belong to lease {lease_id!r}", field="X-Lease-Token")
        return lease

    def keepalive(self, lease_id: str, token: str | None, ttl_s: float | None = None) -> Lease:
        with self._lock:
            now = self._clock()
            self._expire(now)
            lease = self._own(lease_id, token)
            if ttl_s is not None:
                lease.ttl_s = ttl_s
            remaining = self._remaining(lease.owner)
            if remaining <= 0:
                raise QuotaExceeded(f"key {lease.owner} has used its {self._quota_of(lease.owner):g} device-seconds; the lease "
                                    f"ends in {lease.expires_at - now:.1f} s", field="Authorization")
            lease.expires_at = max(lease.expires_at, now + min(lease.ttl_s, remaining))
            self._save_lease(lease)
            return lease

    def release(self, lease_id: str, token: str | None) -> Lease:
        with self._lock:
            now = self._clock()
            self._expire(now)
            lease = self._own(lease_id, token)
            self._end(lease, "released")
            self._promote(lease.device_id, now)
            return lease

    def break_lease(self, lease_id: str, reason: str) -> Lease:
        """End anyone's lease (an admin's act, with its reason recorded); the next in line gets the device."""
        if not reason.strip():
            raise InvalidInput("breaking a lease needs a reason", field="reason")
        with self._lock:
            now = self._clock()
            self._expire(now)
            lease = self._by_id.get(lease_id)
            if lease is None:
                raise NotFound(f"lease {lease_id!r} does not exist or has ended", field="lease_id")
            self._end(lease, "broken", broken_reason=reason)
            self._promote(lease.device_id, now)
            return lease

    def check(self, device_id: str, token: str, fencing: int | None = None) -> Lease:
        """The current lease of ``device_id`` if ``token`` (and ``fencing``, when given) are its own; 409 otherwise."""
        with self._lock:
            self._expire(self._clock())
            lease = self._by_device.get(device_id)
            if lease is None:
                raise LeaseConflict(
                    f"lease token is stale: device {device_id!r} is not leased (expired, released or broken)",
                    field="X-Lease-Token",
                )
            if fencing is not None and fencing != lease.fencing:
                raise LeaseConflict(
                    f"fencing number {fencing} is stale: device {device_id!r} is at fencing {lease.fencing}",
                    field="X-Lease-Fencing",
                )
            if not _same_token(lease.token_sha256, token):
                raise LeaseConflict(
                    f"device {device_id!r} is leased by {lease.holder!r} (fencing {lease.fencing}); "
                    "this lease token is not the current holder's",
                    field="X-Lease-Token",
                )
            return lease


def queue_public(status: QueueStatus, now: float, wall_now: float) -> dict[str, Any]:
    """A ticket as answered over HTTP (with the lease and its token once granted)."""
    t = status.ticket
    out: dict[str, Any] = {"ticket_id": t.ticket_id, "device_id": t.device_id, "holder": t.holder,
                           "state": "ended" if t.state == "granted" and status.lease is None else t.state,
                           "position": status.position,
                           "estimated_wait_s": status.estimated_wait_s, "enqueued_at": t.enqueued_at,
                           "ttl_s": t.ttl_s}
    if t.detail:
        out["detail"] = t.detail
    if status.lease is not None:
        out["lease"] = status.lease.public(now, wall_now, with_token=True)
    return out
