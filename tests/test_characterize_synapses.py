"""``hil-train characterize`` on an MTJ crossbar and an RF network, over real HTTP.

The characterisers' PNGs are written and the physics read back from the measured curves holds:
an R–V loop with switching at positive and negative bias, the thermally assisted law's Δ and
I_c0 fitted back from P_sw(t_p, V), and the spin diode's zero, extrema (α, K), parity and
linearity in power.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest

from trainer_client import characterize
from trainer_client.client import DeviceClient
from trainer_client.errors import ProblemError
from trainer_client.local_server import LocalServer

LAB = """
[lab]
name = "characterize"

[[devices]]
id = "xbar"
driver = "mtj-crossbar"
preset = "default-v1"
seed = 1
topology = { sizes = [4, 3, 2] }
overrides = { r_p_dtod = 0.0, tmr_dtod = 0.0 }   # identical test junctions: the law is fitted cleanly

[[devices]]
id = "rf"
driver = "rf-network"
preset = "default-v1"
seed = 1
topology = { sizes = [16, 4, 2] }
"""


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    lab = tmp_path_factory.mktemp("lab") / "lab.toml"
    lab.write_text(LAB)
    with LocalServer(lab=lab, log_path=lab.with_name("server.log")) as u:
        yield u


def _run(url: str, device: str, out: Path) -> dict:
    args = argparse.Namespace(device=device, url=url, api_key=None, out=out, seed=0, quick=True)
    return characterize.run(args)


def test_mtj_characterisation_draws_the_loop_and_fits_the_switching_law(url: str, tmp_path: Path):
    summary = _run(url, "xbar", tmp_path)
    for name in ("rv_loop.png", "switching_probability.png", "characterization.json"):
        assert (tmp_path / name).stat().st_size > 1000
    loop = summary["rv_loop"]
    assert 0.3 < loop["v_c_plus_v"] < 0.6 and -0.6 < loop["v_c_minus_v"] < -0.3
    # TMR at the read bias: TMR0/(1 + (0.15/0.4)²) = 1.315 for default-v1, read noise 0.5 %
    assert loop["tmr_at_read_bias"] == pytest.approx(1.5 / (1 + (0.15 / 0.4) ** 2), rel=0.03)
    fits = summary["switching"]["fits"]
    assert fits["P->AP"]["delta"] == pytest.approx(40, rel=0.15)
    assert fits["P->AP"]["i_c0_a"] == pytest.approx(3.37e-6, rel=0.03)
    assert fits["AP->P"]["delta"] == pytest.approx(40, rel=0.15)
    assert fits["AP->P"]["i_c0_a"] == pytest.approx(2.12e-6, rel=0.03)
    for curve in summary["switching"]["curves"].values():  # P_sw grows with pulse length and amplitude
        for p in curve["p_sw"]:
            assert p[-1] > p[0] + 0.4
        assert curve["p_sw"][-1][2] > curve["p_sw"][0][2]


def test_rf_characterisation_finds_the_resonance_its_width_and_the_chain_parity(url: str, tmp_path: Path):
    summary = _run(url, "rf", tmp_path)
    assert (tmp_path / "resonator.png").stat().st_size > 1000
    f_r, alpha = summary["f_r_hz"], summary["alpha_declared"]
    step = 10 * alpha * f_r / 200  # frequency step of the quick sweep
    for c in summary["curves"].values():
        assert abs(c["zero_hz"] - f_r) < 0.1 * alpha * f_r
        assert c["alpha"] == pytest.approx(alpha, abs=step / f_r)
        assert c["k_v_per_w"] == pytest.approx(1e3, rel=0.05)
        upper = c["f_max_hz"] > f_r  # maximum above f_r for even positions, below for odd
        assert upper == (c["position"] % 2 == 0)
    assert summary["power_ratio"] == pytest.approx(2.0, rel=0.03)


def test_bad_probes_are_refused_naming_the_field(url: str):
    with DeviceClient(url, retries=0) as client, client.lease("xbar") as lease:
        cases = [
            (dict(structure="nope", v_v=np.zeros((1, 1)), t_s=np.ones((1, 1))), 404, "structure"),
            (dict(structure="junction", v_v=np.zeros((1, 1))), 422, "inputs.t_s"),
            (dict(structure="junction", v_v=np.full((1, 2), 1.5), t_s=np.full((1, 2), 1e-9)), 422, "inputs.v_v"),
            (dict(structure="junction", v_v=np.zeros((1, 2)), t_s=np.full((1, 2), 1e-9), extra=np.ones(1)), 422,
             "inputs.extra"),
            (dict(structure="junction", v_v=np.zeros((1, 2)), t_s=np.full((1, 3), 1e-9)), 422, "inputs.t_s"),
        ]
        for kwargs, status, field in cases:
            structure = kwargs.pop("structure")
            try:
                lease.probe(structure, **kwargs)
            except ProblemError as exc:
                assert exc.status == status, (structure, kwargs, exc)
                assert exc.field == field, (structure, kwargs, exc)
            else:
                raise AssertionError(f"probe {structure} {list(kwargs)} was accepted")


def _mp(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _arr(a, dtype: str = "<f8") -> dict:
    a = np.ascontiguousarray(a, dtype=dtype)
    return {"dtype": dtype, "shape": list(a.shape), "data": a.tobytes()}


JUNCTION_OK = {"structure": "junction", "inputs": {"v_v": [[0.6, -0.6, 0.6]] * 4, "t_s": [1e-8]}}
RESONATOR_OK = {"structure": "resonator", "inputs": {"f_hz": [2e9, 2.02e9, 1.98e9], "p_w": [1e-6], "f_r_hz": [2e9],
                                                     "position": [0]}}
#: (device, body, content type, status, field) of bad probes, JSON and msgpack
BAD_PROBES = [
    ("crossbar-mnist", b'{"structure": "junction", "inputs": {"v_v": [[NaN]], "t_s": [1e-9]}}', "json", 422,
     "inputs.v_v"),
    ("crossbar-mnist", _mp({"structure": "junction", "inputs": {"v_v": _arr(np.zeros((2, 2))),
                                                               "t_s": _arr(np.full(2, np.inf))}}), "msgpack", 422,
     "inputs.t_s"),
    ("crossbar-mnist", _mp({"structure": "junction", "inputs": {"v_v": _arr(np.zeros((1, 2, 2))), "t_s": _arr([1e-9])}}),
     "msgpack", 422, "inputs.v_v"),
    ("crossbar-mnist", _mp({"structure": "junction", "inputs": {"v_v": _arr(np.zeros((2, 2)), "<c16"),
                                                               "t_s": _arr([1e-9])}}), "msgpack", 422, "inputs.v_v"),
    ("crossbar-mnist", b'{"structure": "junction", "inputs": {"v_v": [[0.1, "a"]], "t_s": [1e-9]}}', "json", 422,
     "inputs.v_v"),
    ("crossbar-mnist", b'{"structure": "junction", "inputs": {"v_v": [[0.1]], "t_s": [1.0]}}', "json", 422,
     "inputs.t_s"),
    ("crossbar-mnist", b'{"structure": "junction", "inputs": {"v_v": [[0.1]], "t_s": [1e-9]}, "gain": 2}', "json", 422,
     "gain"),
    ("crossbar-mnist", b'{"structure": 5, "inputs": {}}', "json", 422, "structure"),
    # one junction, a pulse train long enough to hold the device for minutes
    ("crossbar-mnist", _mp({"structure": "junction", "inputs": {"v_v": _arr(np.zeros((1, 100_000))),
                                                               "t_s": _arr([1e-9])}}), "msgpack", 422, "inputs.v_v"),
    ("rf-drone", b'{"structure": "resonator", "inputs": {"f_hz": [1e9], "p_w": [1e-6], "f_r_hz": [1e9], '
                 b'"position": [-1]}}', "json", 422, "inputs.position"),
    ("rf-drone", b'{"structure": "resonator", "inputs": {"f_hz": [NaN], "p_w": [1e-6], "f_r_hz": [1e9], '
                 b'"position": [0]}}', "json", 422, "inputs.f_hz"),
    ("rf-drone", b'{"structure": "resonator", "inputs": {"f_hz": [1e9], "p_w": [1e-3], "f_r_hz": [1e9], '
                 b'"position": [0]}}', "json", 422, "inputs.p_w"),
    ("rf-drone", b'{"structure": "resonator", "inputs": {"f_hz": [1e9, 2e9], "p_w": [1e-6, 1e-6, 1e-6], '
                 b'"f_r_hz": [1e9], "position": [0]}}', "json", 422, "inputs"),
    ("rf-drone", b'{"structure": "resonator", "inputs": {"f_hz": [1e9], "p_w": [1e-6], "f_r_hz": [1e9]}}', "json",
     422, "inputs.position"),
    ("rf-drone", b'{"structure": "junction", "inputs": {"v_v": [[0.1]], "t_s": [1e-9]}}', "json", 404, "structure"),
    ("rf-drone", _mp({"structure": "resonator", "inputs": {"f_hz": _arr(np.full((2000, 1), 1e9)),
                                                          "p_w": _arr(np.full((1, 2000), 1e-6)), "f_r_hz": _arr([1e9]),
                                                          "position": _arr([0])}}), "msgpack", 422, "inputs"),
    ("rf-drone", b'{"x": [[0.5]]}', "json", 422, "x"),
]


def test_bad_probes_are_4xx_naming_the_field_and_leave_the_noise_stream_untouched():
    """Every bad probe (JSON and msgpack) is a problem-details 4xx naming the field; afterwards a good
    probe of each device answers bit for bit what it answers on a twin lab that never saw them (test
    junction states and the noise streams untouched)."""
    from fastapi.testclient import TestClient

    from device_server.app import create_app
    from device_server.settings import Settings
    from trainer_client import codec

    def good_probes(tc: TestClient, tokens: dict[str, str]) -> list[list]:
        return [tc.post(f"/v1/devices/{dev}/probe", json=body, headers={"X-Lease-Token": tokens[dev]}).json()["outputs"]
                for dev, body in (("crossbar-mnist", JUNCTION_OK), ("rf-drone", RESONATOR_OK))]

    answers = []
    for send_bad in (True, False):
        with TestClient(create_app(Settings(open=True, ephemeral=True))) as tc:
            tokens = {dev: tc.post(f"/v1/devices/{dev}/leases", json={"holder": "t"}).json()["token"]
                      for dev in ("crossbar-mnist", "rf-drone")}
            for dev, body, kind, status, field in BAD_PROBES if send_bad else []:
                path = f"/v1/devices/{dev}/{'forward' if b'structure' not in body else 'probe'}"
                r = tc.post(path, content=body, headers={"X-Lease-Token": tokens[dev],
                                                         "Content-Type": codec.MSGPACK if kind == "msgpack" else codec.JSON})
                assert r.headers["content-type"].startswith("application/problem+json"), (dev, body[:80], r.text)
                assert (r.status_code, r.json().get("field")) == (status, field), (dev, body[:80], r.json())
            answers.append(good_probes(tc, tokens))
    assert answers[0] == answers[1]
