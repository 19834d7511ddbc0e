"""The EP protocol's variants learn on a device over HTTP; its software reference is the same maths;
its optimisers and checkpoints do what they say.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_models.config import settings_table
from device_models.presets import IDEAL
from tests.conftest import write_lab
from trainer_client.client import DeviceClient
from trainer_client.datasets import load_digits
from trainer_client.local_server import LocalServer
from trainer_client.optim import SGD, Adam, lr_factor
from trainer_client.protocols.ep import EPConfig, EPNetwork, EPTrainer, nudge_target
from trainer_client.protocols.ep_software import SoftwareDevice
from trainer_client.training import Checkpoint, train_ep

DEVICES = {"digits-small": [64, 32, 10], "digits-two-hidden": [64, 48, 32, 10], "digits-ideal": [64, 32, 10],
           "digits-linear-ideal": [64, 10], "digits-deep-ideal": [64, 24, 16, 10]}


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("ep-protocol")
    lab = write_lab(tmp / "lab.toml", [{"id": name, "sizes": sizes, "seed": 5,
                                        "preset": "ideal" if name.endswith("ideal") else "default-v1"}
                                       for name, sizes in DEVICES.items()])
    with LocalServer(lab=lab, log_path=tmp / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.mark.slow
@pytest.mark.parametrize("device,options,floor", [
    ("digits-small", {"nudging": "one-sided"}, 0.8),
    ("digits-small", {"nudging": "random-sign"}, 0.8),
    ("digits-small", {"loss": "ce"}, 0.8),
    ("digits-small", {"optimizer": "adam", "lrs": (0.01, 0.005), "lr_schedule": "cosine"}, 0.8),
    ("digits-two-hidden", {"lrs": (0.1, 0.05, 0.05), "t1": 40}, 0.8),
])
def test_ep_variants_learn_digits_on_default_v1_over_http(lab_url, digits, device, options, floor):
    config = EPConfig(**{"batch_size": 32, "seed": 1, **options})
    with DeviceClient(lab_url) as client, client.lease(device, holder="test") as lease:
        topology = lease.describe()["topology"]
        _, history = train_ep(lease, topology, digits, config, epochs=6, totals=client.totals, progress=False,
                              log=lambda _: None)
    accuracy = [r.test_accuracy for r in history]
    assert max(accuracy[-2:]) >= floor, accuracy
    assert accuracy[-1] > accuracy[0] or accuracy[0] >= floor


def test_software_reference_is_the_ideal_device_in_numpy(lab_url):
    """Same weights, same phases: the ideal device over HTTP and the software reference agree."""
    rng = np.random.default_rng(2)
    with DeviceClient(lab_url) as client, client.lease("digits-ideal", holder="test") as lease:
        info = lease.describe()
        sizes, w_max = info["topology"]["sizes"], info["topology"]["w_max"]
        soft = SoftwareDevice(sizes, w_max, info["settings"])
        net = EPNetwork.init(sizes, w_max, rng, scale=3.0)
        x = rng.uniform(0, 1, (16, 64)).astype(np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 16)]
        for dev in (lease, soft):
            dev.program(net.targets(), return_achieved=False)
        free = [lease.relax(x, 0.0, None, 30)["states"], soft.relax(x, 0.0, None, 30)["states"]]
        nudged = [lease.relax(x, 0.5, y, 10, free[0])["states"], soft.relax(x, 0.5, y, 10, free[0])["states"]]
    for device_states, software_states in (free, nudged):
        for a, b in zip(device_states, software_states):
            assert np.abs(a - b).max() < 1e-5
        assert np.abs(device_states[0]).max() > 0.1  # not a trivially silent network


def test_software_reference_reads_the_activation_from_the_settings():
    settings = settings_table(IDEAL.with_overrides({"activation": "logistic"}))
    soft = SoftwareDevice([3, 2], [1.0], settings)
    soft.program({"W0": np.zeros((2, 3)), "b0": np.array([0.5, 1.0])})
    states = soft.relax(np.zeros((1, 3)), steps=1)["states"][0]
    assert np.allclose(states, 1 / (1 + np.exp(-(2 * np.array([0.5, 1.0]) - 1))))


def test_adam_follows_kingma_and_ba():
    """Algorithm 1 written out by hand in float64, on ascent directions from O(1) down to the order
    of ε (where ε shapes the step); a checkpoint continues the run bit for bit, and one holding the
    paper's moments (written before the weighted sums) continues it to float32 rounding."""
    rng = np.random.default_rng(0)
    scales = np.array([1.0, 1e-3, 1e-8, 3e-8])
    w = {"W0": np.zeros(4, np.float32)}
    adam = Adam()
    m = v = expected = without_eps = np.zeros(4)
    for t in range(1, 31):
        g = (rng.standard_normal(4) * scales).astype(np.float32)
        adam.step(w, {"W0": g}, {"W0": 0.01})
        m = 0.9 * m + 0.1 * g.astype(np.float64)
        v = 0.999 * v + 0.001 * g.astype(np.float64) ** 2
        expected = expected + 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        without_eps = without_eps + 0.01 * (m / (1 - 0.9**t)) / np.sqrt(v / (1 - 0.999**t))
    np.testing.assert_allclose(w["W0"], expected, rtol=1e-5, atol=1e-7)
    assert np.all(np.abs(without_eps - expected)[2:] > 0.1 * np.abs(expected[2:]))  # ε shaped the small ones
    restored, legacy = Adam(), Adam()
    restored.load_state(adam.state())
    legacy.load_state({"t": np.array(adam.t), "m.W0": m.astype(np.float32), "v.W0": v.astype(np.float32)})
    g = (rng.standard_normal(4) * scales).astype(np.float32)
    runs = [{"W0": w["W0"].copy()} for _ in range(3)]
    for opt, weights in zip((adam, restored, legacy), runs):
        opt.step(weights, {"W0": g}, {"W0": 0.01})
    assert restored.t == adam.t == 31 and np.array_equal(runs[1]["W0"], runs[0]["W0"])
    np.testing.assert_allclose(runs[2]["W0"], runs[0]["W0"], rtol=1e-6)


