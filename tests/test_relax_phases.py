"""One request per EP batch: nudged phases from the state the chip settled in, writes of single cells,
a write carried by a relax — each the same physics as the calls it replaces."""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from device_models import mtj
from device_models.crossbar import CrossbarNetwork
from device_models.presets import DEFAULT_V1
from device_server.drivers.emulated import EmulatedCrossbar
from device_server.testing.inprocess import InProcessDevice
from tests.conftest import write_lab
from trainer_client.client import DeviceClient
from trainer_client.errors import TransportError
from trainer_client.local_server import LocalServer
from trainer_client.protocols.ep import EPConfig, EPNetwork, EPTrainer, program_resolution

SIZES = [12, 8, 3]


def weights(rng: np.random.Generator, scale: float = 0.4) -> dict[str, np.ndarray]:
    return {"W0": rng.uniform(-scale, scale, (8, 12)), "b0": rng.uniform(-0.2, 0.2, 8),
            "W1": rng.uniform(-scale, scale, (3, 8)), "b1": rng.uniform(-0.2, 0.2, 3)}


def test_nudged_phases_start_from_the_settled_state_and_cost_what_the_separate_phases_cost():
    config = DEFAULT_V1.with_overrides({"read_std": 0.0})  # measured = true states: comparable bit for bit
    rng = np.random.default_rng(0)
    w, x = weights(rng), rng.uniform(0, 1, (5, 12))
    y = np.eye(3)[[0, 1, 2, 0, 1]]
    one, apart = CrossbarNetwork(SIZES, config, seed=4), CrossbarNetwork(SIZES, config, seed=4)
    one.program(w)
    apart.program(w)
    free, nudged, report = one.relax_nudged(x, 0.0, y, 30, None, [(0.5, 10), (-0.5, 10)], layers=[1])
    want_free, r0 = apart.relax(x, 0.0, y, 30)
    plus, r1 = apart.relax(x, 0.5, y, 10, want_free)
    minus, r2 = apart.relax(x, -0.5, y, 10, want_free)
    assert len(free) == 1 and np.array_equal(free[0], want_free[1])
    for got, want in zip(nudged, (plus, minus)):
        assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert report["device_time_s"] == pytest.approx(r0["device_time_s"] + r1["device_time_s"] + r2["device_time_s"],
                                                    rel=1e-12)
    for term in ("read", "neuron"):
        total = sum(r["energy_terms_j"][term] for r in (r0, r1, r2))
        assert report["energy_terms_j"][term] == pytest.approx(total, rel=1e-5)
    # one bus transaction instead of three; every phase digitises its batch
    c = config
    assert report["instrument_time_s"] == pytest.approx(c.t_bus_s + 3 * 5 * c.t_sample_s + report["device_time_s"])
    assert [n["beta"] for n in report["nudges"]] == [0.5, -0.5] and report["steps"] == 30


def test_single_cells_write_as_the_whole_array_would():
    """Noise included: the same pairs rewritten in the same order draw the same programming errors."""
    rng = np.random.default_rng(1)
    w = weights(rng)
    dense, sparse = CrossbarNetwork(SIZES, DEFAULT_V1, seed=7), CrossbarNetwork(SIZES, DEFAULT_V1, seed=7)
    dense.program(w)
    sparse.program(w)
    moved = w["W0"].copy()
    index = np.sort(rng.choice(moved.size, 30, replace=False))
    moved.reshape(-1)[index] += rng.normal(0, 0.2, index.size)
    moved = np.clip(moved, -dense.w_max[0], dense.w_max[0])
    got_dense, rep_dense = dense.program({"W0": moved})
    got_sparse, rep_sparse = sparse.program_cells({"W0": (index, moved.reshape(-1)[index])})
    assert np.array_equal(got_dense["W0"], got_sparse["W0"])
    assert all(np.array_equal(a, b) for a, b in zip(dense.export_state().values(), sparse.export_state().values()))
    for key in ("pairs_written", "pulses", "failures", "energy_j", "device_time_s"):
        assert rep_dense[key] == rep_sparse[key], key
    assert 0 < rep_sparse["pairs_written"] <= index.size


