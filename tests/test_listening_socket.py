"""The server's listening socket (``device_server.serve``): which address a host name binds."""

from __future__ import annotations

import socket

from device_server.serve import listening_socket


def test_localhost_binds_ipv4_even_where_it_resolves_to_ipv6_first(monkeypatch) -> None:
    """Where ``/etc/hosts`` lists ``::1 localhost`` first (Debian, Ubuntu, macOS), ``--host localhost``
    still listens on 127.0.0.1, as uvicorn does: IPv6 only for a host written with a colon."""
    real = socket.getaddrinfo

    def ipv6_first(host, port, family=0, *args, **kwargs):
        if host == "localhost" and family in (0, socket.AF_UNSPEC):
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                    *real("127.0.0.1", port, socket.AF_INET, *args, **kwargs)]
        if host == "localhost":
            host = "127.0.0.1" if family == socket.AF_INET else "::1"
        return real(host, port, family, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", ipv6_first)
    sock = listening_socket("localhost", 0)
    try:
        assert sock.family == socket.AF_INET
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()
