"""One EP MNIST epoch (784-512-10, default-v1): the bare NumPy floor, the driver in-process, HTTP.

DESIGN.md §7 budgets: the epoch over HTTP (binary codec) at most 1.25× the same epoch with the
driver in-process, and at most 2× the floor. Contenders, each training its own network on the
same batches in the same order with the same hyper-parameters (``hil-train ep --dataset mnist``'s
defaults):

- ``floor``: a bare NumPy EP written here — float32, the input drive once per batch, the
  synchronous dynamics and the symmetric estimate in closed form, Adam; no device model, no noise,
  no HTTP;
- ``in_process``: :class:`EPTrainer` driving the emulated driver object directly (no HTTP, no
  codec, no server checks);
- ``http_msgpack``: the same trainer over HTTP to a real ``hil-server`` subprocess (MessagePack);
- ``http_json``: the same with JSON bodies, on a slice of the epoch only (it is an order of
  magnitude slower); reported per batch beside MessagePack's.

The epoch (every training batch, then the test set classified from free phases) is cut into
chunks; contenders run chunk by chunk in turn (interleaved), one BLAS thread each, so drift of a
shared machine hits all of them alike. Each contender's epoch time is the sum of its chunks.

Beside the wall time, the CPU time each contender spent: this process's (``time.process_time``)
for all of them, plus the server process's (``/proc/<pid>/stat``, Linux) for HTTP, which runs in
a process of its own and may work while the trainer computes (it draws its next noise then). The
budgets are on wall time; the CPU figures say how much of the machine each contender used.
"""

from __future__ import annotations

from benchmarks import common  # noqa: F401  (sets the BLAS threads first)

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.common import write_result  # noqa: E402
from benchmarks.ep_step import InProcess  # noqa: E402
from device_models.crossbar import default_w_max  # noqa: E402
from device_server.drivers.emulated import EmulatedCrossbar  # noqa: E402
from trainer_client.cli_common import lab_text  # noqa: E402
from trainer_client.client import DeviceClient  # noqa: E402
from trainer_client.datasets import load_mnist  # noqa: E402
from trainer_client.ep_command import EP_DEFAULTS  # noqa: E402
from trainer_client.local_server import LocalServer  # noqa: E402
from trainer_client.protocols.ep import EPConfig, EPNetwork, EPTrainer, program_resolution  # noqa: E402

SIZES = [784, 512, 10]
SEED = 2
#: Training batches per chunk (an epoch of 938 batches is about 20 rounds).
CHUNK = 47
#: Batches the JSON contender runs (a slice of the epoch).
JSON_BATCHES = 20


