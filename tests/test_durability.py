"""Durable state: programmed weights survive restarts and ``kill -9`` bit for bit, writes apply once."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from device_server.durable import DurableDevices
from device_server.lab import build_lab, load_lab
from device_server.store import StateMismatch, Store
from tests.conftest import SMALL_LAB, make_keys, write_lab
from trainer_client.client import DeviceClient
from trainer_client.errors import LeaseConflict
from trainer_client.local_server import LocalServer, free_port

DEVICE = "chip"


def _weights(driver) -> dict[str, np.ndarray]:
    return driver.read_weights().arrays["weights"]


def _persisted_weights(state_dir, lab_path, device_id: str = DEVICE) -> dict[str, np.ndarray]:
    """What a restarted server would hold: the state database read by a fresh copy of the lab."""
    store = Store.open(state_dir)
    try:
        lab = load_lab(lab_path)
        DurableDevices(store, lab)
        return _weights(lab.devices[device_id])
    finally:
        store.close()


def test_restore_is_bit_for_bit_through_journal_and_snapshots(tmp_path):
    text = write_lab(tmp_path / "lab.toml", SMALL_LAB).read_text()
    rng = np.random.default_rng(7)
    store = Store.open(tmp_path / "state")
    lab = build_lab(text, "test")
    durable = DurableDevices(store, lab)
    chip = lab.devices[DEVICE]
    snapshots = 0
    for i in range(12):  # enough writes for the journal to outgrow a snapshot several times
        if i % 3 == 2:
            result = chip.update({"W0": rng.uniform(-0.05, 0.05, (12, 16))})
        else:
            result = chip.program({"W0": rng.uniform(-0.3, 0.3, (12, 16)), "b1": rng.uniform(-0.2, 0.2, 4)})
        compacting = durable.journals[DEVICE].due_for_compaction()
        durable.persist_write(DEVICE, chip, "program", f"key-{i}", "k", "fp", {"achieved": result.arrays["achieved"]})
        snapshots += compacting
    assert snapshots >= 2
    store.close()

    again = Store.open(tmp_path / "state")
    fresh = build_lab(text, "test")
    DurableDevices(again, fresh)
    restored, original = fresh.devices[DEVICE], chip
    for name, w in _weights(original).items():
        np.testing.assert_array_equal(_weights(restored)[name], w)
    for name, a in original.export_state().items():
        assert restored.export_state()[name].tobytes() == a.tobytes(), name
    assert fresh.devices["chip-ideal"].export_state()["x0.g"].tobytes() == \
        build_lab(text, "t").devices["chip-ideal"].export_state()["x0.g"].tobytes()  # never written: fresh
    # the stored answer of a write replays after the restart, and a reused key with another body is refused
    assert DurableDevices(again, build_lab(text, "t")).recall(DEVICE, "program", "key-11", "fp") is not None
    with pytest.raises(ValueError):
        DurableDevices(again, build_lab(text, "t")).recall(DEVICE, "program", "key-11", "other")
    again.close()

    # the same state directory with a lab that builds the chip differently is refused, not mixed
    other = text.replace("seed = 3", "seed = 4")
    store = Store.open(tmp_path / "state")
    with pytest.raises(StateMismatch, match="chip"):
        DurableDevices(store, build_lab(other, "changed"))
    store.close()


class Writer(threading.Thread):
    """A trainer streaming programming writes (absolute and incremental, noisy device), with a
    measurement between writes; it rides out server crashes with its client's retries."""

    def __init__(self, url: str, key: str, seed: int = 0) -> None:
        super().__init__(daemon=True)
        self.client = DeviceClient(url, api_key=key, retries=80, backoff_s=0.02, max_backoff_s=0.25, timeout_s=20)
        self.rng = np.random.default_rng(seed)
        self.acked: list[dict[str, np.ndarray]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.final: dict[str, np.ndarray] | None = None

    def run(self) -> None:
        try:
            x = self.rng.uniform(0, 1, (8, 16))
            with self.client.lease(DEVICE, ttl_s=60, holder="trainer") as lease:
                i = 0
                while not self.stop.is_set():
                    if i % 2 == 0:
                        out = lease.program({"W0": self.rng.uniform(-0.3, 0.3, (12, 16)),
                                             "b0": self.rng.uniform(-0.3, 0.3, 12)})
                    else:
                        out = lease.update({"W0": self.rng.uniform(-0.1, 0.1, (12, 16)),
                                            "b0": self.rng.uniform(-0.1, 0.1, 12)})
                    self.acked.append(out["achieved"])
                    lease.relax(x, steps=5)
                    i += 1
                self.final = lease.read_weights()["weights"]
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.client.close()


def _index_of(state: dict[str, np.ndarray], acked: list[dict[str, np.ndarray]], candidates: range) -> int | None:
    for j in candidates:
        if 0 <= j < len(acked) and all(np.array_equal(state[n], acked[j][n]) for n in ("W0", "b0")):
            return j
    return None


def test_kill_9_during_a_stream_of_writes(tmp_path):
    """20 crashes: every acknowledged write is there bit for bit, an unacknowledged one is wholly
    there or wholly absent (and a retry of one that was there replays, never re-applies), and the
    trainer finishes its run."""
    trials = 20
    lab_path = write_lab(tmp_path / "lab.toml", SMALL_LAB)
    state = tmp_path / "state"
    key = make_keys(state, {"trainer": "user"})["trainer"]
    server = LocalServer(lab=lab_path, state_dir=state, port=free_port(), log_path=tmp_path / "server.log")
    rng = np.random.default_rng(2026)
    url = server.start()
    writer = Writer(url, key)
    writer.start()
    in_flight_kept = 0
    try:
        for trial in range(trials):
            start = len(writer.acked)
            deadline = time.monotonic() + 30
            while len(writer.acked) < start + 2 and writer.error is None:  # the trainer is writing again
                assert time.monotonic() < deadline, f"trial {trial}: the trainer made no progress"
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.05))
            server.kill()
            last_acked = len(writer.acked) - 1
            persisted = _persisted_weights(state, lab_path)
            j = _index_of(persisted, writer.acked, range(last_acked, last_acked + 1))
            if j is None:  # not the last acknowledged state: it must be the whole next write
                server.start()
                deadline = time.monotonic() + 30
                while len(writer.acked) <= last_acked + 1 and writer.error is None:
                    assert time.monotonic() < deadline
                    time.sleep(0.005)
                j = _index_of(persisted, writer.acked, range(last_acked + 1, last_acked + 2))
                assert j is not None, f"trial {trial}: state after the crash is neither write {last_acked} " \
                                      f"(acknowledged) nor write {last_acked + 1} whole"
                in_flight_kept += 1
            else:
                server.start()
        writer.stop.set()
        writer.join(60)
        assert writer.error is None, repr(writer.error)
        assert writer.final is not None
        for name in ("W0", "b0"):
            np.testing.assert_array_equal(writer.final[name], writer.acked[-1][name])
    finally:
        writer.stop.set()
        server.stop()
    server.kill()
    for name in ("W0", "b0"):  # and after the last, graceful, stop
        np.testing.assert_array_equal(_persisted_weights(state, lab_path)[name], writer.acked[-1][name])
    print(f"{trials} kills, {len(writer.acked)} acknowledged writes, {in_flight_kept} unacknowledged writes "
          "found whole after the crash and replayed")


