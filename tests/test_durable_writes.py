"""How a durable server journals writes: the driver's own list of changed cells, checked against the
whole state; journal entries in the project's codec (older ``.npz`` ones still load); one audit
record committed with each write; stored answers looked up only when one may exist."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from device_server import store as store_module
from device_server.durable import DURABLE_REPLAYS, DurableDevices
from device_server.lab import build_lab
from device_server.store import REPLAY_PRUNE_EVERY, Store
from tests.conftest import SMALL_LAB, write_lab
from trainer_client.client import DeviceClient
from trainer_client.local_server import LocalServer, free_port
from trainer_client.protocols.ep import EPConfig, EPNetwork, EPTrainer, program_resolution

DEVICE = "chip"


def _bits(state: dict[str, np.ndarray]) -> dict[str, bytes]:
    return {name: np.ascontiguousarray(a).tobytes() for name, a in state.items()}


def _copy(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.array(a, copy=True) for name, a in state.items()}


def _writes(chip, rng: np.random.Generator):
    """One of each way a crossbar is written, and calls that write nothing."""
    yield "program", lambda: chip.program({"W0": rng.uniform(-0.3, 0.3, (12, 16)), "b1": rng.uniform(-0.2, 0.2, 4)})
    index = np.sort(rng.choice(12 * 16, 20, replace=False))
    yield "program_cells", lambda: chip.program_cells({"W0": (index, rng.uniform(-0.3, 0.3, 20))})
    yield "update", lambda: chip.update({"W0": rng.uniform(-0.1, 0.1, (12, 16)), "b0": rng.uniform(-0.1, 0.1, 12)})
    yield "probe", lambda: chip.probe("junction", {"v_v": np.full((8, 1), 0.9), "t_s": np.full((8, 1), 1e-7)})
    yield "relax", lambda: chip.relax(rng.uniform(0, 1, (4, 16)), 0.0, None, 5, None)


def test_tracked_changes_are_the_state_changes(tmp_path):
    """After every kind of call, the previous state moved by the driver's list of changed cells is
    the state now, bit for bit; a call that writes nothing lists no cell of the crossbars; after a
    restore the driver says it does not know."""
    chip = build_lab(write_lab(tmp_path / "lab.toml", SMALL_LAB).read_text(), "t").devices[DEVICE]
    rng = np.random.default_rng(11)
    chip.state_changes()  # start an interval
    before = _copy(chip.export_state())
    for _ in range(3):
        for what, call in _writes(chip, rng):
            call()
            changes = chip.state_changes()
            assert changes is not None, what
            moved = _copy(before)
            for name, (index, values) in changes.items():
                moved[name].reshape(-1)[index] = values
            now = chip.export_state()
            assert _bits(moved) == _bits(now), what
            if what == "relax":
                assert not any(name.startswith("x") for name in changes)
            before = _copy(now)
    for _ in range(5):  # more pairs written than the chip has, nobody asking: then flags, still exact
        for what, call in _writes(chip, rng):
            call()
    changes = chip.state_changes()
    for name, (index, values) in changes.items():
        before[name].reshape(-1)[index] = values
    assert _bits(before) == _bits(chip.export_state())
    chip.restore_state(before)
    assert chip.state_changes() is None
    chip.program({"W0": rng.uniform(-0.3, 0.3, (12, 16))})
    assert chip.state_changes() is not None


def _opened(tmp_path, text: str) -> tuple[Store, DurableDevices, dict]:
    """The state directory opened by a fresh copy of the lab, as a (re)starting server does."""
    store = Store.open(tmp_path / "state")
    lab = build_lab(text, "t")
    return store, DurableDevices(store, lab), lab.devices


def _restores(tmp_path, text: str, live) -> DurableDevices:
    """Restart on the state directory: the restored chip holds ``live``'s state bit for bit."""
    store, durable, devices = _opened(tmp_path, text)
    assert _bits(devices[DEVICE].export_state()) == _bits(live.export_state())
    store.close()
    return durable


def _durable_writes(durable: DurableDevices, chip, rng: np.random.Generator, n: int) -> int:
    """``n`` writes made durable as the server does; returns how many wrote a snapshot."""
    snapshots = 0
    for i in range(n):
        result = chip.program({"W0": rng.uniform(-0.3, 0.3, (12, 16)), "b1": rng.uniform(-0.2, 0.2, 4)})
        snapshots += durable.journals[DEVICE].due_for_compaction()
        durable.persist_write(DEVICE, chip, "program", f"key-{i}", "k", "fp", {"achieved": result.arrays["achieved"]})
    return snapshots


