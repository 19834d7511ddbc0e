"""One EP training step on ``crossbar-mnist`` (784-512-10, batch 128): in-process driver vs HTTP.

A step is what the trainer does per batch: write the hidden weights (only the cells whose level
changed), a free phase of ``t1`` updates and two nudged phases of ``t2`` from the free state
(symmetric nudging) — one request — then the weight update on the client. Contenders:

- ``in_process``: the same :class:`EPTrainer` driving the emulated driver object directly;
- ``http_msgpack``: over HTTP to a real ``hil-server`` subprocess, binary codec (the default);
- ``http_json``: the same with JSON bodies;
- ``http_msgpack_durable``: MessagePack to a second server that keeps durable state (a state
  directory: each write's changed cells and its answer committed with an fsync before it is
  answered, every call in the audit log). The other two servers run ``--ephemeral`` (in-memory
  state, no device-state journal), so ``http_msgpack_durable/http_msgpack`` is the cost of the
  store.

Real MNIST images (the first 128 training images) from the data directory, default-v1 preset.
"""

from __future__ import annotations

from benchmarks import common  # noqa: F401  (sets the BLAS threads first)

import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.common import interleaved, summary, write_result  # noqa: E402
from device_server.drivers.emulated import EmulatedCrossbar  # noqa: E402
from device_server.testing.inprocess import InProcessDevice  # noqa: E402
from trainer_client.client import DeviceClient  # noqa: E402
from trainer_client.datasets import load_mnist  # noqa: E402
from trainer_client.local_server import LocalServer  # noqa: E402
from trainer_client.protocols.ep import EPConfig, EPNetwork, EPTrainer, program_resolution  # noqa: E402

SIZES = [784, 512, 10]
DEVICE = "crossbar-mnist"


def bench_lab(*names: str) -> str:
    """One device per HTTP contender, each the same chip as the in-process one (default-v1, seed 2)."""
    return "".join(
        f'[[devices]]\nid = "{name}"\nkind = "mtj-crossbar"\npreset = "default-v1"\nseed = 2\n'
        f"topology = {{ sizes = {SIZES} }}\n\n"
        for name in names
    )


#: The driver object behind the trainer's device interface: no HTTP, no codec, no server checks.
InProcess = InProcessDevice


def make_trainer(device, info: dict, config: EPConfig) -> EPTrainer:
    net = EPNetwork.init(SIZES, info["topology"]["w_max"], np.random.default_rng(config.seed))
    return EPTrainer(device, net, config, program_resolution(info))


def run(rounds: int = 12, batch: int = 128, t1: int = 30, t2: int = 10) -> dict:
    data = load_mnist()
    x = data.x_train[:batch]
    y = np.eye(10, dtype=np.float32)[data.y_train[:batch]]
    config = EPConfig(beta=0.5, t1=t1, t2=t2, lrs=(0.05, 0.025), batch_size=batch, seed=0)
    driver = EmulatedCrossbar(DEVICE, {"sizes": SIZES}, "default-v1", seed=2)
    info = driver.describe()
    local = make_trainer(InProcess(driver), info, config)
    with tempfile.TemporaryDirectory() as tmp:
        lab, lab_durable = Path(tmp) / "bench.toml", Path(tmp) / "durable.toml"
        lab.write_text(bench_lab("bench-msgpack", "bench-json"))
        lab_durable.write_text(bench_lab("bench-durable"))
        durable_server = LocalServer(lab=lab_durable, state_dir=Path(tmp) / "state", extra_args=["--open"])
        with LocalServer(lab=lab) as url, durable_server as durable_url, DeviceClient(url) as binary, \
                DeviceClient(url, encoding="json") as text, DeviceClient(durable_url) as kept:
            with binary.lease("bench-msgpack") as lease_b, text.lease("bench-json") as lease_j, \
                    kept.lease("bench-durable") as lease_d:
                http_b = make_trainer(lease_b, info, config)
                http_j = make_trainer(lease_j, info, config)
                http_d = make_trainer(lease_d, info, config)
                samples = interleaved(
                    {"in_process": lambda: local.step(x, y), "http_msgpack": lambda: http_b.step(x, y),
                     "http_msgpack_durable": lambda: http_d.step(x, y), "http_json": lambda: http_j.step(x, y)},
                    rounds=rounds, warmup=1, skip={"http_json": 3},
                )
    result = {name: summary(s) for name, s in samples.items()}
    base = result["in_process"]["median_s"]
    return {
        "what": "one EP training step (write + free + two nudged phases in one request, update), crossbar-mnist, "
                "default-v1",
        "batch": batch, "t1": t1, "t2": t2, "nudging": "symmetric",
        "contenders": result,
        "ratios": {"http_msgpack/in_process": result["http_msgpack"]["median_s"] / base,
                   "http_json/in_process": result["http_json"]["median_s"] / base,
                   "http_msgpack_durable/http_msgpack": result["http_msgpack_durable"]["median_s"]
                   / result["http_msgpack"]["median_s"]},
    }


def main() -> None:
    result = run()
    path = write_result("ep_step_mnist", result)
    r = result["ratios"]
    print(f"EP step, crossbar-mnist, batch {result['batch']}: in-process "
          f"{1e3 * result['contenders']['in_process']['median_s']:.1f} ms, HTTP msgpack "
          f"{1e3 * result['contenders']['http_msgpack']['median_s']:.1f} ms ({r['http_msgpack/in_process']:.2f}x), "
          f"HTTP JSON {1e3 * result['contenders']['http_json']['median_s']:.1f} ms ({r['http_json/in_process']:.2f}x), "
          f"HTTP msgpack with durable state {1e3 * result['contenders']['http_msgpack_durable']['median_s']:.1f} ms "
          f"({r['http_msgpack_durable/http_msgpack']:.3f}x without)  -> {path}")


if __name__ == "__main__":
    main()
