"""Server pieces in isolation: the idempotency memory bound, content negotiation."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from device_server.idempotency import IdempotencyCache
from trainer_client import codec


def test_idempotency_memory_is_bounded_in_bytes():
    cache = IdempotencyCache(capacity=1000, max_bytes=10 * 2**20)
    big = {"achieved": {"W0": np.zeros((512, 784), np.float32)}}  # 1.6 MB each
    for i in range(20):
        cache.store("dev", "program", f"k{i}", "fp", big)
        assert cache.nbytes <= 10 * 2**20
    assert len(cache) == 6
    assert cache.lookup("dev", "program", "k19", "fp") is big  # the newest are kept
    assert cache.lookup("dev", "program", "k0", "fp") is None  # the oldest went first


@pytest.mark.parametrize("accept,media", [
    ("application/msgpack", codec.MSGPACK),
    ("application/json", codec.JSON),
    ("application/msgpack;q=0, application/json", codec.JSON),
    ("application/json;q=0.5, application/x-msgpack;q=0.9", codec.MSGPACK),
    ("text/html", codec.JSON),
])
def test_accept_chooses_the_encoding(app_client: TestClient, accept: str, media: str):
    r = app_client.get("/v1/devices/crossbar-digits/weights", headers={"Accept": accept, "X-Lease-Token": "x"})
    assert r.status_code == 409  # problems are always JSON
    lease = app_client.post("/v1/devices/crossbar-digits/leases", json={}).json()
    r = app_client.get("/v1/devices/crossbar-digits/weights", headers={"Accept": accept, "X-Lease-Token": lease["token"]})
    assert r.status_code == 200 and r.headers["content-type"].startswith(media)
    weights = codec.decode(r.content, r.headers["content-type"])["weights"]
    assert np.asarray(weights["W0"]).shape == (256, 64)


def test_unknown_routes_and_methods_are_problems(app_client: TestClient):
    r = app_client.get("/v1/nowhere")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = app_client.delete("/v1/health")
    assert r.status_code == 405 and r.json()["field"] == "method" and "GET" in r.headers["allow"]
