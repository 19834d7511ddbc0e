"""The client: typed errors from problem details, retries with backoff, idempotency keys kept across retries.

A flaky network is not ours to run, so the retry tests put a failing transport (httpx's
MockTransport) in front of the real in-process app; everything else is the real server.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from trainer_client.client import DeviceClient
from trainer_client.errors import (
    InvalidInput,
    LeaseConflict,
    LeaseRequired,
    NotFound,
    TransportError,
)


def test_problems_become_typed_exceptions(inprocess: DeviceClient):
    with pytest.raises(NotFound) as exc:
        inprocess.describe("nope")
    assert exc.value.status == 404 and exc.value.field == "device_id"
    with inprocess.lease("crossbar-digits") as lease:
        with pytest.raises(InvalidInput) as exc:
            lease.forward(np.zeros((2, 3)))
        assert exc.value.field == "x" and "(batch, 64)" in exc.value.detail
        with pytest.raises(LeaseRequired):
            inprocess.forward("crossbar-digits", "", np.zeros((1, 64)))
        with pytest.raises(LeaseConflict):
            inprocess.forward("crossbar-digits", "forged", np.zeros((1, 64)))


class Flaky(httpx.BaseTransport):
    """Fails the first ``n`` requests (connection refused, or a 503), then passes them on."""

    def __init__(self, inner: httpx.BaseTransport, n: int, mode: str) -> None:
        self.inner, self.n, self.mode = inner, n, mode
        self.seen: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if len(self.seen) <= self.n:
            if self.mode == "connect":
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(503, headers={"Retry-After": "0", "content-type": "application/problem+json"},
                                  json={"type": "about:blank", "title": "Device unavailable", "status": 503,
                                        "detail": "busy"})
        return self.inner.handle_request(request)


@pytest.mark.parametrize("mode", ["connect", "503"])
def test_retries_keep_the_idempotency_key(app_client: TestClient, mode: str):
    flaky = Flaky(app_client._transport, n=2, mode=mode)  # noqa: SLF001
    with DeviceClient("http://testserver", transport=flaky, backoff_s=0.001) as client:
        with client.lease("crossbar-digits-ideal", keepalive=False) as lease:
            flaky.seen.clear()
            flaky.n = 2
            lease.update({"b1": np.full(10, 0.01)})
            keys = {r.headers.get("Idempotency-Key") for r in flaky.seen}
            assert len(flaky.seen) == 3 and len(keys) == 1 and None not in keys
            np.testing.assert_allclose(lease.read_weights()["weights"]["b1"], 0.01, rtol=1e-6)


def test_gives_up_after_the_retries(app_client: TestClient):
    flaky = Flaky(app_client._transport, n=100, mode="connect")  # noqa: SLF001
    with DeviceClient("http://testserver", transport=flaky, retries=2, backoff_s=0.001) as client:
        with pytest.raises(TransportError):
            client.health()
    assert len(flaky.seen) == 3


def test_unreachable_server_is_a_transport_error():
    from trainer_client.local_server import free_port

    with DeviceClient(f"http://127.0.0.1:{free_port()}", retries=1, backoff_s=0.001) as client:
        with pytest.raises(TransportError):
            client.health()


def test_json_and_msgpack_give_the_same_answers(client: DeviceClient, json_client: DeviceClient):
    x = np.random.default_rng(0).uniform(0, 1, (4, 64))
    with client.lease("crossbar-digits-ideal") as lease:
        lease.program({"W0": np.full((256, 64), 0.01)})
        binary = lease.forward(x)
        text = json_client.forward("crossbar-digits-ideal", lease.token, x)
    assert isinstance(text["outputs"][0], np.ndarray)
    for a, b in zip(binary["outputs"], text["outputs"]):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-6)


class DropsAnswer(httpx.BaseTransport):
    """Passes the request to the app, then loses the answer once (a read timeout)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner, self.calls, self.dropped = inner, 0, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        response = self.inner.handle_request(request)
        if not self.dropped and request.url.path.endswith(("/relax", "/weights:update")):
            self.dropped = True
            response.read()
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


def test_a_lost_answer_is_resent_and_replayed_not_measured_twice(app_client: TestClient):
    transport = DropsAnswer(app_client._transport)  # noqa: SLF001
    with DeviceClient("http://testserver", transport=transport, backoff_s=0.001) as client:
        with client.lease("crossbar-digits-ideal", keepalive=False) as lease:
            lease.program({"b1": np.zeros(10)})
            before = transport.calls
            # relax carries an Idempotency-Key too: resent, and the server replays the first measurement
            lease.relax(np.zeros((1, 64)))
            assert transport.calls == before + 2 and client.last_replayed
            metrics = app_client.get("/metrics").text
            assert 'spinhil_device_operations_total{device="crossbar-digits-ideal",operation="relax"} 1.0' in metrics
            lease.update({"b1": np.full(10, 0.02)})  # resent with its key, applied once
            np.testing.assert_allclose(lease.read_weights()["weights"]["b1"], 0.02, rtol=1e-6)