def test_sgd_steps_along_the_ascent_direction():
    w = {"W0": np.ones(3, np.float32)}
    g = np.array([1.0, -2.0, 0.5])  # float64 in, float32 weights stay float32
    SGD().step(w, {"W0": g}, {"W0": 0.1})
    assert w["W0"].dtype == np.float32 and np.allclose(w["W0"], [1.1, 0.8, 1.05])


def test_cosine_schedule_starts_at_full_rate_and_decays():
    factors = [lr_factor("cosine", e, 10) for e in range(1, 11)]
    assert factors[0] == 1.0 and all(a > b for a, b in zip(factors, factors[1:])) and 0 < factors[-1] < 0.03
    assert lr_factor("constant", 7, 10) == 1.0


def test_ce_target_is_the_free_output_moved_along_the_cross_entropy_force():
    free = np.array([[0.2, 0.5, 0.1]], np.float32)
    y = np.array([[1.0, 0.0, 0.0]], np.float32)
    target = nudge_target("ce", y, free, temperature=0.25)
    p = np.exp(free / 0.25) / np.exp(free / 0.25).sum()
    assert np.allclose(target, np.clip(free + y - p, 0, 1))
    assert target[0, 0] > free[0, 0] and target[0, 1] < free[0, 1]  # toward the label, away from the rival
    assert nudge_target("mse", y, free, 0.25) is y


def test_a_resumed_run_is_the_run_that_was_not_interrupted(tmp_path: Path, digits):
    """On the (deterministic) software device: 2 epochs + resume to 4 equals 4 epochs straight."""
    settings = settings_table(IDEAL)
    sizes, w_max = [64, 16, 10], [0.5, 1.0]
    config = EPConfig(batch_size=64, seed=3, optimizer="adam", lrs=(0.01, 0.005), lr_schedule="cosine",
                      nudging="random-sign")
    quiet = {"progress": False, "log": lambda _: None}
    topology = {"sizes": sizes, "w_max": w_max}
    straight, h_straight = train_ep(SoftwareDevice(sizes, w_max, settings), topology, digits, config, 4, **quiet)
    ckpt = Checkpoint(tmp_path / "ckpt")

    class Killed(Exception):
        pass

    def die_at_epoch_3(line: str) -> None:
        if line.split()[:1] == ["3"]:
            raise Killed  # after epoch 3 is trained, before its checkpoint: the last one is epoch 2's

    with pytest.raises(Killed):
        train_ep(SoftwareDevice(sizes, w_max, settings), topology, digits, config, 4, checkpoint=ckpt,
                 progress=False, log=die_at_epoch_3)
    resumed, h_resumed = train_ep(SoftwareDevice(sizes, w_max, settings), topology, digits, config, 4,
                                  checkpoint=ckpt, **quiet)
    assert [r.test_accuracy for r in h_resumed] == [r.test_accuracy for r in h_straight]
    for name, w in straight.net.weights.items():
        assert np.array_equal(resumed.net.weights[name], w), name
    other = EPConfig(batch_size=32, seed=3)
    with pytest.raises(ValueError, match="other hyper-parameters"):
        train_ep(SoftwareDevice(sizes, w_max, settings), topology, digits, other, 4, checkpoint=ckpt, **quiet)
    with pytest.raises(ValueError, match="planned for 4 epochs"):  # a cosine schedule cannot be stretched
        train_ep(SoftwareDevice(sizes, w_max, settings), topology, digits, config, 6, checkpoint=ckpt, **quiet)


