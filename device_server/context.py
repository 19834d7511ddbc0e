"""Everything one running server holds, built by ``create_app`` and reached through dependencies."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

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
