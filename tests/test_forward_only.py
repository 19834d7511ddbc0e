"""Forward-Forward and SCFF: the local gradients against finite differences on a real server, and the
pieces each protocol is built from (activation derivative, negatives, pairs, normalisation, options).

The gradient oracle runs over HTTP on an ideal device computing in float64: each layer's
gradient, computed by the protocol from its *measured* outputs, must match central finite
differences of the same layer's loss measured on the device with the weight moved by ±ε
(relative error < 1e-6). The units are set away from the activation's kinks (0 < h < 1), where
the loss is smooth.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_lab
from trainer_client.client import DeviceClient
from trainer_client.cli_common import lab_text
from trainer_client.forward_runs import default_args, parse_overrides
from trainer_client.local_server import LocalServer
from trainer_client.protocols.ff import FFTrainer, hard_wrong_labels, wrong_labels
from trainer_client.protocols.forward_only import ForwardOnlyConfig, LayerwiseTrainer
from trainer_client.protocols.goodness import GoodnessLoss, STNOActivation, normalise
from trainer_client.protocols.layers import DeviceLayers, SoftwareLayers
from trainer_client.protocols.scff import SCFFTrainer, mean_input, partners

SIZES = [6, 5, 4]  # FF: 3 features + 3 classes; SCFF: 6 features
N_CLASSES = 3


@pytest.fixture(scope="module")
def grad_lease(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeviceLayers]:
    """An ideal float64 device of layers 6-5-4 on its own server, leased."""
    lab = write_lab(tmp_path_factory.mktemp("lab") / "lab.toml",
                    [{"id": "grad", "sizes": SIZES, "preset": "ideal", "overrides": {"dtype": "float64"}}])
    with LocalServer(lab=lab) as url, DeviceClient(url) as client, client.lease("grad") as lease:
        yield DeviceLayers(lease)


def smooth_weights(trainer: LayerwiseTrainer, rng: np.random.Generator) -> None:
    """Small weights and a bias of 0.4: every pre-activation inside (0, 1), away from the kinks."""
    for k in range(trainer.n_layers):
        trainer.weights[f"W{k}"] = rng.uniform(-0.05, 0.05, trainer.weights[f"W{k}"].shape)
        trainer.weights[f"b{k}"] = np.full(trainer.weights[f"b{k}"].shape, 0.4)


def check_gradients(trainer: LayerwiseTrainer, u: np.ndarray, sign: np.ndarray, eps: float = 1e-6) -> None:
    """Every layer's local gradient vs central differences of that layer's measured loss."""
    state = trainer.rng.bit_generator.state  # SCFF draws partners: the same ones at every evaluation

    def measure() -> tuple[dict[str, np.ndarray], list[float]]:
        trainer.rng.bit_generator.state = state
        grads, stats = trainer.measure(u, sign)
        return grads, stats.loss

    grads, _ = measure()
    base = {name: w.copy() for name, w in trainer.weights.items()}
    for name, w in base.items():
        k = int(name[1:])
        fd = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            losses = []
            for step in (eps, -eps):
                moved = w.copy()
                moved[idx] += step
                trainer.weights[name] = moved
                losses.append(measure()[1][k])
            fd[idx] = (losses[0] - losses[1]) / (2 * eps)
        trainer.weights[name] = w
        assert np.linalg.norm(fd) > 1e-4, f"{name}: a vanishing gradient proves nothing"
        rel = np.linalg.norm(grads[name] - fd) / np.linalg.norm(fd)
        assert rel < 1e-6, f"{name}: relative error {rel:.2e}"
    # the kinks were avoided, so the oracle applies: every unit inside the active range
    trainer.program()
    y = trainer.layers.forward_layer(0, u)
    assert ((y > 0.05) & (y < 0.95)).all()


def test_ff_local_gradients_match_finite_differences_on_the_device(grad_lease: DeviceLayers) -> None:
    rng = np.random.default_rng(3)
    trainer = FFTrainer(grad_lease, ForwardOnlyConfig(threshold=0.3, sharpness=10.0), N_CLASSES)
    smooth_weights(trainer, rng)
    x = rng.uniform(0, 1, (8, 3))
    labels = rng.integers(0, N_CLASSES, 8)
    u = np.vstack([trainer.embed(x, labels), trainer.embed(x, wrong_labels(labels, N_CLASSES, rng))])
    check_gradients(trainer, u, np.repeat([1.0, -1.0], 8))


def test_scff_local_gradients_match_finite_differences_on_the_device(grad_lease: DeviceLayers) -> None:
    rng = np.random.default_rng(4)
    trainer = SCFFTrainer(grad_lease, ForwardOnlyConfig(threshold=0.3, sharpness=10.0, seed=4))
    smooth_weights(trainer, rng)
    x = rng.uniform(0, 1, (8, 6))
    u, sign = trainer.pairs(x)
    check_gradients(trainer, u, sign)


def test_software_reference_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(5)
    layers = SoftwareLayers(SIZES, [2.0, 2.0], STNOActivation())
    trainer = SCFFTrainer(layers, ForwardOnlyConfig(threshold=0.3, sharpness=10.0, seed=5))
    smooth_weights(trainer, rng)
    check_gradients(trainer, *trainer.pairs(rng.uniform(0, 1, (8, 6))))


def test_software_reference_matches_the_ideal_device(grad_lease: DeviceLayers) -> None:
    """The reference is the same network: same outputs as the ideal float64 device, layer by layer."""
    rng = np.random.default_rng(6)
    weights = {"W0": rng.uniform(-1, 1, (5, 6)), "b0": rng.uniform(-0.5, 0.5, 5),
               "W1": rng.uniform(-1, 1, (4, 5)), "b1": rng.uniform(-0.5, 0.5, 4)}
    soft = SoftwareLayers(SIZES, grad_lease.w_max, grad_lease.activation)
    u = rng.uniform(0, 1, (20, 6))
    for layers in (soft, grad_lease):
        layers.program(weights)
    for k in (0, 1):
        got, want = grad_lease.forward_layer(k, u), soft.forward_layer(k, u)
        assert np.mean((want > 0) & (want < 1)) > 0.2  # a comparison on the curved part, not only on 0s and 1s
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        u = normalise(got)


def test_activation_derivative_from_the_output_is_the_derivative() -> None:
    for act in (STNOActivation(), STNOActivation(q_damping=0.5, zeta_max=2.5)):
        h = np.linspace(-0.5, 1.5, 401)
        h = h[(np.abs(h) > 1e-3) & (np.abs(h - 1) > 1e-3)]
        numeric = (act(h + 1e-7) - act(h - 1e-7)) / 2e-7
        np.testing.assert_allclose(act.derivative_from_output(act(h)), numeric, rtol=1e-6, atol=1e-9)
        assert act(np.array([1.0]))[0] == pytest.approx(1.0) and act(np.array([0.0]))[0] == 0.0


def test_goodness_loss_pushes_positives_up_and_negatives_down() -> None:
    loss, act = GoodnessLoss(0.2, 20.0), STNOActivation()
    y = np.full((1, 4), 0.5)
    # descending the gradient raises a positive's drive and lowers a negative's
    _, g_pos, _ = loss.gradient(np.ones((1, 3)), y, np.array([1.0]), act)
    _, g_neg, _ = loss.gradient(np.ones((1, 3)), y, np.array([-1.0]), act)
    assert (g_pos < 0).all() and (g_neg > 0).all()
    with pytest.raises(ValueError, match="threshold"):
        GoodnessLoss(1.5, 1.0)


def test_negatives_never_carry_the_true_label_and_cover_the_others() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 2000)
    wrong = wrong_labels(labels, 10, rng)
    assert not np.any(wrong == labels)
    counts = np.bincount(wrong[labels == 3], minlength=10)
    assert counts[3] == 0 and counts[[c for c in range(10) if c != 3]].min() > 150  # ~222 each


def test_hard_negatives_follow_the_networks_own_preference_and_never_the_truth() -> None:
    rng = np.random.default_rng(1)
    labels = np.zeros(20000, dtype=np.int64)
    logits = np.tile(np.log([50.0, 3.0, 1.0, 1.0]), (20000, 1))  # the true label 0 is the most plausible
    wrong = hard_wrong_labels(labels, logits, rng)
    assert not np.any(wrong == 0)
    share = np.bincount(wrong, minlength=4) / len(wrong)
    np.testing.assert_allclose(share, [0.0, 0.6, 0.2, 0.2], atol=0.015)  # softmax over the wrong labels


def test_scff_partners_are_other_samples_of_the_batch() -> None:
    rng = np.random.default_rng(0)
    for n in (2, 3, 32, 257):
        j = partners(n, rng)
        assert sorted(j) == list(range(n)) and not np.any(j == np.arange(n))
    with pytest.raises(ValueError):
        partners(1, rng)


class RecordingLayers(SoftwareLayers):
    """A one-layer software reference (6 → 5) keeping every input it is sent (what a device would see)."""

    def __init__(self) -> None:
        super().__init__(SIZES[:2], [2.0], STNOActivation())
        self.sent: list[np.ndarray] = []

    def forward_layer(self, k: int, u: np.ndarray) -> np.ndarray:
        self.sent.append(np.array(u))
        return super().forward_layer(k, u)


def test_scff_centres_every_input_the_device_is_sent() -> None:
    """Training pairs and the probe's features (trained and random weights alike) are built from x − μ;
    the negatives are the mean of two centred inputs, i.e. the centred mean of the two."""
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1, (10, 6)).astype(np.float32)
    mu = mean_input(x)
    assert mu == pytest.approx(float(np.mean(x.astype(np.float64))))
    layers = RecordingLayers()
    trainer = SCFFTrainer(layers, ForwardOnlyConfig(seed=2), input_offset=mu)
    state = trainer.rng.bit_generator.state
    trainer.step(x)
    trainer.rng.bit_generator.state = state
    j = partners(len(x), trainer.rng)  # the partners that step drew
    sent = layers.sent[0]
    xc = x.astype(np.float64) - mu
    np.testing.assert_array_equal(sent[:10], xc)
    np.testing.assert_allclose(sent[10:], (xc + xc[j]) / 2, rtol=0, atol=1e-15)
    for weights in (None, trainer.initial_weights):
        trainer.features(x, weights)
        np.testing.assert_array_equal(layers.sent[-1], xc)
    # no offset: the inputs themselves, bit for bit
    plain_layers = RecordingLayers()
    SCFFTrainer(plain_layers, ForwardOnlyConfig(seed=2)).features(x)
    assert plain_layers.sent[-1].tobytes() == x.tobytes()
    with pytest.raises(ValueError, match="finite"):
        SCFFTrainer(layers, ForwardOnlyConfig(), input_offset=float("nan"))


def test_normalised_inputs_fit_the_device_range() -> None:
    y = np.abs(np.random.default_rng(0).normal(size=(50, 30))) * 7
    y[0] = 0.0
    z = normalise(y)
    np.testing.assert_allclose(np.linalg.norm(z[1:], axis=1), 1.0)
    assert np.abs(z).max() <= 1.0 and np.all(z[0] == 0)


def test_input_beyond_the_device_limit_is_refused_on_the_client(grad_lease: DeviceLayers) -> None:
    with pytest.raises(ValueError, match="limit"):
        grad_lease.forward_layer(0, np.full((2, 6), 1.5))


def test_overrides_and_lab_file_round_trip(tmp_path: Path) -> None:
    overrides = parse_overrides(["read_std=0.02", "levels=16", "bias_nonlinearity=false"])
    assert overrides == {"read_std": 0.02, "levels": 16, "bias_nonlinearity": False}
    for bad in (["read_std"], ["=1"], ["read_std=lots"]):
        with pytest.raises(ValueError, match="--set"):
            parse_overrides(bad)
    lab = tmp_path / "lab.toml"
    lab.write_text(lab_text([{"id": "ff-digits", "sizes": [74, 32], "preset": "default-v1", "seed": 7,
                              "overrides": overrides}]))
    out = subprocess.run([sys.executable, "-m", "device_server", "--lab", str(lab), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\t")[0] == "ff-digits"


def test_cli_mistakes_get_clear_messages(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "trainer_client.cli"]
    bad_option = subprocess.run([*run, "scff", "--threshold", "2"], capture_output=True, text=True, timeout=60)
    assert bad_option.returncode == 2 and "(0, 1)" in bad_option.stderr
    bad_setting = subprocess.run([*run, "ff", "--epochs", "1", "--out", str(tmp_path / "a"), "--set", "read_std=7",
                                  "--quiet"], capture_output=True, text=True, timeout=120)
    assert bad_setting.returncode == 1 and "read_std" in bad_setting.stderr
    too_loud = subprocess.run([*run, "ff", "--epochs", "1", "--out", str(tmp_path / "b"), "--label-scale", "3",
                               "--quiet", "--no-progress"], capture_output=True, text=True, timeout=120)
    assert too_loud.returncode == 1 and "limit" in too_loud.stderr


def test_one_epoch_writes_report_and_plot(tmp_path: Path) -> None:
    """The command as a user runs it: report keys, per-layer goodness, and the plot."""
    out = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "trainer_client.cli", "ff", "--epochs", "2", "--hidden", "32,16",
                    "--label-repeat", "2", "--negatives", "hard", "--out", str(out), "--no-progress", "--quiet"],
                   check=True, timeout=300)
    report = json.loads((out / "report.json").read_text())
    assert report["sizes"] == [84, 32, 16] and len(report["layer_accuracy"]) == 2
    # per epoch: 23 batches, each a program and the 10-label table (a forward per layer), then the step's
    # forward per layer on the weights already there; and the test table (a program, a forward per layer)
    assert report["device_calls"] == 2 * (23 * (1 + 2 + 2) + (1 + 2))
    assert len(report["history"]) == 2 and len(report["history"][-1]["goodness_pos"]) == 2
    assert report["device_calls"] > 0 and report["energy_j"] > 0
    assert (out / "curves.png").stat().st_size > 10_000 and (out / "lab.toml").is_file()
    assert default_args("ff").hidden == [256, 256]


def test_sweep_runner_takes_another_commands_namespace(tmp_path: Path) -> None:
    """The sweep hands its own options: ours it lacks keep their defaults; overrides build the device."""
    import argparse

    from trainer_client.forward_runs import SWEEP_RUNNERS

    sweep_args = argparse.Namespace(command="sweep", protocol="scff", out=tmp_path, epochs=1, hidden=[16],
                                    quiet=True, no_progress=True, values="0.01,0.02")
    report = SWEEP_RUNNERS["scff"](sweep_args, {"read_std": 0.02}, 3)
    assert report["overrides"] == {"read_std": 0.02} and report["seed"] == 3 and report["device_seed"] == 3
    assert report["sizes"] == [64, 16] and report["epochs"] == 1
    assert 0.5 < report["random_probe_accuracy"] < 1 and 0.5 < report["test_accuracy"] < 1
    from trainer_client.datasets import load

    hyper = report["hyperparameters"]  # inputs centred on the training set's mean value by default
    assert hyper["centre"] is True and hyper["input_offset"] == pytest.approx(mean_input(load("digits").x_train))
    assert 0.2 < hyper["input_offset"] < 0.4
    lab = (tmp_path / "lab.toml").read_text()
    assert "read_std = 0.02" in lab and "seed = 3" in lab


def test_hil_train_sweep_scff_varies_a_setting_over_http(tmp_path: Path) -> None:
    """``hil-train sweep scff``: one run per value on a device built with that setting, a summary per value."""
    subprocess.run([sys.executable, "-m", "trainer_client.cli", "sweep", "scff", "--param", "read_std",
                    "--values", "0,0.05", "--seeds", "1", "--epochs", "1", "--hidden", "16", "--no-centre", "--quiet",
                    "--no-progress", "--out", str(tmp_path)], check=True, timeout=300, capture_output=True)
    result = json.loads((tmp_path / "sweep.json").read_text())
    assert [s["value"] for s in result["summary"]] == [0.0, 0.05] and result["protocol"] == "scff"
    for value in ("0.0", "0.05"):
        point = tmp_path / "points" / f"read_std={value}" / "seed=0"
        assert f"read_std = {value}" in (point / "lab.toml").read_text()
        report = json.loads((point / "report.json").read_text())
        assert report["overrides"] == {"read_std": float(value)} and 0.5 < report["random_probe_accuracy"] < 1
        assert report["hyperparameters"]["centre"] is False and report["hyperparameters"]["input_offset"] == 0.0