def test_a_driver_that_misses_changes_is_caught_at_the_snapshot(tmp_path, caplog):
    """A driver whose list leaves out cells: the snapshot (always the whole state) catches it, the
    device is diffed whole from then on, and a restart still restores every bit."""
    text = write_lab(tmp_path / "lab.toml", SMALL_LAB).read_text()
    store, durable, devices = _opened(tmp_path, text)
    chip = devices[DEVICE]
    honest = chip.state_changes

    def forgetful():
        changes = honest()
        return None if changes is None else {name: (index[1:], values[1:]) for name, (index, values) in changes.items()}

    chip.state_changes = forgetful
    rng = np.random.default_rng(5)
    with caplog.at_level(logging.ERROR, logger="device_server.durable"):
        assert _durable_writes(durable, chip, rng, 12) >= 1
    assert DEVICE in durable.untracked
    assert any("missed changes" in r.getMessage() for r in caplog.records)
    _durable_writes(durable, chip, rng, 3)  # whole diffs from now on
    store.close()
    _restores(tmp_path, text, chip)


def test_a_malformed_list_is_logged_and_the_state_diffed_whole(tmp_path, caplog):
    """A list whose values are of another dtype than the exported array breaks the contract: the
    write still goes through (diffed whole), the device is diffed whole from then on, and a restart
    restores every bit."""
    text = write_lab(tmp_path / "lab.toml", SMALL_LAB).read_text()
    store, durable, devices = _opened(tmp_path, text)
    chip = devices[DEVICE]
    honest = chip.state_changes
    chip.state_changes = lambda: {name: (index, values.astype(np.float32)) for name, (index, values) in honest().items()}
    with caplog.at_level(logging.ERROR, logger="device_server.durable"):
        _durable_writes(durable, chip, np.random.default_rng(9), 4)
    assert DEVICE in durable.untracked and any("malformed" in r.getMessage() for r in caplog.records)
    store.close()
    _restores(tmp_path, text, chip)


def test_an_honest_driver_is_journalled_by_its_list(tmp_path, caplog):
    """The emulated crossbar's list passes every snapshot check; a restart restores every bit, and a
    stored answer is looked up only for a key that may be on disk (the set stays bounded)."""
    text = write_lab(tmp_path / "lab.toml", SMALL_LAB).read_text()
    store, durable, devices = _opened(tmp_path, text)
    with caplog.at_level(logging.ERROR, logger="device_server.durable"):
        assert _durable_writes(durable, devices[DEVICE], np.random.default_rng(6), 12) >= 2
    assert not durable.untracked and not caplog.records
    store.close()
    restarted = _restores(tmp_path, text, devices[DEVICE])
    assert restarted.may_replay(DEVICE, "program", "key-11")
    assert not restarted.may_replay(DEVICE, "program", "never-sent")
    assert restarted.recall(DEVICE, "program", "key-11", "fp") is not None
    for i in range(3 * (DURABLE_REPLAYS + REPLAY_PRUNE_EVERY)):
        restarted._kept((DEVICE, "program", f"more-{i}"))  # noqa: SLF001
    assert len(restarted.replay_keys) == DURABLE_REPLAYS + REPLAY_PRUNE_EVERY


def test_a_write_whose_snapshot_fails_is_rolled_back_and_its_retry_applies_once(tmp_path, monkeypatch):
    """The store fails the commit of a write that was due a snapshot (a full disk): the device goes
    back to the state before that write, the key it carried is not taken as stored, the queued
    audit records it took are queued again, and the retry lands the write once."""
    text = write_lab(tmp_path / "lab.toml", SMALL_LAB).read_text()
    store, durable, devices = _opened(tmp_path, text)
    chip = devices[DEVICE]
    rng = np.random.default_rng(4)
    result = chip.program({"b0": np.zeros(12)})
    durable.persist_write(DEVICE, chip, "program", None, "k", "fp", {"achieved": result.arrays["achieved"]})
    while not durable.journals[DEVICE].due_for_compaction():
        _durable_writes(durable, chip, rng, 1)
    before = _copy(chip.export_state())
    store.queue_audit({"at": 0.0, "method": "POST", "path": "/v1/x", "status": 200, "outcome": "ok", "action": "relax"})
    delta = {"b0": np.full(12, 0.05)}

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(store, "snapshot", disk_full)
        result = chip.update(delta)
        with pytest.raises(OSError):
            durable.persist_write(DEVICE, chip, "update", "retried", "k", "fp", {"achieved": result.arrays["achieved"]},
                                  audit={"at": 1.0, "method": "POST", "path": "/v1/y", "status": 200, "outcome": "ok"})
        durable.rollback(DEVICE, chip)  # what the server does when the write is not acknowledged
    assert _bits(chip.export_state()) == _bits(before)
    assert not durable.may_replay(DEVICE, "update", "retried")
    assert [r["path"] for r in store._audit_queue] == ["/v1/x"]  # noqa: SLF001
    result = chip.update(delta)
    durable.persist_write(DEVICE, chip, "update", "retried", "k", "fp", {"achieved": result.arrays["achieved"]})
    moved = chip.export_state()["x0.target"][:, -1] - before["x0.target"][:, -1]
    # 0.05 is 1.55 grid steps, rounded stochastically to 1 or 2 per cell: once, the mean move is about
    # 0.05; applied twice, every cell would have moved at least 2 steps (0.0645)
    assert np.all(moved > 0) and moved.mean() < 0.06, moved
    store.close()
    _restores(tmp_path, text, chip)