def test_an_unreadable_checkpoint_is_refused_with_a_clear_message(tmp_path: Path, digits):
    ckpt = Checkpoint(tmp_path / "ckpt")
    ckpt.meta.write_text("{not json")
    ckpt.arrays.write_bytes(b"not a zip file")
    sizes, w_max = [64, 8, 10], [0.5, 1.0]
    with pytest.raises(ValueError, match="cannot be read"):
        train_ep(SoftwareDevice(sizes, w_max, settings_table(IDEAL)), {"sizes": sizes, "w_max": w_max}, digits,
                 EPConfig(), 1, checkpoint=ckpt, progress=False, log=lambda _: None)


def test_http_is_transparent_the_ideal_device_trains_the_same_weights_in_process(lab_url, digits):
    """EP over HTTP (binary codec, server checks) and with the driver object in this process train
    the same weights bit for bit on the noise-free ideal device (one BLAS thread on both sides)."""
    from threadpoolctl import threadpool_limits

    from device_server.drivers.emulated import EmulatedCrossbar

    class InProcess:
        def __init__(self, driver: EmulatedCrossbar) -> None:
            self.driver = driver

        def program(self, weights, return_achieved=True):
            return {"report": self.driver.program(weights).report}

        def relax(self, x, beta=0.0, target=None, steps=20, init=None):
            r = self.driver.relax(x, beta, target, steps, init)
            return {**r.arrays, "report": r.report}

    driver = EmulatedCrossbar("local", {"sizes": DEVICES["digits-ideal"]}, "ideal", seed=5)
    w_max = driver.describe()["topology"]["w_max"]
    config = EPConfig(batch_size=32, seed=4)
    eye = np.eye(10, dtype=np.float32)
    with threadpool_limits(1), DeviceClient(lab_url) as client, client.lease("digits-ideal", holder="test") as lease:
        local = EPTrainer(InProcess(driver), EPNetwork.init(DEVICES["digits-ideal"], w_max, np.random.default_rng(4)),
                          config)
        remote = EPTrainer(lease, EPNetwork.init(DEVICES["digits-ideal"], w_max, np.random.default_rng(4)), config)
        for i in range(0, 640, 32):
            batch = (digits.x_train[i:i + 32], eye[digits.y_train[i:i + 32]])
            local.step(*batch)
            remote.step(*batch)
    for name, w in local.net.weights.items():
        assert np.array_equal(remote.net.weights[name], w), name
    assert any(np.abs(w - w0).max() > 1e-3 for w, w0 in zip(local.net.weights.values(), EPNetwork.init(
        DEVICES["digits-ideal"], w_max, np.random.default_rng(4)).weights.values()))  # it did train


@pytest.mark.parametrize("device", ["digits-linear-ideal", "digits-ideal", "digits-deep-ideal"])
@pytest.mark.parametrize("nudging", ["symmetric", "one-sided"])
def test_the_ideal_device_over_http_trains_the_software_reference_bit_for_bit(lab_url, digits, device, nudging):
    """The software reference (plain NumPy, in this process) and the ideal device over HTTP (its
    nudged phases fused with the free phase on the server) train the same weights bit for bit:
    no hidden layer, one, two. With one crossbar, ``crossbar-1.2`` left the nudge's ``+βy`` out."""
    from threadpoolctl import threadpool_limits

    sizes = DEVICES[device]
    eye = np.eye(10, dtype=np.float32)
    config = EPConfig(batch_size=32, seed=4, nudging=nudging, t1=15, t2=6, lrs=[0.1, 0.05, 0.05][-(len(sizes) - 1):])
    with threadpool_limits(1), DeviceClient(lab_url) as client, client.lease(device, holder="test") as lease:
        info = lease.describe()
        w_max = info["topology"]["w_max"]
        soft = EPTrainer(SoftwareDevice(sizes, w_max, info["settings"]),
                         EPNetwork.init(sizes, w_max, np.random.default_rng(4)), config)
        remote = EPTrainer(lease, EPNetwork.init(sizes, w_max, np.random.default_rng(4)), config)
        assert remote.fused and not soft.fused
        for i in range(0, 320, 32):
            batch = (digits.x_train[i:i + 32], eye[digits.y_train[i:i + 32]])
            soft.step(*batch)
            remote.step(*batch)
    start = EPNetwork.init(sizes, w_max, np.random.default_rng(4)).weights
    for name, w in soft.net.weights.items():
        assert np.array_equal(remote.net.weights[name], w), name
        assert np.abs(w - start[name]).max() > 1e-4, name  # it did train