def test_folded_bias_reads_follow_sparse_writes_and_restores():
    """The read matrices (W + L·B, −(C/a)·B) stay what the conductances say after cell-by-cell writes
    and after a restore; the read equals W v + B[v∘(s(v) − 1)] + b."""
    config = DEFAULT_V1.with_overrides({"dtype": "float64"})
    rng = np.random.default_rng(2)
    net = CrossbarNetwork(SIZES, config, seed=3)
    net.program(weights(rng))
    net.program_cells({"W1": (np.array([0, 5, 17]), np.array([0.3, -0.2, 0.1]))})
    clone = CrossbarNetwork(SIZES, config, seed=3)
    clone.restore_state({k: v.copy() for k, v in net.export_state().items()})
    v, u = rng.uniform(0, 1, (4, 8)), rng.uniform(0, 1, (4, 3))

    def excess(a):
        return mtj.ap_bias_excess(a, config.v_read_v, config.tmr0, config.v_h_v)

    for chip in (net, clone):
        xb = chip._xbars[1]  # noqa: SLF001 - the derived matrices are what is under test
        # W and B straight from the conductances, not from anything the writes maintain
        w = (xb.g[0] - xb.g[1])[:, : xb.n_in] / xb.g_unit_s
        b = (xb.g[0] - xb.g[1])[:, xb.n_in] / xb.g_unit_s
        w_ap = xb.ap_weights()
        np.testing.assert_allclose(chip._read_forward(1, v), v @ w.T + excess(v) @ w_ap.T + b,  # noqa: SLF001
                                   rtol=0, atol=1e-13)
        np.testing.assert_allclose(chip._read_transposed(1, u), u @ w + excess(u) @ w_ap,  # noqa: SLF001
                                   rtol=0, atol=1e-13)
    assert np.array_equal(net._xbars[1].read, clone._xbars[1].read)  # noqa: SLF001


def test_one_request_per_batch_trains_exactly_as_a_request_per_phase():
    """EPTrainer with cells and phases in one request against the trainer of one request per phase
    and whole-array writes: the same weights, bit for bit (no read or write noise; the grid, the
    spread, stuck cells and the bias nonlinearity on)."""
    config = EPConfig(batch_size=8, seed=1, t1=20, t2=6)
    quiet = {"read_std": 0.0, "prog_std": 0.0}
    x = np.random.default_rng(5).uniform(0, 1, (64, 12)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.random.default_rng(6).integers(0, 3, 64)]

    class PhaseByPhase:  # a device that offers one phase per call and whole-array writes only
        def __init__(self, driver):
            self.driver = driver

        def program(self, arrays, return_achieved=True):
            return {"report": self.driver.program(arrays).report}

        def relax(self, x, beta=0.0, target=None, steps=20, init=None):
            r = self.driver.relax(x, beta, target, steps, init)
            return {**r.arrays, "report": r.report}

    trainers = []
    for device_of in (InProcessDevice, PhaseByPhase):
        driver = EmulatedCrossbar("t", {"sizes": SIZES}, "default-v1", seed=9, overrides=quiet)
        info = driver.describe()
        net = EPNetwork.init(SIZES, info["topology"]["w_max"], np.random.default_rng(2))
        trainer = EPTrainer(device_of(driver), net, config, program_resolution(info))
        for i in range(0, 64, 8):
            trainer.step(x[i:i + 8], y[i:i + 8])
        trainers.append(trainer)
    fast, slow = trainers
    assert fast.fused and fast.carries_write and fast.sparse and not slow.fused and not slow.sparse
    for name, w in slow.net.weights.items():
        assert np.array_equal(fast.net.weights[name], w), name


def test_the_trainers_record_is_the_levels_the_chip_was_written_to_hold():
    """After every step (default-v1: programming error, failures, stuck cells) the trainer's record
    of each cell's level is exactly the grid target the chip's controller holds — the level sent,
    never a float the device re-quantised — so a write of only the changed cells loses nothing."""
    driver = EmulatedCrossbar("t", {"sizes": SIZES}, "default-v1", seed=3)
    info = driver.describe()
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (64, 12)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]
    net = EPNetwork.init(SIZES, info["topology"]["w_max"], rng, scale=6.0)
    assert any(not np.array_equal(w, net.weights[name]) for name, w in net.targets().items())  # some beyond ±w_max
    trainer = EPTrainer(InProcessDevice(driver), net, EPConfig(batch_size=8, lrs=(0.2, 0.2), optimizer="adam"),
                        program_resolution(info))
    assert trainer.grid is not None and trainer.carries_write
    for i in range(0, 64, 8):
        trainer.step(x[i:i + 8], y[i:i + 8])
        held, chip = trainer.grid.held, driver.model.targets()
        assert held is not None
        for name, level in held.items():
            assert level.dtype == np.int8
            assert np.array_equal(level, np.rint(chip[name] / trainer.grid.resolution[name])), name
            assert np.abs(level).max() <= trainer.grid.top[name] == 31


@pytest.fixture(scope="module")
def twin_lab(tmp_path_factory: pytest.TempPathFactory):
    lab = write_lab(Path(tmp_path_factory.mktemp("lab")) / "lab.toml",
                    [{"id": f"chip-{k}-{f}", "sizes": SIZES, "seed": 11} for k in ("msgpack", "json")
                     for f in ("index", "mask")] + [{"id": "chip-lossy", "sizes": SIZES, "seed": 12}])
    with LocalServer(lab=lab) as url:
        yield url


