"""The server as a whole: OpenAPI, metrics, latency modes, lab files, the hil-server command."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from device_server.app import create_app
from device_server.lab import LabError, build_lab, load_lab
from device_server.settings import Settings
from tests.conftest import write_lab
from trainer_client.client import DeviceClient

OPERATIONS = [
    ("post", "/v1/devices/{device_id}/forward"),
    ("post", "/v1/devices/{device_id}/relax"),
    ("put", "/v1/devices/{device_id}/weights"),
    ("post", "/v1/devices/{device_id}/weights:update"),
]


def test_openapi_describes_binary_and_json_bodies(client: DeviceClient):
    doc = client.request("GET", "/openapi.json")
    schemas = doc["components"]["schemas"]
    for method, path in OPERATIONS:
        op = doc["paths"][path][method]
        body = op["requestBody"]["content"]
        assert set(body) == {"application/json", "application/msgpack"}
        for media, content in body.items():
            name = content["schema"]["$ref"].rsplit("/", 1)[1]
            text = str(schemas[name])
            assert ("ArrayMsgpack" in text) == (media == "application/msgpack")
            assert ("ArrayJSON" in text) == (media == "application/json")
        assert set(op["responses"]["200"]["content"]) == {"application/json", "application/msgpack"}
        assert "application/problem+json" in op["responses"]["422"]["content"]
        assert any(p["name"] == "X-Lease-Token" for p in op["parameters"])
    assert schemas["ArrayMsgpack"]["required"] == ["dtype", "shape", "data"]
    get_weights = doc["paths"]["/v1/devices/{device_id}/weights"]["get"]
    assert "application/msgpack" in get_weights["responses"]["200"]["content"]


def test_metrics_count_operations_time_and_energy(client: DeviceClient):
    with client.lease("crossbar-digits-ideal") as lease:
        report = lease.forward(np.full((3, 64), 0.5))["report"]
    text = client.request("GET", "/metrics")

    def value(prefix: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(prefix) and 'device="crossbar-digits-ideal"' in line)

    assert value("spinhil_device_operations_total") >= 1
    assert value("spinhil_energy_joules_total") >= report["energy_j"] > 0
    assert value("spinhil_device_time_seconds_total") >= report["device_time_s"] > 0
    assert 'route="/v1/devices/{device_id}/forward"' in text


def test_health_names_the_lab(client: DeviceClient):
    health = client.health()
    assert health["status"] == "ok" and health["lab"] == "default" and len(health["lab_config_sha256"]) == 64
    ids = {d["id"] for d in client.devices()}
    assert {"crossbar-digits", "crossbar-mnist"} <= ids
    mnist = client.describe("crossbar-mnist")
    assert mnist["topology"]["sizes"] == [784, 512, 10]
    assert client.describe("crossbar-digits")["topology"]["sizes"][::2] == [64, 10]


@pytest.mark.parametrize("latency,scale", [("virtual", 0.0), ("real", 1.0), ("0.5", 0.5)])
def test_latency_modes_pace_on_instrument_time(latency: str, scale: float):
    """A first full write of crossbar-digits takes ~0.4 s of bench time: real mode waits for it."""
    with TestClient(create_app(Settings(latency=latency, open=True, ephemeral=True))) as tc:
        client = DeviceClient("http://testserver", transport=tc._transport)  # noqa: SLF001
        with client.lease("crossbar-digits", keepalive=False) as lease:
            t0 = time.perf_counter()
            report = lease.program({"W0": np.full((256, 64), 0.1)}, return_achieved=False)["report"]
            wall = time.perf_counter() - t0
    assert report["instrument_time_s"] > 0.2
    if scale:
        assert wall >= scale * report["instrument_time_s"]
    else:
        assert wall < 0.5 * report["instrument_time_s"]


def test_lab_files_are_checked(tmp_path):
    good = write_lab(tmp_path / "good.toml", [{"id": "x1", "sizes": [4, 3, 2], "overrides": {"read_std": 0.02}}])
    lab = load_lab(good)
    assert list(lab.devices) == ["x1"]
    assert lab.devices["x1"].describe()["settings"]["read_std"]["value"] == 0.02
    bad = {
        "unknown kind": '[[devices]]\nid = "a"\nkind = "tokamak"\ntopology = { sizes = [2, 2] }\n',
        "unknown setting": '[[devices]]\nid = "a"\nkind = "mtj-crossbar"\ntopology = { sizes = [2, 2] }\n'
                           'overrides = { flux_capacitor = 1 }\n',
        "setting beyond its limit": '[[devices]]\nid = "a"\nkind = "mtj-crossbar"\ntopology = { sizes = [2, 2] }\n'
                                    'overrides = { prog_std = -1.0 }\n',
        "unknown preset": '[[devices]]\nid = "a"\nkind = "mtj-crossbar"\npreset = "perfect"\ntopology = { sizes = [2, 2] }\n',
        "duplicate id": '[[devices]]\nid = "a"\nkind = "mtj-crossbar"\ntopology = { sizes = [2, 2] }\n' * 2,
        "not TOML": "[[devices]\n",
        "bad id": '[[devices]]\nid = "a b/c"\nkind = "mtj-crossbar"\ntopology = { sizes = [2, 2] }\n',
    }
    for what, text in bad.items():
        with pytest.raises(LabError):
            build_lab(text, what)


def test_hil_server_check_and_bad_lab(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "device_server", "--check"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "crossbar-mnist" in ok.stdout
    lab = tmp_path / "broken.toml"
    lab.write_text('[[devices]]\nid = "a"\nkind = "tokamak"\ntopology = { sizes = [2, 2] }\n')
    bad = subprocess.run([sys.executable, "-m", "device_server", "--lab", str(lab), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "tokamak" in bad.stderr


def test_hil_server_refuses_a_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([sys.executable, "-m", "device_server", "--open", "--ephemeral", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert busy.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
