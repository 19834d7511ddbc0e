"""The ``stno-array`` device over real HTTP: ``drive`` traces, recording choices, limits, and the kit.

Physics asserted through the instrument: the measured power of oscillators held at a constant
current follows ``A·p₀(ζ)·R·I²`` (within the device-to-device spread of I_th), the spectrum peaks
at ``f0 + N·p₀/2π``, below threshold there is (almost) nothing, and every bad input is a 4xx
naming its field.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from device_models import stno
from device_models.presets.stno import UNIFORM_MGO
from device_server.drivers.base import OpResult
from device_server.drivers.stno_array import EmulatedStnoArray
from device_server.testing import run_conformance
from trainer_client.errors import InvalidInput, NotFound

DEVICE = "stno-array"  # default lab: uniform-mgo, 64 oscillators, 8 inputs
ROOT = Path(__file__).resolve().parents[1]


def constant(zeta: Sequence[float], steps: int, inputs: int = 8) -> np.ndarray:
    """One sequence per ζ, input line 0 held at ζ (I_th units), the others at 0."""
    u = np.zeros((len(zeta), steps, inputs), np.float32)
    u[:, :, 0] = np.asarray(zeta, np.float32)[:, None]
    return u


def test_drive_measures_the_steady_state_power_and_frequency(client):
    info = client.describe(DEVICE)
    dt = 0.5 * info["limits"]["dt"]["max"]
    c = UNIFORM_MGO
    with client.lease(DEVICE, holder="test-drive") as dev:
        w_in = np.zeros((64, 8), np.float32)
        w_in[:, 0] = 1.0  # every oscillator driven by input 0
        dev.program({"W_in": w_in, "b": np.zeros(64, np.float32), "W_rec": np.zeros((64, 64), np.float32)})
        zetas = [0.5, 2.0, 3.0]
        out = dev.drive(constant(zetas, 8000), dt, every=20, start=4000, quantities=["power", "spectrum"])
    traces, rep = out["traces"], out["report"]
    assert traces["power"].shape == (3, 200, 64) and traces["spectrum"].shape == (3, 64, 200)
    assert rep["device_time_s"] == pytest.approx(3 * 8000 * dt) and rep["energy_j"] > 0
    i = np.array(zetas)[:, None] * c.i_th_a
    expected = c.power_coupling * c.r_ohm * i**2 * stno.steady_state_power(np.array(zetas), c.q_damping)[:, None]
    mean = traces["power"].mean(axis=1)  # (ζ, oscillator)
    assert mean[0].max() < 0.01 * expected[1, 0]  # below threshold: the thermal floor only
    for k in (1, 2):  # above: p₀(ζ), oscillator by oscillator within the I_th spread (5 %)
        np.testing.assert_allclose(np.median(mean[k]), expected[k, 0], rtol=0.05)
    # the line sits at f0 + N·p₀/2π (median over oscillators; f0 spread 1 %, N spread 5 %)
    peaks = traces["frequency_hz"][np.argmax(traces["spectrum"][1], axis=1)]
    predicted = c.f0_hz + c.n_shift_hz * stno.steady_state_power(np.array(2.0), c.q_damping)
    assert np.median(peaks) == pytest.approx(predicted, abs=0.01 * c.f0_hz)


def test_drive_records_only_what_is_asked(client, json_client):
    info = client.describe(DEVICE)
    dt = 0.5 * info["limits"]["dt"]["max"]
    for cl in (client, json_client):  # MessagePack and JSON bodies alike
        with cl.lease(DEVICE, holder="test-record") as dev:
            out = dev.drive(constant([2.0, 2.5], 50), dt, oscillators=[3, 0], every=7, start=8,
                            quantities=["amplitude", "phase"])
        tr = out["traces"]
        assert sorted(tr) == ["amplitude", "phase", "time_s"]
        assert tr["amplitude"].shape == (2, 6, 2) and tr["phase"].shape == (2, 6, 2)
        np.testing.assert_allclose(tr["time_s"], (8 + 7 * np.arange(1, 7)) * dt, rtol=1e-5)
        assert np.all(np.abs(tr["phase"]) <= np.pi + 1e-6)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b, lim: b.update(u=np.full((1, 10, 8), 1.5 * lim["u"]["max"], np.float32)), "u"),
        (lambda b, lim: b.update(dt=2 * lim["dt"]["max"]), "dt"),
        (lambda b, lim: b.update(u=np.zeros((1, 10, 5), np.float32)), "u"),
        (lambda b, lim: b.update(oscillators=[64]), "record.oscillators"),
        (lambda b, lim: b.update(every=0), "record.every"),
        (lambda b, lim: b.update(start=10), "record.start"),
        (lambda b, lim: b.update(quantities=["voltage"]), "record.quantities"),
        (lambda b, lim: b.update(quantities=["power", "spectrum"], every=5), "record.quantities"),  # 2 samples
        (lambda b, lim: b.update(u=np.zeros((200, 2000, 8), np.float32), every=1), "record"),
    ],
)
def test_bad_drive_input_is_a_4xx_naming_the_field(client, change, field):
    lim = client.describe(DEVICE)["limits"]
    body = {"u": np.zeros((1, 10, 8), np.float32), "dt": 0.5 * lim["dt"]["max"]}
    change(body, lim)
    with client.lease(DEVICE, holder="test-bad") as dev:
        with pytest.raises((InvalidInput, NotFound)) as err:
            dev.drive(body.pop("u"), body.pop("dt"), **body)
    assert str(err.value.field).startswith(field), err.value.problem


class LeakyDrive(EmulatedStnoArray):
    """Draws its thermal noise before checking the record: a refused drive moves the noise stream."""

    def drive(self, u, dt, oscillators, every, start, quantities) -> OpResult:
        self.model._rng.standard_normal(4)  # noqa: SLF001 - the planted bug
        return super().drive(u, dt, oscillators, every, start, quantities)


class IgnoresSubset(EmulatedStnoArray):
    """Records every oscillator whatever it was asked."""

    def drive(self, u, dt, oscillators, every, start, quantities) -> OpResult:
        return super().drive(u, dt, None, every, start, quantities)


@pytest.mark.parametrize(("broken", "rule"), [(LeakyDrive, "state-untouched"), (IgnoresSubset, "shapes")])
def test_the_kit_catches_a_broken_drive(broken, rule):
    report = run_conformance(broken, EmulatedStnoArray.conformance_entry)
    assert rule in report.failed_rules, report.summary()


def test_a_refused_sequence_length_says_what_and_how_long(client):
    """Steps one over the limit: the detail names the steps and shows the count whole (not 1e+06)."""
    lim = client.describe(DEVICE)["limits"]
    u = np.zeros((1, int(lim["steps"]["max"]) + 1, 1), np.float32)  # 4 MB: refused before the inputs are checked
    with client.lease(DEVICE, holder="test-steps") as dev:
        with pytest.raises(InvalidInput) as err:
            dev.drive(u, 0.5 * lim["dt"]["max"])
    assert err.value.field == "u"
    assert f"steps {int(lim['steps']['max']) + 1} is beyond" in str(err.value.problem.get("detail")), err.value.problem


def test_device_models_is_pure_physics():
    """No I/O and no import of the server or the client anywhere in ``device_models`` (numba
    compiles NumPy-level loops of the hot paths: still arithmetic on arrays)."""
    allowed = {"numpy", "scipy", "numba", "device_models", "__future__", "dataclasses", "math", "typing",
               "collections"}
    for path in (ROOT / "device_models").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"open", "print", "input"}, f"{path.name}: {node.func.id}() is I/O"
                continue
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"
