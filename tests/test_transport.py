"""The client's socket transport against a real socket whose other end the test scripts.

Each test runs a small TCP server on a loopback port that answers (or fails to answer) the way
a real server or network can: closing a keep-alive connection between requests, closing without
an answer, never answering, answering in chunks. The transport must reconnect where that is
safe and otherwise raise the httpx exception the client's retry rules expect.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from trainer_client.transport import SocketTransport

Handler = Callable[[socket.socket, bytes], None]


def read_request(conn: socket.socket) -> bytes:
    """One request's head and body (by Content-Length), or b"" if the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def answer(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Seen: yes\r\n" + extra + \
        b"Content-Length: %d\r\n\r\n" % len(body) + body


@pytest.fixture
def scripted() -> Iterator[Callable[[Handler], tuple[str, list[bytes]]]]:
    """``start(handler)``: a server calling ``handler(conn, request)`` per request; returns its URL and the
    requests it saw. A handler that closes ``conn`` ends that connection."""
    servers: list[socket.socket] = []

    def start(handler: Handler) -> tuple[str, list[bytes]]:
        listener = socket.create_server(("127.0.0.1", 0))
        servers.append(listener)
        seen: list[bytes] = []

        def serve_connection(conn: socket.socket) -> None:
            with conn:
                while True:
                    request = read_request(conn)
                    if not request:
                        return
                    seen.append(request)
                    handler(conn, request)
                    if conn.fileno() == -1:
                        return

        def accept_loop() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()

        threading.Thread(target=accept_loop, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}", seen

    yield start
    for listener in servers:
        listener.close()


def test_a_connection_closed_between_requests_is_replaced(scripted) -> None:
    connections = []

    def handler(conn: socket.socket, request: bytes) -> None:
        connections.append(conn)
        conn.sendall(answer(b'{"n": %d}' % len(connections)))
        conn.close()  # as a server whose keep-alive timeout has passed

    url, seen = scripted(handler)
    transport = SocketTransport(url)
    first = transport.exchange("GET", "/v1/health", {}, None, 5.0)
    threading.Event().wait(0.05)  # the close reaches the client
    second = transport.exchange("POST", "/v1/x", {"content-type": "application/json"}, b"{}", 5.0)
    assert (first.status, first.content, second.content) == (200, b'{"n": 1}', b'{"n": 2}')
    assert first.headers["x-seen"] == "yes" and first.headers["content-type"] == "application/json"
    assert len(seen) == 2 and seen[1].endswith(b"\r\n\r\n{}")  # head and body arrived whole
    transport.close()


def test_keep_alive_reuses_one_connection(scripted) -> None:
    connections = []

    def handler(conn: socket.socket, request: bytes) -> None:
        connections.append(conn)
        conn.sendall(answer(b"{}"))

    url, _ = scripted(handler)
    transport = SocketTransport(url)
    for _ in range(3):
        assert transport.exchange("POST", "/x", {}, b"x" * 300_000, 5.0).status == 200
    assert len(set(map(id, connections))) == 1
    transport.close()


def test_chunked_answers_are_read_whole(scripted) -> None:
    def handler(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
                     b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

    url, _ = scripted(handler)
    assert SocketTransport(url).exchange("GET", "/", {}, None, 5.0).content == b"hello world"


@pytest.mark.parametrize("behaviour,error", [
    ("close", httpx.RemoteProtocolError),  # the server may have acted: resent only when that is harmless
    ("silent", httpx.ReadTimeout),
])
def test_failures_after_sending_are_httpx_errors(scripted, behaviour: str, error: type[Exception]) -> None:
    hold = threading.Event()

    def handler(conn: socket.socket, request: bytes) -> None:
        if behaviour == "close":
            conn.close()
        else:
            hold.wait(5)

    url, seen = scripted(handler)
    with pytest.raises(error):
        SocketTransport(url).exchange("POST", "/x", {}, b"{}", 0.3)
    hold.set()
    assert len(seen) == 1


def test_nobody_listening_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(httpx.ConnectError):
            SocketTransport(f"http://127.0.0.1:{port}").exchange("GET", "/", {}, None, 2.0)


def test_only_plain_http_urls() -> None:
    with pytest.raises(ValueError, match="http://"):
        SocketTransport("https://example.org")


def test_reuse_check_works_on_descriptors_above_1024(scripted) -> None:
    """A process with many open files (a data loader, a big run) gets descriptor numbers of 1024
    and above; the check that a pooled connection is still open must not use ``select`` then."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        # such a process never gets a descriptor of 1024 or above: the failure cannot happen there
        pytest.skip(f"the hard limit on open files ({hard}) is below 1200: no descriptor reaches 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    spare = []
    try:
        while True:  # fill the low descriptors, so the transport's socket gets one above 1024
            spare.append(socket.socket())
            if spare[-1].fileno() > 1050:
                break
        url, seen = scripted(lambda conn, request: conn.sendall(answer(b"{}")))
        transport = SocketTransport(url)
        for _ in range(3):  # the second and third take the pooled connection through the check
            assert transport.exchange("GET", "/x", {}, None, 2.0).status == 200
        assert len(seen) == 3
        transport.close()
    finally:
        for s in spare:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_every_address_of_the_host_is_tried(scripted, monkeypatch) -> None:
    """A host that resolves to an address nobody listens on first (``localhost`` as ``::1`` on many
    systems, the server on 127.0.0.1) is reached at its next address, as httpx would."""
    url, seen = scripted(lambda conn, request: conn.sendall(answer(b"{}")))
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))  # bound, not listening: refused
        dead_port = dead.getsockname()[1]
        real = socket.getaddrinfo

        def resolve(host, port_, *args, **kwargs):
            if host == "two-addresses.test":
                first = real("127.0.0.1", dead_port, *args, **kwargs)[0]
                return [(*first[:4], ("127.0.0.1", dead_port)), *real("127.0.0.1", port_, *args, **kwargs)]
            return real(host, port_, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        answer_ = SocketTransport(f"http://two-addresses.test:{port}").exchange("GET", "/x", {}, None, 2.0)
    assert answer_.status == 200 and len(seen) == 1


def test_device_ids_are_percent_encoded_in_paths(client) -> None:
    """An id with a space or a non-ASCII letter reaches the server as it was typed: an unknown one
    is a 404 naming it, not a client-side crash (``http.client`` refuses such a path unencoded)."""
    from trainer_client.errors import NotFound

    for name in ("no such", "chïp"):
        with pytest.raises(NotFound, match="is not in this lab") as info:
            client.describe(name)
        assert repr(name) in str(info.value)
    with pytest.raises(NotFound):  # the server decodes %2F before routing: no such route, still a 404
        client.describe("a/b")
