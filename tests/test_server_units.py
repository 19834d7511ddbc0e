"""Server pieces in isolation: the idempotency memory bound, content negotiation, limits on plain numbers."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from device_server.errors import InvalidInput
from device_server.idempotency import IdempotencyCache
from device_server.validation import enforce
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


@pytest.mark.parametrize("policy", ["reject", "clip"])
@pytest.mark.parametrize("value", [0.5, -2.0, 2.0, 1.0, 1.0000000000000002, float("nan"), float("inf"), 0, 1, 3, -1,
                                   2**53 + 1, -(2**60), True, np.float32(1.5), np.int64(2)])
def test_plain_numbers_meet_limits_as_arrays_do(value, policy):
    """The shortcut for a plain int or float (no 0-d array) answers exactly what the array path does."""
    limits = {"v": {"min": -1, "max": 1.0, "policy": policy}}

    def outcome(v):
        try:
            clipped: dict[str, int] = {}
            out = enforce(limits, "v", v, clipped=clipped)
            return "ok", repr(out), clipped
        except InvalidInput as exc:
            return "refused", str(exc), None

    # a 1-element array takes the array path; its answer, unwrapped, is what the plain number must get
    as_array = outcome(np.asarray([value]))
    got = outcome(value)
    if as_array[0] == "refused":
        assert got == as_array
    else:
        assert got[0] == "ok" and got[2] == as_array[2]
        if not got[2]:
            assert got[1] == repr(value)  # within the limits: the value itself comes back
