"""Start a real device server as a subprocess on a free loopback port (``hil-train demo``, tests).

The trainer never imports the server: it runs the ``hil-server`` program and talks HTTP to it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainer_client.client import DeviceClient
from trainer_client.errors import TransportError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover (runs in the child between fork and exec)
    """Linux: the server gets SIGTERM when the process that started it dies, even by SIGKILL.

    A killed ``hil-train`` must not leave an orphaned server behind (``--resume`` starts a new one).
    """
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


class LocalServer:
    """``with LocalServer() as url:`` — a ``hil-server`` process on loopback, stopped on exit."""

    def __init__(self, lab: Path | None = None, latency: str = "virtual", extra_args: list[str] | None = None,
                 startup_timeout_s: float = 60.0, log_path: Path | None = None, state_dir: Path | None = None,
                 port: int | None = None) -> None:
        self.lab = lab
        self.latency = latency
        self.extra_args = extra_args or []
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log = None
        self.url = ""
        self.health: dict = {}
        self.state_dir = state_dir
        self.port = port
        # without a state directory: a private lab, open and forgotten at exit (the demo's);
        # with one: keys required and state kept, as on a shared lab server
        self.access_args = ["--open", "--ephemeral"] if state_dir is None else ["--state-dir", str(state_dir)]

    def start(self) -> str:
        port = self.port or free_port()
        self.port = port
        cmd = [sys.executable, "-m", "device_server", "--host", "127.0.0.1", "--port", str(port),
               "--latency", self.latency, "--log-level", "info", *self.access_args, *self.extra_args]
        if self.lab is not None:
            cmd += ["--lab", str(self.lab)]
        # the server's output goes to the log file (appended: a restarted server keeps its history),
        # or to a temporary one: a failed start quotes it
        self._log = open(self.log_path, "a+b") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        # The server's arrays are small per request; BLAS threads there only fight the client for
        # the same cores (measured: the demo twice as slow on 2 cores). A user's setting wins.
        env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               **os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                        preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.startup_timeout_s
        with DeviceClient(self.url, retries=0) as client:
            while True:
                try:
                    self.health = client.wait_healthy(0.5)
                    return self.url
                except TransportError:
                    code = self.process.poll()
                    if code is None and time.monotonic() < deadline:
                        continue
                    said = self._output_tail()
                    self.stop()
                    raise TransportError(f"hil-server did not start on {self.url} (exit code {code})"
                                         + (f": {said}" if said else "")) from None

    def _output_tail(self, lines: int = 5) -> str:
        """The last lines the server printed (why it would not start)."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip()
        return " | ".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """``kill -9`` the server (a crash: no shutdown, nothing flushed); ``start()`` brings it back
        on the same port."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.stop()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