def test_many_small_or_empty_writes_keep_a_bounded_list():
    """Nobody asks for the changes (a server without durable state): thousands of writes that change
    nothing, or a few cells, leave at most a flag per pair, not one array per write."""
    from device_models.crossbar import WRITTEN_ARRAYS, CrossbarNetwork
    from device_models.presets import DEFAULT_V1

    net = CrossbarNetwork([64, 32, 10], DEFAULT_V1, seed=1)
    rng = np.random.default_rng(2)
    w = {"W0": rng.uniform(-0.2, 0.2, (32, 64))}
    net.program(w)
    net.state_changes()  # from here on: a cell or none per write, far fewer than the 2080 pairs
    for i in range(1000):
        net.program(w)  # unchanged targets: nothing written
        net.program_cells({"W0": (np.array([i]), np.array([0.1 if i % 2 else -0.1]))})
    held = net._written[0]  # noqa: SLF001
    assert isinstance(held, np.ndarray) or len(held) <= WRITTEN_ARRAYS
    changes = net.state_changes()
    assert changes is not None and changes["x0.target"][0].size <= 32 * 65


def test_state_directories_written_as_npz_still_restore(tmp_path, monkeypatch):
    """Journal entries and snapshots written as NumPy ``.npz`` (before the codec) restore bit for bit,
    also with entries in the codec written after them."""
    text = write_lab(tmp_path / "lab.toml", SMALL_LAB).read_text()

    def as_npz(arrays):
        import io

        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    store, durable, devices = _opened(tmp_path, text)
    chip = devices[DEVICE]
    rng = np.random.default_rng(8)
    with monkeypatch.context() as m:
        m.setattr(store_module, "_pack", as_npz)
        _durable_writes(durable, chip, rng, 9)
    _durable_writes(durable, chip, rng, 2)
    store.close()
    _restores(tmp_path, text, chip)


def test_a_durable_training_step_leaves_one_audit_record(tmp_path):
    """Over HTTP to a durable server: each EP step (a relax carrying a write) and each write is in the
    audit trail once, answered 200, with its device time; a refused write is there too."""
    lab_path = write_lab(tmp_path / "lab.toml", SMALL_LAB)
    server = LocalServer(lab=lab_path, state_dir=tmp_path / "state", port=free_port(), extra_args=["--open"],
                         log_path=tmp_path / "server.log")
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 1, (8, 16)), np.eye(4)[rng.integers(0, 4, 8)]
    try:
        with DeviceClient(server.start(), retries=0) as client, client.lease(DEVICE) as lease:
            info = lease.describe()
            trainer = EPTrainer(lease, EPNetwork.init([16, 12, 4], info["topology"]["w_max"], rng),
                                EPConfig(beta=0.5, t1=5, t2=3, lrs=[0.1, 0.05], batch_size=8, seed=0),
                                program_resolution(info))
            for _ in range(3):
                trainer.step(x, y)
            lease.program({"W0": rng.uniform(-0.3, 0.3, (12, 16))})
            with pytest.raises(Exception):
                lease.program({"W0": np.full((12, 16), np.nan)})
            records = client.audit(device_id=DEVICE)
    finally:
        server.stop()
    ids = [r["request_id"] for r in records]
    assert len(ids) == len(set(ids)), "a request recorded twice"
    steps = [r for r in records if r["action"] == "program+relax"]
    assert len(steps) >= 2 and all(r["status"] == 200 and r["device_time_s"] > 0 for r in steps)
    programs = [r for r in records if r["action"] == "program"]
    assert [r["status"] for r in programs] == [200, 422]


def test_states_the_codec_does_not_carry_are_packed_as_npz():
    """A driver's state may hold any arrays: a 0-d one keeps its shape, a complex one goes as .npz."""
    state = {"scalar": np.array(3.0), "phase": np.array([1 + 2j, 3 - 1j]), "g": np.arange(4.0)}
    for arrays in (state, {k: v for k, v in state.items() if k != "phase"}):
        back = store_module._unpack(store_module._pack(arrays))  # noqa: SLF001
        assert set(back) == set(arrays)
        for name, a in arrays.items():
            assert back[name].shape == a.shape and back[name].dtype == a.dtype and np.array_equal(back[name], a)
