"""How :class:`~trainer_client.client.DeviceClient` moves bytes: one request in, one whole answer out.

Two transports, one contract (``exchange`` and ``close``, answers as :class:`Answer`, failures as
httpx's exception types so that the client's retries treat both alike)::

    SocketTransport   http:// — keep-alive HTTP/1.1 connections of the standard library's http.client
    HttpxTransport    anything httpx can reach: an in-process ASGI app (tests), TLS (https://)

Why a transport of our own for plain sockets: a training step is one request of about 300 KB
and an answer of about 270 KB, and a step's HTTP overhead is budgeted at about a millisecond
(DESIGN.md §7). httpx's client layers (cookies, auth flows, redirects, hooks), its request and
response models, httpcore's pool and h11's event parser cost about 0.6 ms of Python per step
on a cache the step's matrix products have just flushed; ``http.client`` sends the request in
two writes (headers, body), reads the answer with a few large reads, and has been part of
Python for decades. The sockets are sized for a whole request or answer (:data:`SOCKET_OPTIONS`;
the server sizes its own to match), so neither side waits for the other to drain them.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

#: Options of the client's sockets: no Nagle delay (headers and body are two writes, each wanted at
#: once), and buffers that hold a whole request or answer of a training step (≈ 300 KB each way).
SOCKET_OPTIONS: list[tuple[int, int, int]] = [
    (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
    (socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20),
    (socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20),
]


@dataclass(frozen=True)
class Answer:
    """A whole HTTP answer: status, reason phrase, headers (names in lower case) and body."""

    status: int
    reason: str
    headers: Mapping[str, str]
    content: bytes


class _Connection(http.client.HTTPConnection):
    """An ``http.client`` connection whose socket gets :data:`SOCKET_OPTIONS` before it connects
    (buffer sizes set later do not widen the window agreed at the handshake), and which writes a
    request's head and body in one system call (:meth:`send_request`)."""

    _head: bytes | None = None

    def send_request(self, method: str, target: str, headers: dict[str, str], body: bytes | None) -> None:
        """``request()``, with the head held back and written together with the body.

        Two writes wake the server twice: it starts on the head while the body is still on its
        way, and on two cores the sender may lose its core until the server has parsed, routed and
        gone back to wait for the rest. One write hands the kernel the whole request at once.
        """
        self._head = b"" if body else None  # ``send`` fills it with the head, then writes both
        try:
            self.request(method, target, body=body, headers=headers)
        finally:
            self._head = None

    def send(self, data: bytes) -> None:  # http.client writes the head, then the body
        if self._head == b"":
            self._head = bytes(data)
            return
        if self._head:
            head, self._head = self._head, None
            _send_all(self.sock, [head, data])
            return
        super().send(data)

    def connect(self) -> None:
        """Each address the host resolves to in turn (as ``socket.create_connection`` does: a
        ``localhost`` that resolves to ``::1`` first still reaches a server on 127.0.0.1), with
        :data:`SOCKET_OPTIONS` set before the connection is made."""
        last: OSError | None = None
        for family, kind, proto, _, address in socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                for level, option, value in SOCKET_OPTIONS:
                    sock.setsockopt(level, option, value)
                sock.settimeout(self.timeout)
                sock.connect(address)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            except BaseException:
                sock.close()
                raise
            self.sock = sock
            return
        raise last if last is not None else OSError(f"{self.host!r} resolves to no address")


def _send_all(sock: socket.socket, parts: list[bytes]) -> None:
    """Write ``parts`` in as few system calls as the kernel allows (scatter-gather, no joined copy)."""
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if sent:
            views[0] = views[0][sent:]


def _still_open(sock: socket.socket) -> bool:
    """Whether an idle keep-alive connection can be reused: the server sends nothing on it unless
    it closed it, so readable means closed (or out of step). ``poll``, not ``select``, where there
    is one: ``select`` fails on descriptor numbers of 1024 and above."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)
    return not select.select([sock], [], [], 0)[0]


class SocketTransport:
    """Keep-alive HTTP/1.1 connections to one ``http://host:port`` origin, pooled across threads.

    A connection is taken from the pool for one exchange and put back once its answer has been
    read whole; one the server has closed meanwhile (its keep-alive timeout) is dropped before
    use, so a request is never written into a dead socket when a fresh one would do.
    """

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"SocketTransport serves http://host[:port] URLs, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def exchange(self, method: str, path: str, headers: Mapping[str, str], content: bytes | None,
                 timeout_s: float) -> Answer:
        """Send one request, read its whole answer; httpx's exception types on failure."""
        conn = self._checkout(timeout_s)
        try:
            try:
                conn.sock.settimeout(timeout_s)
                conn.send_request(method, self.prefix + path, dict(headers), content)
            except TimeoutError as exc:
                raise httpx.WriteTimeout(f"sending {method} {path}: {exc}") from exc
            except OSError as exc:
                raise httpx.WriteError(f"sending {method} {path}: {exc!r}") from exc
            try:
                response = conn.getresponse()
                body = response.read()
            except TimeoutError as exc:
                raise httpx.ReadTimeout(f"waiting for the answer to {method} {path}: {exc}") from exc
            except http.client.HTTPException as exc:  # closed before answering, a broken status line or body
                raise httpx.RemoteProtocolError(f"answer to {method} {path}: {exc!r}") from exc
            except OSError as exc:
                raise httpx.ReadError(f"reading the answer to {method} {path}: {exc!r}") from exc
        except BaseException:
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            with self._lock:
                self._idle.append(conn)
        return Answer(response.status, response.reason, {k.lower(): v for k, v in response.getheaders()}, body)

    def _checkout(self, timeout_s: float) -> _Connection:
        """An idle connection that is still open, or a new one."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if _still_open(conn.sock):
                return conn
            conn.close()
        conn = _Connection(self.host, self.port, timeout=timeout_s)
        try:
            conn.connect()
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {self.host}:{self.port}: {exc}") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"connecting to {self.host}:{self.port}: {exc!r}") from exc
        return conn

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class HttpxTransport:
    """Any ``httpx.BaseTransport`` (an in-process app in tests, ``httpx.HTTPTransport`` for TLS)
    behind the same contract, the answer read whole."""

    def __init__(self, base_url: str, transport: httpx.BaseTransport) -> None:
        self.base_url = base_url.rstrip("/")
        self.transport = transport

    def exchange(self, method: str, path: str, headers: Mapping[str, str], content: bytes | None,
                 timeout_s: float) -> Answer:
        request = httpx.Request(method, self.base_url + path, content=content, headers=headers,
                                extensions={"timeout": httpx.Timeout(timeout_s).as_dict()})
        response = self.transport.handle_request(request)
        try:
            body = response.read()
        finally:
            response.close()
        return Answer(response.status_code, response.reason_phrase,
                      {k.lower(): v for k, v in response.headers.items()}, body)

    def close(self) -> None:
        self.transport.close()


def transport_for(base_url: str, transport: httpx.BaseTransport | None = None) -> SocketTransport | HttpxTransport:
    """The transport a client of ``base_url`` uses: ``transport`` when given, else sockets (TLS through httpx)."""
    if transport is not None:
        return HttpxTransport(base_url, transport)
    if urlsplit(base_url).scheme == "https":
        return HttpxTransport(base_url, httpx.HTTPTransport(socket_options=SOCKET_OPTIONS))
    return SocketTransport(base_url)
