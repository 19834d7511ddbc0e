"""Everything one running server holds, built by ``create_app`` and reached through dependencies."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from device_server.auth import Authenticator
from device_server.drivers.base import Driver
from device_server.durable import DurableDevices
from device_server.errors import NotFound
from device_server.idempotency import IdempotencyCache
from device_server.lab import Lab
from device_server.leases import LeaseManager
from device_server.metrics import Metrics
from device_server.settings import Settings
from device_server.store import Store

T = TypeVar("T")
log = logging.getLogger("device_server")


@dataclass
class ServerContext:
    settings: Settings
    lab: Lab
    store: Store
    leases: LeaseManager
    auth: Authenticator
    durable: DurableDevices
    metrics: Metrics = field(default_factory=Metrics)
    idempotency: IdempotencyCache | None = None
    started_at: float = field(default_factory=time.time)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _threads: dict[str, ThreadPoolExecutor] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, lab: Lab) -> "ServerContext":
        """Open the store, restore every device's programmed state, reload leases and queues."""
        store = Store.open(settings.state_dir, settings.database_url, settings.ephemeral)
        return cls(settings=settings, lab=lab, store=store, leases=LeaseManager(store),
                   auth=Authenticator(store, settings.open), durable=DurableDevices(store, lab))

    def __post_init__(self) -> None:
        if self.idempotency is None:
            self.idempotency = IdempotencyCache(self.settings.idempotency_capacity, self.settings.idempotency_max_bytes)

    def device(self, device_id: str) -> Driver:
        try:
            return self.lab.devices[device_id]
        except KeyError:
            raise NotFound(
                f"device {device_id!r} is not in this lab; devices: {sorted(self.lab.devices)}", field="device_id"
            ) from None

    def lock(self, device_id: str) -> asyncio.Lock:
        """The lock that serialises a device's operations (an instrument does one thing at a time)."""
        lock = self._locks.get(device_id)
        if lock is None:
            lock = self._locks[device_id] = asyncio.Lock()
        return lock

    async def on_device(self, device_id: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the device's own worker thread; the event loop stays free meanwhile.

        One thread per device runs everything that touches it (operations, persisting and rolling
        back its state, :meth:`~device_server.drivers.base.Driver.idle`) one at a time, in the order
        submitted: an instrument does one thing at a time, and work queued after an answer (``idle``)
        is done before the next call starts, also when the caller holds no lock. The hop is
        asyncio's own ``run_in_executor`` onto a thread that is always the same: no cancel scope or
        capacity limiter per call (anyio's thread pool), and the device's arrays stay warm in that
        core's cache. A caller cancelled meanwhile does not stop the call (an instrument cannot be
        stopped half-way); the next one waits for it on the same thread.
        """
        return await asyncio.get_running_loop().run_in_executor(self.device_thread(device_id), fn, *args)

    def after_answer(self, device_id: str, fn: Callable[[], object]) -> None:
        """Queue ``fn()`` (a driver's ``idle``) on the device's thread without waiting for it; an error
        is logged, never answered (the answer has gone out)."""

        def logged() -> None:
            try:
                fn()
            except Exception:
                log.exception("device %s: %s after an answer failed", device_id, getattr(fn, "__qualname__", fn))

        self.device_thread(device_id).submit(logged)

    def device_thread(self, device_id: str) -> ThreadPoolExecutor:
        thread = self._threads.get(device_id)
        if thread is None:
            thread = self._threads[device_id] = ThreadPoolExecutor(1, thread_name_prefix=f"device-{device_id}")
        return thread

    def close(self) -> None:
        """Finish what the devices' threads hold (an idle() may still run), then close the store."""
        for thread in self._threads.values():
            thread.shutdown(wait=True)
        self.store.close()
