"""Serve an app on a free loopback port in a background thread (real uvicorn, real HTTP).

The conformance kit builds its lab from driver objects in this process (a driver under test may
not be installed as a plugin yet), so it cannot start ``hil-server`` as a subprocess; a uvicorn
server in a thread is the same server on the same socket layer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from device_server.serve import listening_socket


@contextmanager
def serve_in_thread(app: FastAPI, start_timeout_s: float = 20.0) -> Iterator[str]:
    """Run ``app`` on ``127.0.0.1:<free port>`` until the block ends; yields the base URL."""
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="spinhil-kit-server")
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
