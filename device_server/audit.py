"""The audit log: every state-changing call and every refused one, append-only, before the answer.

Recorded: writes of any kind (POST, PUT, PATCH, DELETE), every device operation (a measurement
holds the instrument and costs device time, even when it is a GET), and every call refused for
identity, scope, lease or quota (401, 403, 409, 428, 429). Each record holds who (key id, name,
role), what (method, path, action), on which device and lease (with its fencing number), the
request id and idempotency key, the outcome and status, and the device time and energy spent.

The record is made when the answer's status line is ready and before it is sent. Records of
calls that changed something are committed with an fsync, in a worker thread (the commit stays
off the event loop), before the answer goes out; a device write on a durable server commits its
record in the transaction that makes the write durable (one fsync for both, on the device's
thread), as the record of an answer 200. Those of measurements and refusals — and every
record of a store that is not durable — are queued and committed in batches of
:data:`~device_server.store.AUDIT_BATCH` without an fsync (before any later record, any audit
query, and at shutdown): a measurement costs no commit and no thread hop of its own, and a crash
of the server loses at most the queued records of calls that changed nothing. A training step
pays one fsync for its write and its record, none per phase. Queue long-polls and plain reads are not recorded.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from starlette.types import Message, Scope

from device_server.store import AUDIT_BATCH, Store

#: Statuses that mean "refused": identity, scope, lease, quota.
REFUSED = frozenset({401, 403, 409, 428, 429})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Device operations that only measure: recorded without an fsync (see Store.append_audit).
MEASUREMENTS = frozenset({"forward", "relax", "read_weights"})


def outcome_of(status: int, replayed: bool) -> str:
    if status < 400:
        return "replayed" if replayed else "ok"
    return "refused" if status in REFUSED else "error"


class AuditTrail:
    """Makes the record of each answered call and commits it as the module docstring says; called by
    :class:`~device_server.edge.EdgeMiddleware`, reading what the route left in ``scope['state']``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def answered(self, scope: Scope, message: Message) -> None:
        """Record the call whose answer ``message`` (``http.response.start``) is about to go out."""
        if message["status"] < 400 and scope.get("state", {}).get("audit", {}).get("committed"):
            return  # a durable write: its record was committed with the write (Store.audit_in)
        record = record_of(scope, message)
        if record is None:
            return
        # a call that changed something waits for the disk; a measurement or a refusal need
        # not, and neither does anything on a store that is not durable: queued, committed in batches
        changed = record["outcome"] in ("ok", "replayed") and record["action"] not in MEASUREMENTS
        if changed and self.store.durable:
            await anyio.to_thread.run_sync(self.store.append_audit, record, True)
        elif self.store.queue_audit(record) >= AUDIT_BATCH:
            await anyio.to_thread.run_sync(self.store.flush_audit)

    async def failed(self, scope: Scope) -> None:
        """Record a call that raised before any answer (answered 500 by the outermost middleware):
        the calls most in need of a record are not the ones missing."""
        record = record_of(scope, {"status": 500, "headers": []}, always=True)
        if record is not None:
            await anyio.to_thread.run_sync(self.store.append_audit, record, True)


def record_of(scope: Scope, message: Message, always: bool = False) -> dict[str, Any] | None:
    """The audit record of the call ``scope`` answered by ``message`` (its status and headers); None for a
    call that is not recorded (a plain read). ``always``: record it whatever it was."""
    state = scope.get("state", {})
    status = int(message["status"])
    route = scope.get("route")
    action = getattr(route, "name", None)
    info: dict[str, Any] = state.get("audit", {})
    operation = "device_time_s" in info
    if not always and scope["method"] not in WRITE_METHODS and status not in REFUSED and not operation:
        return None
    headers = dict(scope.get("headers") or [])
    principal = state.get("principal")
    replayed = any(k.lower() == b"idempotent-replayed" for k, _ in message.get("headers", []))
    params = scope.get("path_params") or {}
    return {
        "at": time.time(),
        "request_id": state.get("request_id"),
        "key_id": principal.key_id if principal else state.get("claimed_key_id"),
        "key_name": principal.name if principal else None,
        "role": principal.role if principal else None,
        "method": scope["method"],
        "path": scope.get("path", "")[:500],
        "action": info.get("action", action),
        "device_id": info.get("device_id", params.get("device_id")),
        "lease_id": info.get("lease_id", params.get("lease_id")),
        "fencing": info.get("fencing"),
        "idempotency_key": headers.get(b"idempotency-key", b"").decode("latin-1")[:200] or None,
        "status": status,
        "outcome": outcome_of(status, replayed),
        "detail": info.get("detail") or state.get("problem_detail"),
        "device_time_s": info.get("device_time_s"),
        "energy_j": info.get("energy_j"),
    }
