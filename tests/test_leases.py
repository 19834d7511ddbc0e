"""Simple leases over HTTP: one holder, TTL, keepalive, release, fencing numbers that only grow."""

from __future__ import annotations

import time

import numpy as np
import pytest

from trainer_client.client import DeviceClient
from trainer_client.errors import LeaseConflict, NotFound

DEVICE = "crossbar-digits-ideal"


def test_one_holder_and_release(client: DeviceClient):
    with client.lease(DEVICE, holder="alice") as first:
        listed = {d["id"]: d for d in client.devices()}
        assert listed[DEVICE]["status"] == "leased" and listed[DEVICE]["holder"] == "alice"
        with pytest.raises(LeaseConflict) as exc:
            client.lease(DEVICE, holder="bob")
        assert "alice" in exc.value.detail
    second = client.lease(DEVICE, holder="bob")
    try:
        assert second.fencing > first.fencing
        with pytest.raises(LeaseConflict):  # alice's token is stale now
            client.forward(DEVICE, first.token, np.zeros((1, 64)))
        second.forward(np.zeros((1, 64)))
    finally:
        second.release()
    assert {d["id"]: d for d in client.devices()}[DEVICE]["status"] == "idle"


def test_lease_expires_without_keepalive_and_keepalive_extends(client: DeviceClient):
    lease = client.lease(DEVICE, ttl_s=2.0, keepalive=False)
    time.sleep(1.2)
    lease.keepalive()
    time.sleep(1.2)  # 2.4 s after taking it: alive only thanks to the keepalive (margin 0.8 s)
    lease.forward(np.zeros((1, 64)))
    time.sleep(2.2)
    with pytest.raises(LeaseConflict):
        lease.forward(np.zeros((1, 64)))
    with pytest.raises(NotFound):
        lease.keepalive()
    client.lease(DEVICE, ttl_s=5).release()  # the device is free again


def test_background_keepalive_holds_the_lease(client: DeviceClient):
    with client.lease(DEVICE, ttl_s=1.5) as lease:
        time.sleep(3.5)
        lease.forward(np.zeros((1, 64)))
        assert lease.lost is None


def test_a_lost_lease_is_reported_on_the_next_call(client: DeviceClient, server_url: str):
    import httpx

    lease = client.lease(DEVICE, ttl_s=0.9)
    # the lease disappears behind the client's back (as when an admin breaks it)
    assert httpx.delete(f"{server_url}/v1/leases/{lease.lease_id}",
                        headers={"X-Lease-Token": lease.token}).status_code == 200
    deadline = time.monotonic() + 5
    while lease.lost is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(LeaseConflict, match="lost"):
        lease.forward(np.zeros((1, 64)))
    lease.release()  # nothing left to release: no error


def test_release_needs_the_token(client: DeviceClient, server_url: str):
    import httpx

    with client.lease(DEVICE) as lease:
        r = httpx.delete(f"{server_url}/v1/leases/{lease.lease_id}", headers={"X-Lease-Token": "not-it"})
        assert r.status_code == 409
        r = httpx.delete(f"{server_url}/v1/leases/no-such-lease", headers={"X-Lease-Token": lease.token})
        assert r.status_code == 404 and r.json()["field"] == "lease_id"
        r = httpx.post(f"{server_url}/v1/leases/{lease.lease_id}/keepalive")
        assert r.status_code == 428 and r.json()["field"] == "X-Lease-Token"


def test_retried_lease_request_gets_the_same_lease(server_url: str):
    import httpx

    headers = {"Idempotency-Key": "take-once"}
    first = httpx.post(f"{server_url}/v1/devices/{DEVICE}/leases", json={"holder": "carol"}, headers=headers)
    retry = httpx.post(f"{server_url}/v1/devices/{DEVICE}/leases", json={"holder": "carol"}, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json()["lease_id"] == first.json()["lease_id"] and retry.json()["token"] == first.json()["token"]
    other = httpx.post(f"{server_url}/v1/devices/{DEVICE}/leases", json={"holder": "carol"},
                       headers={"Idempotency-Key": "another"})
    assert other.status_code == 409
    lease = first.json()
    assert httpx.delete(f"{server_url}/v1/leases/{lease['lease_id']}",
                        headers={"X-Lease-Token": lease["token"]}).status_code == 200
