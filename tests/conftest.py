"""Fixtures: real servers (``hil-server`` subprocesses on free loopback ports) and in-process apps.

End-to-end tests talk HTTP over real sockets to a real server; unit tests of the HTTP layer use
the app in-process (Starlette's test transport) for speed. Data come from ``../shared/data``
(``SPINHIL_DATA_DIR`` overrides).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from device_server.app import create_app
from device_server.settings import Settings
from trainer_client.client import DeviceClient
from trainer_client.local_server import LocalServer

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("SPINHIL_DATA_DIR", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``hil-server`` on the default lab, shared by the session's end-to-end tests."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with LocalServer(log_path=log) as url:
        yield url


@pytest.fixture
def client(server_url: str) -> Iterator[DeviceClient]:
    with DeviceClient(server_url) as c:
        yield c


@pytest.fixture
def json_client(server_url: str) -> Iterator[DeviceClient]:
    with DeviceClient(server_url, encoding="json") as c:
        yield c


def write_lab(path: Path, devices: list[dict]) -> Path:
    """Write a small lab file; each device dict holds id, sizes, preset, seed and overrides."""
    lines = ['[lab]\nname = "test"\n']
    for d in devices:
        lines.append("[[devices]]")
        lines.append(f'id = "{d["id"]}"\nkind = "mtj-crossbar"\npreset = "{d.get("preset", "default-v1")}"')
        lines.append(f'seed = {d.get("seed", 0)}\ntopology = {{ sizes = {list(d["sizes"])} }}')
        overrides = d.get("overrides", {})
        if overrides:
            body = ", ".join(f"{k} = {v!r}".replace("True", "true").replace("False", "false") for k, v in overrides.items())
            lines.append(f"overrides = {{ {body} }}")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def app_client() -> Iterator[TestClient]:
    """The default-lab app in-process, for fast HTTP-layer tests."""
    with TestClient(create_app(Settings(open=True, ephemeral=True))) as tc:
        yield tc


@pytest.fixture
def inprocess(app_client: TestClient) -> Iterator[DeviceClient]:
    """A ``DeviceClient`` speaking to the in-process app through its ASGI transport."""
    with DeviceClient("http://testserver", transport=app_client._transport) as c:  # noqa: SLF001
        yield c


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@dataclass
class SharedLab:
    """A keyed ``hil-server`` with a state directory, and one API key per role."""

    url: str
    state_dir: Path
    lab: Path
    keys: dict[str, str]
    server: LocalServer

    def client(self, who: str, **kwargs) -> DeviceClient:
        return DeviceClient(self.url, api_key=self.keys[who], **kwargs)


def make_keys(state_dir: Path, roles: dict[str, str]) -> dict[str, str]:
    """API keys ``{name: key}`` made directly in the state database (the CLI is tested on its own)."""
    from device_server.auth import create_key
    from device_server.store import Store

    store = Store.open(state_dir)
    try:
        return {name: create_key(store, name, role)[0] for name, role in roles.items()}
    finally:
        store.close()


SMALL_LAB = [{"id": "chip", "sizes": [16, 12, 4], "seed": 3}, {"id": "chip-ideal", "sizes": [16, 12, 4], "preset": "ideal"},
             {"id": "digits", "sizes": [64, 32, 10], "preset": "ideal"}]


@pytest.fixture(scope="module")
def shared_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedLab]:
    """A shared lab for a module's tests: keys required, state on disk, lease TTL 3 s."""
    root = tmp_path_factory.mktemp("shared-lab")
    lab = write_lab(root / "lab.toml", SMALL_LAB)
    state = root / "state"
    keys = make_keys(state, {"admin": "admin", "alice": "user", "bob": "user", "olga": "observer"})
    server = LocalServer(lab=lab, state_dir=state, extra_args=["--lease-ttl", "3"], log_path=root / "server.log")
    with server as url:
        yield SharedLab(url, state, lab, keys, server)
