"""``DeviceClient``: the trainer's only way to reach a device — HTTP.

- connection reuse (keep-alive connections, pooled), timeouts, retries with exponential backoff on
  connection errors and 503 (honouring ``Retry-After``);
- every write carries an ``Idempotency-Key`` kept across its retries, so a retry after a lost
  answer is applied once;
- MessagePack bodies by default (``encoding="json"`` for the JSON path);
- problem details become typed exceptions (:mod:`trainer_client.errors`);
- ``with client.lease(device_id) as dev:`` holds the device, keeps the lease alive in a
  background thread and releases it on exit; ``wait=True`` waits in the device's queue
  (long-poll) and reports the position and estimated wait as they change;
- an API key (``api_key=`` or ``SPINHIL_API_KEY``) goes in ``Authorization: Bearer``;
- every device operation carries the lease's token and fencing number and an
  ``Idempotency-Key``, so after a server restart (or a lost answer) a retry is safe: a write
  that was applied replays its first answer, one that was not is applied once. Backoff
  doubles up to ``max_backoff_s``, so the default retries ride out a restart of a few seconds;
- ``run_id`` prefixes every ``X-Request-ID`` (``<run_id>-<n>``): the server's audit finds a
  run's calls by it.

``transport`` is any ``httpx.BaseTransport``: tests pass an in-process ASGI transport; without
one, ``http://`` goes over the client's own sockets and ``https://`` through httpx
(:mod:`trainer_client.transport` says why). Retries, timeouts and typed errors are the same
whichever carries the bytes.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import numpy as np

from trainer_client import codec
from trainer_client.errors import (
    DeviceUnavailable,
    LeaseConflict,
    NotFound,
    QuotaExceeded,
    TransportError,
    from_problem,
)
from trainer_client.transport import Answer, transport_for

#: Answer fields that hold a list of arrays, or a map of named arrays.
ARRAY_LISTS = frozenset({"outputs", "states"})
ARRAY_MAPS = frozenset({"achieved", "weights", "traces"})

#: httpx errors after which the request surely did not reach the server: always safe to resend.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
#: errors after which the server may have acted: resent only when that is harmless (a GET, a
#: DELETE, or a write carrying its Idempotency-Key); a forward or relax would cost device time twice.
_MAYBE_SENT = (httpx.ReadError, httpx.ReadTimeout, httpx.WriteError, httpx.WriteTimeout, httpx.RemoteProtocolError)


def _device_path(device_id: str) -> str:
    """``/v1/devices/<id>`` with the id percent-encoded: an id with a space, a slash or a
    non-ASCII letter is sent as the server decodes it (an unknown one gets its 404)."""
    return f"/v1/devices/{quote(device_id, safe='')}"


@dataclass
class Totals:
    """Running sums over the device operations this client made (for reports)."""

    device_calls: int = 0
    device_time_s: float = 0.0
    instrument_time_s: float = 0.0
    energy_j: float = 0.0

    def add(self, report: Mapping[str, Any]) -> None:
        self.device_calls += 1
        self.device_time_s += float(report.get("device_time_s", 0.0))
        self.instrument_time_s += float(report.get("instrument_time_s", 0.0))
        self.energy_j += float(report.get("energy_j", 0.0))

    def as_dict(self) -> dict[str, float | int]:
        """The sums under the names a report uses."""
        return {"device_time_s": self.device_time_s, "instrument_time_s": self.instrument_time_s,
                "energy_j": self.energy_j, "device_calls": self.device_calls}

    def since(self, before: Mapping[str, float | int]) -> dict[str, float | int]:
        """What was spent after ``before`` (an earlier :meth:`as_dict`): one epoch's costs, say."""
        return {name: value - before[name] for name, value in self.as_dict().items()}


