"""A retried write with the same Idempotency-Key is applied once (over real HTTP)."""

from __future__ import annotations

import httpx
import numpy as np

from trainer_client import codec
from trainer_client.client import DeviceClient

DEVICE = "crossbar-digits-ideal"


def test_retried_update_is_applied_once(client: DeviceClient, server_url: str):
    with client.lease(DEVICE) as lease:
        lease.program({"b1": np.zeros(10)})
        delta = np.full(10, 0.05)
        body = codec.encode({"deltas": {"b1": delta}}, codec.MSGPACK)
        headers = {"Content-Type": codec.MSGPACK, "Accept": codec.MSGPACK, "X-Lease-Token": lease.token,
                   "Idempotency-Key": "retry-me-1"}
        url = f"{server_url}/v1/devices/{DEVICE}/weights:update"
        first = httpx.post(url, content=body, headers=headers)
        retry = httpx.post(url, content=body, headers=headers)
        assert first.status_code == retry.status_code == 200
        assert retry.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
        assert codec.decode(retry.content, codec.MSGPACK)["report"]["request_id"] == \
            codec.decode(first.content, codec.MSGPACK)["report"]["request_id"]
        np.testing.assert_allclose(lease.read_weights()["weights"]["b1"], delta, rtol=1e-6)  # once, not twice
        # a new key applies again
        third = httpx.post(url, content=body, headers={**headers, "Idempotency-Key": "retry-me-2"})
        assert third.status_code == 200
        np.testing.assert_allclose(lease.read_weights()["weights"]["b1"], 2 * delta, rtol=1e-6)
        # the same key with another body is refused, and nothing is applied
        other = codec.encode({"deltas": {"b1": -delta}}, codec.MSGPACK)
        clash = httpx.post(url, content=other, headers=headers)
        assert clash.status_code == 422 and clash.json()["field"] == "Idempotency-Key"
        np.testing.assert_allclose(lease.read_weights()["weights"]["b1"], 2 * delta, rtol=1e-6)


def test_retried_program_replays_the_first_achieved_weights(client: DeviceClient, server_url: str):
    """default-v1 draws new write noise at each write: a replay must return the first draw, not a new one."""
    rng = np.random.default_rng(0)
    with client.lease("crossbar-digits") as lease:
        target = {"W1": rng.uniform(-0.2, 0.2, (10, 256))}
        body = codec.encode({"weights": target}, codec.MSGPACK)
        headers = {"Content-Type": codec.MSGPACK, "Accept": codec.MSGPACK, "X-Lease-Token": lease.token,
                   "Idempotency-Key": "program-once"}
        url = f"{server_url}/v1/devices/crossbar-digits/weights"
        a = codec.decode(httpx.put(url, content=body, headers=headers).content, codec.MSGPACK)
        b = codec.decode(httpx.put(url, content=body, headers=headers).content, codec.MSGPACK)
        np.testing.assert_array_equal(a["achieved"]["W1"], b["achieved"]["W1"])
        np.testing.assert_array_equal(lease.read_weights()["weights"]["W1"], a["achieved"]["W1"])
