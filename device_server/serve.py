"""Serve an app with uvicorn on a listening socket of our own, sized for training traffic.

A training step sends about 300 KB each way in one request. With the kernel's default socket
buffers the client's send stalls until the server has drained the first 64–128 KB, and the
answer's write stalls the same way: several wake-ups of both processes per request. The
listening socket gets receive and send buffers that hold a whole request and answer
(:data:`SOCKET_BUFFER_BYTES`); accepted connections inherit them. The client sizes its own
sockets to match (``trainer_client.client.SOCKET_OPTIONS``).

What the server built at start (the lab, the app, its schemas) lives as long as the process:
it is moved out of the garbage collector's sight (``gc.freeze``) before the first request, so
the collector's occasional full pass, which walked it all (a pause of about 120 ms once in
600 training steps, measured), only walks what requests leave behind.

Uvicorn's proxy-header middleware is off: the server records no client addresses, so rewriting
them from ``X-Forwarded-For`` would cost every request a layer for nothing.
"""

from __future__ import annotations

import gc
import logging
import socket

import uvicorn
from fastapi import FastAPI

#: [bytes] receive and send buffer of every connection (the kernel doubles it for its bookkeeping).
SOCKET_BUFFER_BYTES = 1 << 20


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: any free port), with training-sized buffers, not yet listening.

    Raises ``OSError`` (the address is in use, the host unknown) with the address in the message.
    """
    # uvicorn's rule: IPv6 only for a host written with a colon (``::1``, ``::``), so that
    # ``localhost`` means 127.0.0.1 even where it resolves to ``::1`` first
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # before listen(): accepted connections inherit the buffers, and the window scale is fixed at the handshake
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def serve(app: FastAPI, sock: socket.socket, log_level: str) -> None:
    """Run ``app`` on ``sock`` until a signal stops it (uvloop and httptools when installed)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("device_server").info("listening on http://%s:%d", shown, port)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, proxy_headers=False)
    gc.collect()
    gc.freeze()
    uvicorn.Server(config).run(sockets=[sock])
