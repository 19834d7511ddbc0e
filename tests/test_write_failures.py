"""Writes that fail after the instrument did them, keys of two callers, integers out of range.

A durable server (state on disk) in this process, on a loopback port, with a crossbar wrapped
in the recording mock so a test can make the instrument do a write and then lose its answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from device_server.app import create_app
from device_server.drivers.mock import RecordingDriver
from device_server.lab import build_lab
from device_server.settings import Settings
from device_server.testing import serve_in_thread
from tests.conftest import make_keys
from trainer_client import codec
from trainer_client.client import DeviceClient

LAB = """
[[devices]]
id = "rec"
driver = "mock"
wraps = { driver = "mtj-crossbar", topology = { sizes = [6, 5, 3] }, seed = 2 }
"""


def _serve(state_dir: Path, open_: bool) -> tuple[Iterator[str], RecordingDriver]:
    lab = build_lab(LAB, "test")
    app = create_app(Settings(state_dir=state_dir, open=open_), lab)
    return serve_in_thread(app), lab.devices["rec"]  # type: ignore[return-value]


def _put(url: str, token: str, weights: dict, key: str, api_key: str | None = None) -> httpx.Response:
    headers = {"Content-Type": codec.MSGPACK, "Accept": codec.MSGPACK, "X-Lease-Token": token, "Idempotency-Key": key}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return httpx.put(f"{url}/v1/devices/rec/weights", content=codec.encode({"weights": weights}), headers=headers)


def test_a_write_whose_answer_is_lost_is_rolled_back_and_its_retry_applies_once(tmp_path: Path) -> None:
    served, mock = _serve(tmp_path / "state", open_=True)
    first = {"b0": np.full(5, 0.1, np.float32)}
    second = {"b0": np.full(5, -0.2, np.float32)}
    with served as url, DeviceClient(url, retries=0) as client, client.lease("rec") as lease:
        kept = lease.program(first)["achieved"]["b0"]
        mock.fail_after("program", RuntimeError("the bench lost the answer"))
        lost = _put(url, lease.token, second, key="retry-me")
        assert lost.status_code == 500
        np.testing.assert_array_equal(lease.read_weights()["weights"]["b0"], kept)  # rolled back, not half-applied
        again = _put(url, lease.token, second, key="retry-me")  # the retry is applied, once
        assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") is None
        achieved = codec.decode(again.content, again.headers["content-type"])["achieved"]["b0"]
        assert np.all(achieved < 0)
        np.testing.assert_array_equal(lease.read_weights()["weights"]["b0"], achieved)
        records = httpx.get(f"{url}/v1/audit", params={"action": "program"}).json()["records"]
    assert [(r["status"], r["outcome"]) for r in records] == [(200, "ok"), (500, "error"), (200, "ok")]
    assert [c.injected for c in mock.calls_to("program")] == [False, True, False]


def test_the_same_idempotency_key_from_two_callers_is_two_requests(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "state", {"alice": "user", "bob": "user"})
    served, mock = _serve(tmp_path / "state", open_=False)
    weights = {"b0": np.full(5, 0.1, np.float32)}
    with served as url:
        answers = []
        for who in ("alice", "bob"):
            with DeviceClient(url, api_key=keys[who]) as client, client.lease("rec") as lease:
                answers.append(_put(url, lease.token, weights, key="same-key", api_key=keys[who]))
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1].headers.get("Idempotent-Replayed") is None  # bob's write was applied, not alice's answer
    assert len(mock.calls_to("program")) == 2


@pytest.mark.parametrize("huge", [10**30, -1])
def test_integers_out_of_range_are_refused_naming_the_field(tmp_path: Path, huge: int) -> None:
    served, mock = _serve(tmp_path / "state", open_=True)
    with served as url, DeviceClient(url) as client, client.lease("rec") as lease:
        r = httpx.post(f"{url}/v1/devices/rec/forward", content=codec.encode({"x": np.zeros((1, 6), np.float32)}),
                       headers={"Content-Type": codec.MSGPACK, "X-Lease-Token": lease.token,
                                "X-Lease-Fencing": str(huge)})
        assert r.status_code == 422 and r.json()["field"] == "X-Lease-Fencing"
        r = httpx.get(f"{url}/v1/audit", params={"after_id": str(huge)})
        assert r.status_code == 422 and r.json()["field"] == "after_id"
    assert mock.calls_to("forward") == []
