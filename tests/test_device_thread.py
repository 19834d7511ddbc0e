"""A device's own thread: its operations one at a time, and ``Driver.idle`` after each answer.

The server queues ``idle()`` on the device's thread once an operation's answer has been sent: a
driver may use it to draw ahead the noise of its next call. These tests serve a crossbar whose
``idle`` records when it ran (and can be made slow or failing) with the real server on a
loopback port, and check from the instrument's side that ``idle`` comes after every executed
operation, never beside one, that a request arriving meanwhile waits for it, and that an error
in it is logged, never answered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from device_server.app import create_app
from device_server.drivers.base import OpResult
from device_server.drivers.emulated import EmulatedCrossbar
from device_server.lab import Lab
from device_server.settings import Settings
from device_server.testing import serve_in_thread
from trainer_client.client import DeviceClient


class IdleRecorder(EmulatedCrossbar):
    """A crossbar that records each forward and idle as ``(what, start, end, thread)``."""

    def __init__(self) -> None:
        super().__init__("idler", {"sizes": [6, 5, 3]}, "default-v1", seed=1)
        self.events: list[tuple[str, float, float, str]] = []
        self.idle_s = 0.0
        self.idle_error: Exception | None = None
        self._busy = threading.Lock()  # held by whatever runs: a second one beside it would fail to take it

    def _record(self, what: str, work) -> object:  # noqa: ANN001
        assert self._busy.acquire(blocking=False), f"{what} ran beside another call"
        start = time.perf_counter()
        try:
            return work()
        finally:
            self.events.append((what, start, time.perf_counter(), threading.current_thread().name))
            self._busy.release()

    def forward(self, x: np.ndarray, layers=None) -> OpResult:  # noqa: ANN001
        return self._record("forward", lambda: super(IdleRecorder, self).forward(x, layers))

    def idle(self) -> None:
        def work() -> None:
            time.sleep(self.idle_s)
            if self.idle_error is not None:
                raise self.idle_error

        self._record("idle", work)

    def kinds(self, timeout_s: float = 5.0, count: int = 0) -> list[str]:
        """What ran, once ``count`` events are in (the last idle may still be on its way)."""
        deadline = time.monotonic() + timeout_s
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return [e[0] for e in self.events]


@pytest.fixture
def served() -> Iterator[tuple[str, IdleRecorder]]:
    driver = IdleRecorder()
    lab = Lab(name="idle", source="test", config_sha256="0" * 64, devices={"idler": driver})
    with serve_in_thread(create_app(Settings(open=True, ephemeral=True), lab)) as url:
        yield url, driver


def test_idle_runs_after_every_answer_on_the_device_thread(served: tuple[str, IdleRecorder]) -> None:
    url, driver = served
    x = np.full((2, 6), 0.5)
    with DeviceClient(url) as client, client.lease("idler", keepalive=False) as lease:
        for _ in range(3):
            lease.forward(x)
        assert driver.kinds(count=6) == ["forward", "idle"] * 3
        lease.read_weights()  # an operation the recorder does not log: idle still follows it
        assert driver.kinds(count=7) == ["forward", "idle"] * 3 + ["idle"]
    threads = {e[3] for e in driver.events}
    assert threads == {"device-idler_0"}  # one thread of the device's own, for operations and idle alike


def test_a_request_arriving_during_idle_waits_for_it(served: tuple[str, IdleRecorder]) -> None:
    url, driver = served
    driver.idle_s = 0.3
    x = np.full((1, 6), 0.5)
    with DeviceClient(url) as client, client.lease("idler", keepalive=False) as lease:
        t0 = time.perf_counter()
        lease.forward(x)
        answered = time.perf_counter() - t0
        lease.forward(x)  # sent while the first one's idle still sleeps
        assert driver.kinds(count=4) == ["forward", "idle", "forward", "idle"]
    first_idle, second = driver.events[1], driver.events[2]
    assert answered < driver.idle_s  # the answer did not wait for idle
    assert second[1] >= first_idle[2]  # the next call started after idle had finished


def test_an_error_in_idle_is_logged_and_never_answered(served: tuple[str, IdleRecorder],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    url, driver = served
    driver.idle_error = RuntimeError("noise pool broken")
    x = np.full((1, 6), 0.5)
    with caplog.at_level(logging.ERROR, logger="device_server"):
        with DeviceClient(url) as client, client.lease("idler", keepalive=False) as lease:
            first = lease.forward(x)
            second = lease.forward(x)  # the device still serves after a failed idle
            assert driver.kinds(count=4) == ["forward", "idle", "forward", "idle"]
    assert first["outputs"][-1].shape == second["outputs"][-1].shape == (1, 3)
    deadline = time.monotonic() + 5
    while "noise pool broken" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "noise pool broken" in caplog.text and "idle" in caplog.text
