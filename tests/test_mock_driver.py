"""The recording mock driver: what reached the instrument, seen from the instrument's side.

The server and the client are tested against a crossbar wrapped in
:class:`~device_server.drivers.mock.RecordingDriver`, served by the real server on a loopback
port: a refused request must never reach the driver, a retried write must reach it once, and
an injected fault must come back as a 503 the client retries.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from device_server.app import create_app
from device_server.drivers.base import DeviceFault
from device_server.drivers.mock import RecordingDriver
from device_server.lab import build_lab
from device_server.settings import Settings
from device_server.testing import serve_in_thread
from trainer_client import codec
from trainer_client.client import DeviceClient
from trainer_client.errors import DeviceUnavailable, InvalidInput, LeaseRequired

LAB = """
[[devices]]
id = "rec"
driver = "mock"
wraps = { driver = "mtj-crossbar", topology = { sizes = [6, 5, 3] }, seed = 2 }
"""


@pytest.fixture
def served() -> Iterator[tuple[str, RecordingDriver]]:
    lab = build_lab(LAB, "test")
    mock = lab.devices["rec"]
    assert isinstance(mock, RecordingDriver)
    with serve_in_thread(create_app(Settings(open=True, ephemeral=True), lab)) as url:
        yield url, mock


def test_mock_serves_the_wrapped_device(served: tuple[str, RecordingDriver]) -> None:
    url, mock = served
    info = httpx.get(f"{url}/v1/devices/rec").json()
    assert info["kind"] == "mtj-crossbar" and info["driver"] == "mock" and info["wraps"] == "emulated"
    with DeviceClient(url) as client, client.lease("rec") as lease:
        x = np.full((2, 6), 0.3, np.float32)
        out = lease.forward(x)
        assert out["report"]["driver"] == "mock"
        (call,) = mock.calls_to("forward")
        np.testing.assert_array_equal(call.args["x"], x)
        assert call.result is not None and call.error is None


def test_refused_requests_never_reach_the_driver(served: tuple[str, RecordingDriver]) -> None:
    url, mock = served
    with DeviceClient(url) as client:
        with pytest.raises(LeaseRequired):
            client.forward("rec", "", np.zeros((1, 6), np.float32))
        with client.lease("rec") as lease:
            with pytest.raises(InvalidInput, match="x"):
                lease.forward(np.full((1, 6), 99.0, np.float32))  # beyond the declared read-drive limit
            with pytest.raises(InvalidInput, match="deltas.W0"):
                lease.update({"W0": np.full((5, 6), 10.0, np.float32)})  # beyond the declared step
            with pytest.raises(InvalidInput, match="beta"):
                lease.relax(np.zeros((1, 6), np.float32), beta=1e6, target=np.zeros((1, 3), np.float32))
            # the nudged phases of a driver that keeps the contract's default relax_nudged: checked at the edge
            for layers in ([2], [-1], [1, 0], [0, 0], []):
                with pytest.raises(InvalidInput, match="layers"):
                    lease.relax(np.zeros((1, 6), np.float32), layers=layers)
            with pytest.raises(InvalidInput, match="target"):
                lease.relax(np.zeros((1, 6), np.float32), nudges=[(0.5, 3)])
    assert mock.calls == []


def test_a_replayed_write_reaches_the_driver_once(served: tuple[str, RecordingDriver]) -> None:
    url, mock = served
    with DeviceClient(url) as client, client.lease("rec") as lease:
        body = codec.encode({"weights": {"b0": np.full(5, 0.1, np.float32)}})
        headers = {"Content-Type": codec.MSGPACK, "X-Lease-Token": lease.token, "Idempotency-Key": "once"}
        answers = [httpx.put(f"{url}/v1/devices/rec/weights", content=body, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers.get("Idempotent-Replayed") for a in answers] == [None, "true", "true"]
    assert len(mock.calls_to("program")) == 1


def test_an_injected_fault_is_a_503_the_client_retries(served: tuple[str, RecordingDriver]) -> None:
    url, mock = served
    x = np.full((1, 6), 0.2, np.float32)
    with DeviceClient(url, backoff_s=0.01) as client, client.lease("rec") as lease:
        mock.fail_next("forward", DeviceFault("instrument", "source-measure unit tripped", retry_after_s=1))
        raw = httpx.post(f"{url}/v1/devices/rec/forward", content=codec.encode({"x": x}),
                         headers={"Content-Type": codec.MSGPACK, "X-Lease-Token": lease.token})
        assert raw.status_code == 503 and raw.headers["Retry-After"] == "1"
        assert "tripped" in raw.json()["detail"]
        mock.fail_next("forward", DeviceFault("instrument", "tripped again", retry_after_s=0))
        out = lease.forward(x)  # the client retries the read after the 503
        assert out["outputs"][-1].shape == (1, 3)
        mock.fail_next("forward", DeviceFault("instrument", "offline"))
        no_retry = DeviceClient(url, retries=0)
        with no_retry, pytest.raises(DeviceUnavailable, match="offline"):
            no_retry.forward("rec", lease.token, x)
    calls = mock.calls_to("forward")
    assert [c.injected for c in calls] == [True, True, False, True]


def test_ep_on_a_device_that_takes_no_single_cells_falls_back_to_whole_arrays(served):
    """The mock declares the crossbar's grid but keeps the Driver default for single cells (refused
    with 422 on 'cells'): the trainer's first compact write is refused, it switches to whole
    arrays for good, and every write that reached the instrument was a whole-array program."""
    from trainer_client.protocols.ep import EPConfig, EPNetwork, EPTrainer, program_resolution

    url, mock = served
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    with DeviceClient(url) as client, client.lease("rec") as lease:
        info = lease.describe()
        net = EPNetwork.init([6, 5, 3], info["topology"]["w_max"], rng)
        trainer = EPTrainer(lease, net, EPConfig(batch_size=4, lrs=(0.5, 0.5), t1=5, t2=3), program_resolution(info))
        assert trainer.sparse
        for _ in range(4):
            trainer.step(x, y)
    assert not trainer.sparse
    writes = [c.operation for c in mock.calls if c.operation.startswith("program")]
    assert len(writes) == 4 and set(writes) == {"program"}, writes
