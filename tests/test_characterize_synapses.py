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