class FloorEP:
    """Bare NumPy EP of the same network and maths: float32, no device, no noise, no HTTP.

    Free phase ``t1`` synchronous updates from zero, nudged phases ``±β`` for ``t2`` from the free
    state, ``s_n ← ρ(W_{n−1}s_{n−1} + b_{n−1} + W_nᵀs_{n+1} [+ β(y − s_N)])`` with the STNO steady-state
    response ``ρ(h) = z/(z + 1 + Q)·(ζ_max + Q)/(ζ_max − 1)``, ``z = clip(h, 0, 1)(ζ_max − 1)``,
    estimate ``(1/2β)[s sᵀ|₊β − s sᵀ|₋β]``, Adam (Kingma & Ba 2015) on the hidden weights, which are
    clipped to ``±w_max`` when used (what the device would hold).
    """

    def __init__(self, config: EPConfig, q: float = 2.0, zeta_max: float = 4.0) -> None:
        rng = np.random.default_rng(config.seed)
        self.c = config
        self.w_max = [np.float32(default_w_max(n)) for n in SIZES[:-1]]
        self.w: list[np.ndarray] = []
        self.b: list[np.ndarray] = []
        for k in range(2):
            bound = 1.0 / np.sqrt(SIZES[k])
            self.w.append(rng.uniform(-bound, bound, (SIZES[k + 1], SIZES[k])).astype(np.float32))
            self.b.append(rng.uniform(-bound, bound, SIZES[k + 1]).astype(np.float32))
        self.params = [*self.w, *self.b]
        self.lr = [config.lrs[0], config.lrs[1], config.lrs[0], config.lrs[1]]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0
        self.gain = np.float32(zeta_max - 1.0)
        self.offset = np.float32(1.0 + q)
        self.scale = np.float32((zeta_max + q) / (zeta_max - 1.0))

    def rho(self, h: np.ndarray) -> np.ndarray:
        z = np.clip(h, 0.0, 1.0)
        z *= self.gain
        out = z / (z + self.offset)
        out *= self.scale
        return out

    def relax(self, w, b, drive, s1, s2, steps, beta=0.0, y=None):
        for _ in range(steps):
            h1 = drive + s2 @ w[1]
            h2 = s1 @ w[1].T + b[1]
            if beta:
                h2 += np.float32(beta) * (y - s2)
            s1, s2 = self.rho(h1), self.rho(h2)
        return s1, s2

    def used(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return ([np.clip(w, -m, m) for w, m in zip(self.w, self.w_max)],
                [np.clip(b, -m, m) for b, m in zip(self.b, self.w_max)])

    def step(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        c = self.c
        w, b = self.used()
        drive = x @ w[0].T + b[0]  # the input drive, once per batch
        zeros = (np.zeros((len(x), SIZES[1]), np.float32), np.zeros((len(x), SIZES[2]), np.float32))
        f1, f2 = self.relax(w, b, drive, *zeros, c.t1)
        p1, p2 = self.relax(w, b, drive, f1, f2, c.t2, c.beta, y)
        m1, m2 = self.relax(w, b, drive, f1, f2, c.t2, -c.beta, y)
        k = np.float32(1.0 / (2.0 * c.beta * len(x)))
        grads = [((p1 - m1).T @ x) * k, (p2.T @ p1 - m2.T @ m1) * k, (p1 - m1).sum(0) * k, (p2 - m2).sum(0) * k]
        self.t += 1
        c1, c2 = 1.0 - 0.9**self.t, 1.0 - 0.999**self.t
        for p, g, m, v, lr in zip(self.params, grads, self.m, self.v, self.lr):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * np.square(g)
            p += (np.float32(lr / c1) * m) / (np.sqrt(v / np.float32(c2)) + np.float32(1e-8))
        return f2

    def predict(self, x: np.ndarray, batch: int = 1000) -> np.ndarray:
        w, b = self.used()
        out = []
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            zeros = (np.zeros((len(xb), SIZES[1]), np.float32), np.zeros((len(xb), SIZES[2]), np.float32))
            out.append(np.argmax(self.relax(w, b, xb @ w[0].T + b[0], *zeros, self.c.t1)[1], axis=1))
        return np.concatenate(out)


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def run(batches: int | None = None) -> dict:
    d = EP_DEFAULTS["mnist"]
    config = EPConfig(beta=d["beta"], t1=d["t1"], t2=d["t2"], lrs=d["lr"], batch_size=d["batch_size"],
                      optimizer=d["optimizer"], seed=0)
    data = load_mnist()
    bs = config.batch_size
    order = np.random.default_rng(0).permutation(len(data.x_train))
    n_batches = -(-len(order) // bs) if batches is None else batches
    eye = np.eye(10, dtype=np.float32)
    batch_list = [(data.x_train[order[i * bs:(i + 1) * bs]], eye[data.y_train[order[i * bs:(i + 1) * bs]]])
                  for i in range(n_batches)]
    driver = EmulatedCrossbar("bench", {"sizes": SIZES}, "default-v1", seed=SEED)
    info = driver.describe()
    w_max = info["topology"]["w_max"]

    def trainer(device) -> EPTrainer:
        return EPTrainer(device, EPNetwork.init(SIZES, w_max, np.random.default_rng(config.seed)), config,
                         program_resolution(info))

    def chunks(step, predict):
        """The epoch as a list of callables: training chunks, then the test set."""
        parts = [lambda lo=lo: [step(*batch_list[i]) for i in range(lo, min(lo + CHUNK, n_batches))]
                 for lo in range(0, n_batches, CHUNK)]
        parts.append(lambda: predict(data.x_test))
        return parts

    times: dict[str, float] = {}
    accuracy: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lab = Path(tmp) / "bench.toml"
        lab.write_text(lab_text([{"id": name, "sizes": SIZES, "preset": "default-v1", "seed": SEED}
                                 for name in ("bench-msgpack", "bench-json")]))
        server = LocalServer(lab=lab)
        with server as url, DeviceClient(url) as binary, DeviceClient(url, encoding="json") as text:
            with binary.lease("bench-msgpack") as lease_b, text.lease("bench-json") as lease_j:
                floor = FloorEP(config)
                local, http_b, http_j = trainer(InProcess(driver)), trainer(lease_b), trainer(lease_j)
                contenders = {"floor": (floor.step, floor.predict), "in_process": (local.step, local.predict),
                              "http_msgpack": (http_b.step, http_b.predict)}
                plans = {name: chunks(*fns) for name, fns in contenders.items()}
                results: dict[str, list] = {name: [] for name in contenders}
                times = {name: 0.0 for name in contenders}
                cpu: dict[str, float | None] = {name: 0.0 for name in contenders}
                server_cpu: float | None = 0.0
                pid = server.process.pid if server.process is not None else -1
                for r in range(len(plans["floor"])):
                    for name, plan in plans.items():
                        s0 = process_cpu_s(pid) if name.startswith("http") else None
                        c0, t0 = time.process_time(), time.perf_counter()
                        results[name].append(plan[r]())
                        times[name] += time.perf_counter() - t0
                        cpu[name] += time.process_time() - c0
                        s1 = process_cpu_s(pid) if name.startswith("http") else None
                        if s0 is None or s1 is None:
                            server_cpu = None if name.startswith("http") else server_cpu
                        elif server_cpu is not None:
                            server_cpu += s1 - s0
                for name in contenders:
                    accuracy[name] = float(np.mean(results[name][-1] == data.y_test))
                # JSON against MessagePack on the same slice of batches, interleaved batch by batch
                json_s = binary_s = 0.0
                for i in range(JSON_BATCHES):
                    t0 = time.perf_counter()
                    http_j.step(*batch_list[i])
                    t1 = time.perf_counter()
                    http_b.step(*batch_list[i])
                    json_s += t1 - t0
                    binary_s += time.perf_counter() - t1
    return {
        "what": "one EP MNIST epoch (784-512-10, default-v1): training batches then the test set; "
                "floor = bare NumPy EP, in_process = driver object, http_msgpack = real server over HTTP",
        "batches": n_batches, "batch_size": bs, "t1": config.t1, "t2": config.t2, "optimizer": config.optimizer,
        "lrs": list(config.lrs), "beta": config.beta, "chunk_batches": CHUNK,
        "epoch_s": times, "test_accuracy_after": accuracy,
        "cpu_s": {"floor": cpu["floor"], "in_process": cpu["in_process"], "http_msgpack_client": cpu["http_msgpack"],
                  "http_msgpack_server": server_cpu,
                  "http_msgpack_total": None if server_cpu is None else cpu["http_msgpack"] + server_cpu},
        "ratios": {"http_msgpack/in_process": times["http_msgpack"] / times["in_process"],
                   "http_msgpack/floor": times["http_msgpack"] / times["floor"],
                   "in_process/floor": times["in_process"] / times["floor"]},
        "budgets": {"http_msgpack/in_process": 1.25, "http_msgpack/floor": 2.0},
        "json_slice": {"batches": JSON_BATCHES, "http_json_per_batch_s": json_s / JSON_BATCHES,
                       "http_msgpack_per_batch_s": binary_s / JSON_BATCHES, "json/msgpack": json_s / binary_s},
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, help="training batches (default: the whole epoch)")
    args = p.parse_args(argv or [])
    result = run(args.batches)
    path = write_result("ep_epoch_mnist", result)
    t, r, j, c = result["epoch_s"], result["ratios"], result["json_slice"], result["cpu_s"]
    print(f"EP MNIST epoch ({result['batches']} batches of {result['batch_size']} + test set): floor {t['floor']:.1f} s, "
          f"in-process {t['in_process']:.1f} s, HTTP msgpack {t['http_msgpack']:.1f} s -> HTTP/in-process "
          f"{r['http_msgpack/in_process']:.2f}x (budget 1.25x), HTTP/floor {r['http_msgpack/floor']:.2f}x (budget 2x); "
          f"JSON {1e3 * j['http_json_per_batch_s']:.0f} ms vs msgpack {1e3 * j['http_msgpack_per_batch_s']:.0f} ms "
          f"per batch ({j['json/msgpack']:.1f}x); test accuracy after the epoch "
          + ", ".join(f"{k} {100 * v:.2f} %" for k, v in result["test_accuracy_after"].items())
          + f"; CPU s: floor {c['floor']:.1f}, in-process {c['in_process']:.1f}, HTTP client {c['http_msgpack_client']:.1f}"
          + ("" if c["http_msgpack_server"] is None else f" + server {c['http_msgpack_server']:.1f}") + f"  -> {path}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