def test_leases_queue_keys_and_fencing_survive_a_crash(tmp_path):
    lab_path = write_lab(tmp_path / "lab.toml", SMALL_LAB)
    state = tmp_path / "state"
    keys = make_keys(state, {"alice": "user", "bob": "user"})
    server = LocalServer(lab=lab_path, state_dir=state, port=free_port(), log_path=tmp_path / "server.log")
    url = server.start()
    try:
        alice, bob = DeviceClient(url, api_key=keys["alice"]), DeviceClient(url, api_key=keys["bob"])
        held = alice.lease(DEVICE, ttl_s=30, keepalive=False)
        ticket = bob.request("POST", f"/v1/devices/{DEVICE}/leases", {"ttl_s": 30, "queue": True}, write=True)
        assert ticket["position"] == 1
        take = {"Idempotency-Key": "take-ideal-once"}
        before = alice.request("POST", "/v1/devices/chip-ideal/leases", {"ttl_s": 30}, headers=take, write=True)
        server.kill()
        server.start()
        # the answer to that take was "lost": its retry replays the same lease, with a new token
        # (only the old one's hash was stored), and the old token is no longer good
        after = alice.request("POST", "/v1/devices/chip-ideal/leases", {"ttl_s": 30}, headers=take, write=True)
        assert alice.last_replayed and after["lease_id"] == before["lease_id"] and after["token"] != before["token"]
        alice.forward("chip-ideal", after["token"], np.zeros((1, 16)), fencing=after["fencing"])
        with pytest.raises(LeaseConflict):
            alice.forward("chip-ideal", before["token"], np.zeros((1, 16)))
        held.forward(np.zeros((1, 16)))  # the same token works after the crash
        again = bob.request("GET", f"/v1/queue/{ticket['ticket_id']}")
        assert (again["state"], again["position"]) == ("waiting", 1)
        held.release()
        granted = bob.request("GET", f"/v1/queue/{ticket['ticket_id']}")
        assert granted["state"] == "granted" and granted["lease"]["fencing"] == held.fencing + 1
        bob.forward(DEVICE, granted["lease"]["token"], np.zeros((1, 16)), fencing=granted["lease"]["fencing"])
        alice.close()
        bob.close()
    finally:
        server.stop()


def test_test_junction_states_written_by_a_probe_survive_kill_9(tmp_path):
    """A probe's pulses switch test junctions (non-volatile MTJs): once answered, the states they left
    are on disk, so after ``kill -9`` a read-only probe (0 V, 0.1 ns) measures them unchanged."""
    lab_path = write_lab(tmp_path / "lab.toml", SMALL_LAB)
    server = LocalServer(lab=lab_path, state_dir=tmp_path / "state", port=free_port(), extra_args=["--open"],
                         log_path=tmp_path / "server.log")
    rows = 64
    # every other junction pushed to AP far above I_c0 (switches with certainty), the rest left in P
    v = np.where(np.arange(rows) % 2 == 0, 0.9, 0.0)[:, None]
    look = {"v_v": np.zeros((rows, 1)), "t_s": np.full((rows, 1), 1e-10)}  # a read that disturbs nothing
    try:
        with DeviceClient(server.start(), retries=0) as client, client.lease(DEVICE) as lease:
            before = lease.probe("junction", **look)["outputs"]["r_read_ohm"][:, 0]
            lease.probe("junction", v_v=v, t_s=np.full((rows, 1), 100e-9))
            after = lease.probe("junction", **look)["outputs"]["r_read_ohm"][:, 0]
        assert np.all(after[::2] > 1.5 * before[::2]) and np.allclose(after[1::2], before[1::2], rtol=0.05)
        server.kill()
        with DeviceClient(server.start(), retries=0) as client, client.lease(DEVICE) as lease:
            again = lease.probe("junction", **look)["outputs"]["r_read_ohm"][:, 0]
        # the junctions' states came back (read noise 0.5 %: far below the AP/P contrast of ~2)
        assert np.allclose(again, after, rtol=0.05), (again[:4], after[:4])
    finally:
        server.kill()