class DeviceClient:
    """Client of a SpinHIL device server.

    Parameters
    ----------
    base_url : str
        e.g. ``http://127.0.0.1:8000``.
    transport : httpx.BaseTransport, optional
        Replaces the socket transport (an in-process app in unit tests).
    timeout_s : float
        Per-request timeout [s].
    retries : int
        Further attempts after a connection error or a 503.
    backoff_s : float
        First retry delay [s]; doubles at each attempt.
    encoding : ``"msgpack"`` or ``"json"``
        Body encoding of requests and answers.
    api_key : str, optional
        ``shl_…`` key of a shared lab server; ``SPINHIL_API_KEY`` when omitted (none for an open server).
    max_backoff_s : float
        Longest delay between two retries [s].
    run_id : str, optional
        Prefix of every request id (``<run_id>-<n>``), to find a run's calls in the audit.
    """

    def __init__(
        self,
        base_url: str,
        transport: httpx.BaseTransport | None = None,
        *,
        timeout_s: float = 60.0,
        retries: int = 8,
        backoff_s: float = 0.05,
        encoding: str = "msgpack",
        api_key: str | None = None,
        max_backoff_s: float = 2.0,
        run_id: str | None = None,
    ) -> None:
        if encoding not in ("msgpack", "json"):
            raise ValueError("encoding must be 'msgpack' or 'json'")
        self.media = codec.MSGPACK if encoding == "msgpack" else codec.JSON
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.run_id = run_id
        self._request_ids = itertools.count(1)
        self.totals = Totals()
        self._thread = threading.local()
        headers = {"Accept": self.media, "User-Agent": "spinhil-trainer"}
        api_key = api_key if api_key is not None else os.environ.get("SPINHIL_API_KEY")
        if api_key:
            headers["Authorization"] = f"Bearer {api_key.strip()}"
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {name.lower(): value for name, value in headers.items()}
        self._transport = transport_for(self.base_url, transport)

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> "DeviceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        write: bool = False,
    ) -> Any:
        """Send one request (with retries) and return the decoded answer; raise typed errors."""
        hdrs = dict(headers or {})
        content = None
        if body is not None:
            content = codec.encode(body, self.media)
            hdrs["Content-Type"] = self.media
        if write:
            hdrs.setdefault("Idempotency-Key", uuid.uuid4().hex)
        if self.run_id:
            hdrs.setdefault("X-Request-ID", f"{self.run_id}-{next(self._request_ids)}")
        retryable = _NOT_SENT + _MAYBE_SENT if write or method in ("GET", "DELETE") else _NOT_SENT
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                response = self._send(method, path, content, hdrs)
            except httpx.TransportError as exc:
                if not isinstance(exc, retryable) or attempt == self.retries:
                    raise TransportError(f"{method} {path}: {exc!r} after {attempt + 1} attempt(s)") from exc
                time.sleep(delay)
                delay = min(2 * delay, self.max_backoff_s)
                continue
            if response.status == 503 and attempt < self.retries:
                retry_after = response.headers.get("retry-after", "")
                time.sleep(min(float(retry_after), 30.0) if retry_after.isdigit() else delay)
                delay = min(2 * delay, self.max_backoff_s)
                continue
            self._thread.replayed = response.headers.get("idempotent-replayed") == "true"
            return self._answer(response)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _send(self, method: str, path: str, content: bytes | None, headers: Mapping[str, str],
              timeout_s: float | None = None) -> Answer:
        """One exchange through the transport; the default headers under the request's own (names are
        case-insensitive: a request's ``accept`` replaces the default ``Accept``)."""
        merged = {**self._headers, **{name.lower(): value for name, value in headers.items()}}
        return self._transport.exchange(method, path, merged, content,
                                        self.timeout_s if timeout_s is None else timeout_s)

    @property
    def last_replayed(self) -> bool:
        """Whether this thread's last answer replayed an earlier one (``Idempotent-Replayed``)."""
        return getattr(self._thread, "replayed", False)

    @staticmethod
    def _answer(response: Answer) -> Any:
        content_type = response.headers.get("content-type", "")
        if response.status >= 400:
            try:
                problem = codec.decode(response.content, codec.JSON) if codec.is_json(content_type) else {}
            except codec.CodecError:
                problem = {}
            if not isinstance(problem, dict) or "detail" not in problem:
                problem = {"title": response.reason, "detail": response.content[:500].decode(errors="replace")}
            raise from_problem(response.status, problem)
        if codec.is_msgpack(content_type) or codec.is_json(content_type):
            return codec.decode(response.content, content_type)
        return response.content.decode(errors="replace")

    def _operation(self, method: str, device_id: str, op_path: str, token: str, body: Any = None,
                   fencing: int | None = None) -> dict[str, Any]:
        headers = {"X-Lease-Token": token}
        if fencing is not None:
            headers["X-Lease-Fencing"] = str(fencing)
        # every operation carries an Idempotency-Key: a retry after a lost answer replays it
        out = self.request(method, f"{_device_path(device_id)}/{op_path}", body, headers=headers, write=True)
        self.totals.add(out["report"])
        if self.media == codec.JSON:  # nested lists -> arrays, so callers see one shape of answer
            for key in ARRAY_LISTS & out.keys():
                out[key] = [np.asarray(a) for a in out[key]]
            for key in ARRAY_MAPS & out.keys():
                out[key] = {name: np.asarray(a) for name, a in out[key].items()}
            if out.get("nudged") is not None:
                out["nudged"] = [[np.asarray(a) for a in phase] for phase in out["nudged"]]
        return out

    # ------------------------------------------------------------------ lab
    def health(self) -> dict[str, Any]:
        return self.request("GET", "/v1/health")

    def devices(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/devices")["devices"]

    def describe(self, device_id: str) -> dict[str, Any]:
        return self.request("GET", _device_path(device_id))

    def wait_healthy(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Poll ``/v1/health`` until the server answers (a freshly started server)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self._answer(self._send("GET", "/v1/health", None, {}, timeout_s=2.0))
            except (httpx.HTTPError, DeviceUnavailable) as exc:
                if time.monotonic() > deadline:
                    raise TransportError(f"server not healthy after {timeout_s} s: {exc!r}") from exc
                time.sleep(0.05)

    # ------------------------------------------------------------------ leases
    def lease(self, device_id: str, ttl_s: float | None = None, holder: str = "hil-train",
              keepalive: bool = True, wait: bool = False, wait_timeout_s: float | None = None,
              on_queue: Callable[[dict[str, Any]], None] | None = None) -> "Lease":
        """Take the device's lease; use as a context manager to keep it alive and release it.

        ``wait=True``: if the device is held, join its FIFO queue and wait (long-poll, each poll
        keeps the place) until it is granted; ``on_queue`` is called with the ticket (``position``,
        ``estimated_wait_s``) whenever it changes. ``wait_timeout_s``: give up (leave the queue)
        after this long with ``TimeoutError``.
        """
        body: dict[str, Any] = {"holder": holder}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        if wait:
            body["queue"] = True
        info = self.request("POST", f"{_device_path(device_id)}/leases", body, write=True)
        if "ticket_id" in info:
            info = self._wait_in_queue(info, wait_timeout_s, on_queue)
        return Lease(self, info, keepalive=keepalive)

    def _wait_in_queue(self, ticket: dict[str, Any], timeout_s: float | None,
                       on_queue: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        seen = None
        while True:
            if ticket["state"] == "granted" and "lease" in ticket:
                return ticket["lease"]
            if ticket["state"] != "waiting":
                raise LeaseConflict({"status": 409, "title": "Left the queue", "field": "ticket_id",
                                     "detail": f"ticket {ticket['ticket_id']} on {ticket['device_id']!r} is "
                                               f"{ticket['state']}: {ticket.get('detail', '')}"})
            if on_queue is not None and (ticket["position"], round(ticket["estimated_wait_s"])) != seen:
                seen = (ticket["position"], round(ticket["estimated_wait_s"]))
                on_queue(ticket)
            wait_s = min(20.0, ticket["ttl_s"] / 3)
            if deadline is not None:
                if time.monotonic() >= deadline:
                    self.request("DELETE", f"/v1/queue/{ticket['ticket_id']}")
                    raise TimeoutError(f"still at position {ticket['position']} in the queue of "
                                       f"{ticket['device_id']!r} after {timeout_s} s; left the queue")
                wait_s = max(0.0, min(wait_s, deadline - time.monotonic()))
            ticket = self.request("GET", f"/v1/queue/{ticket['ticket_id']}?wait_s={wait_s:.3f}")

    def audit(self, **filters: Any) -> list[dict[str, Any]]:
        """Audit records matching ``filters`` (key_id, device_id, lease_id, request_id_prefix, …); admins only."""
        query = urlencode({k: v for k, v in filters.items() if v is not None})
        return self.request("GET", f"/v1/audit?{query}")["records"]

    # ------------------------------------------------------------------ operations
    def forward(self, device_id: str, token: str, x: np.ndarray, layers: Sequence[int] | None = None,
                fencing: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"x": np.asarray(x)}
        if layers is not None:
            body["layers"] = list(layers)
        return self._operation("POST", device_id, "forward", token, body, fencing)

    def relax(self, device_id: str, token: str, x: np.ndarray, beta: float = 0.0, target: np.ndarray | None = None,
              steps: int = 20, init: Sequence[np.ndarray] | None = None, fencing: int | None = None,
              nudges: Sequence[tuple[float, int]] | None = None,
              layers: Sequence[int] | None = None, program_weights: Mapping[str, np.ndarray] | None = None,
              program_cells: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> dict[str, Any]:
        """One phase; with ``nudges`` ``[(β, steps), …]`` also those nudged phases, each from the state
        the first settled in (kept on the device), answered under ``nudged``; ``layers``: the neuron
        layers of the first phase to measure (all when None). ``program_weights`` or ``program_cells``:
        a write applied first, in the same request (as :meth:`program`, :meth:`program_cells`; the
        achieved weights are not answered)."""
        body: dict[str, Any] = {"x": np.asarray(x), "beta": float(beta), "steps": int(steps)}
        if target is not None:
            body["target"] = np.asarray(target)
        if init is not None:
            body["init"] = [np.asarray(s) for s in init]
        if nudges is not None:
            body["nudges"] = [{"beta": float(b), "steps": int(t)} for b, t in nudges]
        if layers is not None:
            body["layers"] = [int(k) for k in layers]
        if program_weights is not None or program_cells is not None:
            body["program"] = _program_body(program_weights, program_cells, False)
        return self._operation("POST", device_id, "relax", token, body, fencing)

    def program(self, device_id: str, token: str, weights: Mapping[str, np.ndarray],
                return_achieved: bool = True, fencing: int | None = None) -> dict[str, Any]:
        return self._operation("PUT", device_id, "weights", token, _program_body(weights, None, return_achieved),
                               fencing)

    def program_cells(self, device_id: str, token: str, cells: Mapping[str, Any],
                      return_achieved: bool = True, fencing: int | None = None) -> dict[str, Any]:
        """Program single cells: ``cells[name] = (flat indices, strictly increasing; target values)``, or
        the compact form ``{"mask": packed bits, "level": grid levels}`` (docs/api.md)."""
        return self._operation("PUT", device_id, "weights", token, _program_body(None, cells, return_achieved),
                               fencing)

    def update(self, device_id: str, token: str, deltas: Mapping[str, np.ndarray],
               return_achieved: bool = True, fencing: int | None = None) -> dict[str, Any]:
        body = {"deltas": {k: np.asarray(v) for k, v in deltas.items()}, "return_achieved": return_achieved}
        return self._operation("POST", device_id, "weights:update", token, body, fencing)

    def read_weights(self, device_id: str, token: str, fencing: int | None = None) -> dict[str, Any]:
        return self._operation("GET", device_id, "weights", token, None, fencing)

    def drive(self, device_id: str, token: str, u: np.ndarray, dt: float, oscillators: Sequence[int] | None = None,
              every: int = 1, start: int = 0, quantities: Sequence[str] = ("power",),
              fencing: int | None = None) -> dict[str, Any]:
        """Apply input sequences ``u`` (batch, steps, inputs) [I_th] with step ``dt`` [s]; ``{traces, report}``."""
        record: dict[str, Any] = {"every": int(every), "start": int(start), "quantities": list(quantities)}
        if oscillators is not None:
            record["oscillators"] = [int(k) for k in oscillators]
        body = {"u": np.asarray(u), "dt": float(dt), "record": record}
        return self._operation("POST", device_id, "drive", token, body, fencing)

    def probe(self, device_id: str, token: str, structure: str, inputs: Mapping[str, np.ndarray],
              fencing: int | None = None) -> dict[str, Any]:
        body = {"structure": structure, "inputs": {k: np.asarray(v) for k, v in inputs.items()}}
        return self._operation("POST", device_id, "probe", token, body, fencing)


def _program_body(weights: Mapping[str, np.ndarray] | None, cells: Mapping[str, Any] | None,
                  return_achieved: bool) -> dict[str, Any]:
    """The body of a write: whole arrays (``weights``) or single cells (``cells``: per array a pair
    ``(flat indices, values)``, or a map in the API's compact form such as ``{"mask", "level"}``)."""
    if cells is not None:
        return {"cells": {k: ({f: np.asarray(a) for f, a in c.items()} if isinstance(c, Mapping)
                              else {"index": np.asarray(c[0]), "value": np.asarray(c[1])}) for k, c in cells.items()},
                "return_achieved": return_achieved}
    return {"weights": {k: np.asarray(v) for k, v in (weights or {}).items()}, "return_achieved": return_achieved}


class Lease:
    """A held lease: its token, a background keepalive, and the device operations bound to it."""

    def __init__(self, client: DeviceClient, info: dict[str, Any], keepalive: bool = True) -> None:
        self.client = client
        self.info = info
        self.device_id: str = info["device_id"]
        self.lease_id: str = info["lease_id"]
        self.token: str = info["token"]
        self.fencing: int = info["fencing"]
        self.ttl_s: float = info["ttl_s"]
        self.lost: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if keepalive:
            self._thread = threading.Thread(target=self._keepalive_loop, name=f"keepalive-{self.lease_id[:8]}",
                                            daemon=True)
            self._thread.start()

    def _keepalive_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.keepalive()
            except (NotFound, LeaseConflict, QuotaExceeded) as exc:  # the lease is gone (or ends): say so
                self.lost = exc
                return
            except Exception:  # transient: try again at the next tick
                continue

    def keepalive(self) -> dict[str, Any]:
        return self.client.request("POST", f"/v1/leases/{self.lease_id}/keepalive", {},
                                   headers={"X-Lease-Token": self.token})

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        try:
            self.client.request("DELETE", f"/v1/leases/{self.lease_id}", headers={"X-Lease-Token": self.token})
        except (NotFound, LeaseConflict):
            pass  # already expired or taken over: nothing left to release

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # device operations with this lease
    def _token(self) -> str:
        """The token, unless the keepalive found the lease gone: then say so instead of sending it."""
        if self.lost is not None:
            raise LeaseConflict({"status": 409, "title": "Lease lost", "field": "X-Lease-Token",
                                 "detail": f"lease {self.lease_id} on {self.device_id!r} was lost: {self.lost}"})
        return self.token

    def describe(self) -> dict[str, Any]:
        return self.client.describe(self.device_id)

    def forward(self, x: np.ndarray, layers: Sequence[int] | None = None) -> dict[str, Any]:
        return self.client.forward(self.device_id, self._token(), x, layers, self.fencing)

    def relax(self, x: np.ndarray, beta: float = 0.0, target: np.ndarray | None = None, steps: int = 20,
              init: Sequence[np.ndarray] | None = None, nudges: Sequence[tuple[float, int]] | None = None,
              layers: Sequence[int] | None = None, program_weights: Mapping[str, np.ndarray] | None = None,
              program_cells: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> dict[str, Any]:
        return self.client.relax(self.device_id, self._token(), x, beta, target, steps, init, self.fencing,
                                 nudges, layers, program_weights, program_cells)

    def program(self, weights: Mapping[str, np.ndarray], return_achieved: bool = True) -> dict[str, Any]:
        return self.client.program(self.device_id, self._token(), weights, return_achieved, self.fencing)

    def program_cells(self, cells: Mapping[str, tuple[np.ndarray, np.ndarray]],
                      return_achieved: bool = True) -> dict[str, Any]:
        return self.client.program_cells(self.device_id, self._token(), cells, return_achieved, self.fencing)

    def update(self, deltas: Mapping[str, np.ndarray], return_achieved: bool = True) -> dict[str, Any]:
        return self.client.update(self.device_id, self._token(), deltas, return_achieved, self.fencing)

    def read_weights(self) -> dict[str, Any]:
        return self.client.read_weights(self.device_id, self._token(), self.fencing)

    def drive(self, u: np.ndarray, dt: float, oscillators: Sequence[int] | None = None, every: int = 1,
              start: int = 0, quantities: Sequence[str] = ("power",)) -> dict[str, Any]:
        return self.client.drive(self.device_id, self._token(), u, dt, oscillators, every, start, quantities,
                                 self.fencing)

    def probe(self, structure: str, **inputs: np.ndarray) -> dict[str, Any]:
        """Measure the test structure ``structure`` with its named inputs (``describe()["structures"]``)."""
        return self.client.probe(self.device_id, self._token(), structure, inputs, self.fencing)
