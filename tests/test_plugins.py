"""Driver plugins: a third-party package's driver, named in a lab file, is served with no server change.

``make test`` installs ``tests/plugins/spinhil_toy_driver`` into the test environment the way a
vendor's package would be installed; it registers ``toy-linear`` under ``spinhil.drivers``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from device_server.drivers.registry import load_driver, registered
from device_server.lab import LabError, build_lab
from trainer_client.client import DeviceClient
from trainer_client.errors import NotFound
from trainer_client.local_server import LocalServer

PLUGIN_LAB = """
[lab]
name = "plugin-bench"

[[devices]]
id = "toy"
driver = "toy-linear"
n_in = 3
n_out = 2
seed = 5

[[devices]]
id = "crossbar"
kind = "mtj-crossbar"
topology = { sizes = [3, 4, 2] }
"""


def test_the_third_party_driver_is_registered() -> None:
    assert "toy-linear" in registered(), "run `make test`: it installs tests/plugins/spinhil_toy_driver"
    cls = load_driver("toy-linear")
    assert cls.__module__ == "spinhil_toy_driver"  # imported from the installed package, not from this repo
    assert "site-packages" in sys.modules[cls.__module__].__file__


def test_a_plugin_named_in_a_lab_file_is_served_over_http(tmp_path: Path) -> None:
    lab = tmp_path / "plugin.toml"
    lab.write_text(PLUGIN_LAB)
    with LocalServer(lab) as url:
        devices = {d["id"]: d for d in httpx.get(f"{url}/v1/devices").json()["devices"]}
        assert devices["toy"]["kind"] == "toy-linear"
        assert devices["crossbar"]["kind"] == "mtj-crossbar"
        with DeviceClient(url) as client, client.lease("toy") as lease:
            w = np.array([[0.5, -0.25, 0.0], [0.1, 0.2, 0.3]], np.float32)
            lease.program({"W0": w})
            x = np.array([[1.0, 0.5, -1.0]], np.float32)
            (y,) = lease.forward(x)["outputs"]
            np.testing.assert_allclose(y, x @ w.T, rtol=1e-6)
            with pytest.raises(NotFound, match="relax"):  # the plugin does not declare relax
                lease.relax(x)


def test_lab_errors_name_unknown_and_mismatched_drivers() -> None:
    with pytest.raises(LabError, match="no driver 'tokamak' is registered.*mtj-crossbar"):
        build_lab('[[devices]]\nid = "a"\ndriver = "tokamak"\n', "t")
    with pytest.raises(LabError, match="serves kind 'toy-linear', not 'mtj-crossbar'"):
        build_lab('[[devices]]\nid = "a"\ndriver = "toy-linear"\nkind = "mtj-crossbar"\nn_in = 2\nn_out = 2\n', "t")
    with pytest.raises(LabError, match="name the driver"):
        build_lab('[[devices]]\nid = "a"\nn_in = 2\n', "t")
    with pytest.raises(LabError, match="unexpected keyword argument 'n_inn'"):
        build_lab('[[devices]]\nid = "a"\ndriver = "toy-linear"\nn_inn = 2\nn_out = 2\n', "t")


def test_hil_server_lists_the_registered_drivers() -> None:
    out = subprocess.run([sys.executable, "-m", "device_server", "--list-drivers"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    names = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
    assert {"mtj-crossbar", "mock", "toy-linear"} <= names