def test_an_ideal_pair_at_its_limit_reads_the_software_references_clipped_weight():
    """Weights at and beyond ±w_max on the ideal device read exactly what the software reference
    holds (its clip to ±w_max in float32), not one float32 step inside: the ideal chip's range is
    calibrated on the conductances its cells hold. ``crossbar-1.2`` read −0.14285713 for −1/7 and the
    two runs parted there after about 370 MNIST steps."""
    from device_server.drivers.emulated import EmulatedCrossbar

    sizes = [784, 512, 10]
    driver = EmulatedCrossbar("ideal", {"sizes": sizes}, "ideal", seed=0)
    info = driver.describe()
    w_max = info["topology"]["w_max"]
    soft = SoftwareDevice(sizes, w_max, info["settings"])
    rng = np.random.default_rng(1)
    weights = {}
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.uniform(-1.5 * w_max[k], 1.5 * w_max[k], (n_out, n_in)).astype(np.float32)
        w[0, :4] = [w_max[k], -w_max[k], 2 * w_max[k], -2 * w_max[k]]
        weights[f"W{k}"], weights[f"b{k}"] = w, w[:, 0].copy()
    driver.program(weights)
    soft.program(weights)
    read = driver.read_weights().arrays["weights"]
    for name, w in soft.weights.items():
        assert np.array_equal(read[name], w), (name, np.flatnonzero(read[name] != w)[:5])
    assert np.sum(np.abs(soft.weights["W0"]) == np.float32(w_max[0])) > 1000  # many pairs at their limits


def test_adam_takes_any_layout_and_keeps_the_update():
    """Weights that are a strided view or float64 (the forward-only trainers' hidden copies) step
    as NumPy's in-place passes did: the float32 step added where they lie, their type and identity
    kept; contiguous float32 weights get the same values; moments of another shape are refused."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    g = rng.standard_normal((3, 5))
    original = w.T.copy()
    plain, strided, wide = {"W0": original.copy()}, {"W0": np.asfortranarray(original)}, {"W0": original.astype(np.float64)}
    assert not strided["W0"].flags.c_contiguous
    held = {name: d["W0"] for name, d in (("strided", strided), ("wide", wide))}
    steps = []
    for weights in (plain, strided, wide):
        opt, before = Adam(), weights["W0"].copy()
        for _ in range(3):
            opt.step(weights, {"W0": g}, {"W0": 0.1})
        steps.append(weights["W0"] - before)
    assert strided["W0"] is held["strided"] and wide["W0"] is held["wide"] and wide["W0"].dtype == np.float64
    assert np.array_equal(strided["W0"], plain["W0"]) and not np.array_equal(plain["W0"], original)
    # the float64 copy moved by the float32 steps, added in float64 (within float32 rounding of the plain run)
    np.testing.assert_allclose(steps[2], steps[0], rtol=1e-6, atol=1e-7)
    opt = Adam()
    opt.load_state({"t": np.array(1), "m_sum.W0": np.zeros(4, np.float32), "v_sum.W0": np.zeros(4, np.float32)})
    with pytest.raises(ValueError, match="one shape"):  # a checkpoint of another network
        opt.step({"W0": np.zeros((10, 10), np.float32)}, {"W0": np.zeros((10, 10))}, {"W0": 0.1})
    with pytest.raises(ValueError, match="one shape"):
        Adam().step({"W0": np.zeros(3, np.float32)}, {"W0": np.zeros(4)}, {"W0": 0.1})


def test_adam_pass_is_numpys_in_place_passes_bit_for_bit():
    """The compiled pass against the ten NumPy passes it replaced, on float32 weights."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal(10_001).astype(np.float32)
    compiled, m, v = {"W0": w.copy()}, np.zeros_like(w), np.zeros_like(w)
    opt = Adam()
    for t in range(1, 6):
        g = (rng.standard_normal(w.size) * 10.0 ** -rng.integers(0, 8)).astype(np.float32)
        opt.step(compiled, {"W0": g}, {"W0": 0.01})
        s1 = (1.0 - 0.9**t) / (1.0 - 0.9)
        root_s2 = np.sqrt((1.0 - 0.999**t) / (1.0 - 0.999))
        m *= np.float32(0.9)
        m += g
        v *= np.float32(0.999)
        v += np.square(g)
        tmp = np.sqrt(v)
        tmp += np.float32(1e-8 * root_s2)
        np.divide(m, tmp, out=tmp)
        tmp *= np.float32(0.01 * root_s2 / s1)
        w += tmp
    assert np.array_equal(compiled["W0"].view(np.int32), w.view(np.int32))