@pytest.mark.parametrize(("encoding", "form"), [("msgpack", "index"), ("json", "index"), ("msgpack", "mask"),
                                               ("json", "mask")])
def test_a_relax_carrying_cells_and_nudges_over_http_is_the_driver_in_process(twin_lab, encoding, form):
    """Cells by index and value, or by packed mask and grid level: the same write."""
    rng = np.random.default_rng(8)
    w = {k: v.astype(np.float32) for k, v in weights(rng).items()}
    x = rng.uniform(0, 1, (6, 12)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    local = EmulatedCrossbar("local", {"sizes": SIZES}, "default-v1", seed=11)
    resolution = local.describe()["noise"]["program"]["resolution"]["W0"]
    index, level = np.array([1, 4, 40, 95], np.int32), np.array([5, -3, 7, 2], np.int8)
    cells = {"W0": (index, level * resolution)}
    mask = np.zeros(8 * 12, bool)
    mask[index] = True
    sent = cells if form == "index" else {"W0": {"mask": np.packbits(mask), "level": level}}
    local.program(w)
    local.program_cells(cells)
    want = local.relax_nudged(x, 0.0, y, 25, None, [(0.5, 8), (-0.5, 8)], [1])
    with DeviceClient(twin_lab, encoding=encoding) as client, client.lease(f"chip-{encoding}-{form}") as lease:
        lease.program(w, return_achieved=False)
        got = lease.relax(x, 0.0, y, 25, nudges=[(0.5, 8), (-0.5, 8)], layers=[1], program_cells=sent)
        records = httpx.get(f"{twin_lab}/v1/audit", params={"lease_id": lease.lease_id}).json()["records"]
        after = lease.read_weights()["weights"]
    assert [np.asarray(a).shape for a in got["states"]] == [(6, 3)]
    assert np.array_equal(np.asarray(got["states"][0], np.float32), want.arrays["states"][0])
    for phase_got, phase_want in zip(got["nudged"], want.arrays["nudged"]):
        assert all(np.array_equal(np.asarray(a, np.float32), b) for a, b in zip(phase_got, phase_want))
    assert np.array_equal(after["W0"], local.read_weights().arrays["weights"]["W0"])
    report = got["report"]
    assert report["program"]["pairs_written"] >= 1
    assert report["energy_terms_j"]["write"] == pytest.approx(report["program"]["energy_terms_j"]["write"])
    assert report["energy_j"] == pytest.approx(want.report["energy_j"] + report["program"]["energy_j"])
    assert [r["action"] for r in records if r["path"].endswith("/relax")] == ["program+relax"]


def written(write: dict, sizes: dict[str, int]) -> str | None:
    """``"every"`` cell of every array, only the ``"changed"`` ones, or None (no write carried)."""
    if "program_weights" in write:
        return "every"
    if "program_cells" not in write:
        return None
    cells = write["program_cells"]
    every = set(cells) == set(sizes) and all(
        np.unpackbits(np.asarray(c["mask"], np.uint8))[:sizes[name]].all() if "mask" in c
        else np.array_equal(c["index"], np.arange(sizes[name])) for name, c in cells.items())
    return "every" if every else "changed"


def test_after_a_lost_answer_the_trainer_writes_every_cell(twin_lab):
    """A write whose answer was lost may or may not have landed on the chip: the trainer's record
    of what the device holds is void, so its next write is every cell, not the cells that
    changed since that record (which could leave the chip holding a write the trainer undid)."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (8, 12)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    sent: list[str | None] = []
    lose = [False]
    with DeviceClient(twin_lab) as client, client.lease("chip-lossy") as lease:

        @functools.wraps(lease.relax)  # the trainer reads the signature: nudges, carried writes
        def relax(*args, **kwargs):
            sent.append(written(kwargs, {name: w.size for name, w in net.weights.items()}))
            out = lease.relax(*args, **kwargs)  # the chip did the work (and the write) ...
            if lose[0]:
                lose[0] = False
                raise TransportError("connection reset before the answer arrived")  # ... the answer is lost
            return out

        device = SimpleNamespace(relax=relax, program=lease.program, program_cells=lease.program_cells,
                                 lease_id=lease.lease_id, fencing=lease.fencing)
        info = lease.describe()
        net = EPNetwork.init(SIZES, info["topology"]["w_max"], np.random.default_rng(4))
        trainer = EPTrainer(device, net, EPConfig(batch_size=8, lrs=(0.5, 0.5), t1=10, t2=4),
                            program_resolution(info))
        assert trainer.carries_write and trainer.sparse
        trainer.step(x, y)
        trainer.step(x, y)
        lose[0] = True
        with pytest.raises(TransportError):
            trainer.step(x, y)
        trainer.step(x, y)
    assert sent == ["every", "changed", "changed", "every"], sent
