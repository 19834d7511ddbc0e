"""``DeviceClient``: the trainer's only way to reach a device — HTTP, through httpx.

- connection reuse (one ``httpx.Client``), timeouts, retries with exponential backoff on
  connection errors and 503 (honouring ``Retry-After``);
- every write carries an ``Idempotency-Key`` kept across its retries, so a retry after a lost
  answer is applied once;
- MessagePack bodies by default (``encoding="json"`` for the JSON path);
- problem details become typed exceptions (:mod:`trainer_client.errors`);
- ``with client.lease(device_id) as dev:`` holds the device, keeps the lease alive in a
  background thread and releases it on exit.

``transport`` is any ``httpx.BaseTransport``: tests pass an in-process ASGI transport, the
real path uses sockets.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from trainer_client import codec
from trainer_client.errors import DeviceUnavailable, LeaseConflict, NotFound, TransportError, from_problem

#: Answer fields that hold a list of arrays, or a map of named arrays.
ARRAY_LISTS = frozenset({"outputs", "states"})
ARRAY_MAPS = frozenset({"achieved", "weights"})

#: httpx errors after which the request surely did not reach the server: always safe to resend.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
#: errors after which the server may have acted: resent only when that is harmless (a GET, a
#: DELETE, or a write carrying its Idempotency-Key); a forward or relax would cost device time twice.
_MAYBE_SENT = (httpx.ReadError, httpx.ReadTimeout, httpx.WriteError, httpx.WriteTimeout, httpx.RemoteProtocolError)


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
    """

    def __init__(
        self,
        base_url: str,
        transport: httpx.BaseTransport | None = None,
        *,
        timeout_s: float = 60.0,
        retries: int = 4,
        backoff_s: float = 0.05,
        encoding: str = "msgpack",
    ) -> None:
        if encoding not in ("msgpack", "json"):
            raise ValueError("encoding must be 'msgpack' or 'json'")
        self.media = codec.MSGPACK if encoding == "msgpack" else codec.JSON
        self.retries = retries
        self.backoff_s = backoff_s
        self.totals = Totals()
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout_s,
            headers={"Accept": self.media, "User-Agent": "spinhil-trainer"},
        )

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self._http.close()

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
        retryable = _NOT_SENT + _MAYBE_SENT if write or method in ("GET", "DELETE") else _NOT_SENT
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, content=content, headers=hdrs)
            except httpx.TransportError as exc:
                if not isinstance(exc, retryable) or attempt == self.retries:
                    raise TransportError(f"{method} {path}: {exc!r} after {attempt + 1} attempt(s)") from exc
                time.sleep(delay)
                delay *= 2
                continue
            if response.status_code == 503 and attempt < self.retries:
                retry_after = response.headers.get("Retry-After", "")
                time.sleep(min(float(retry_after), 30.0) if retry_after.isdigit() else delay)
                delay *= 2
                continue
            return self._answer(response)
        raise AssertionError("unreachable")  # the loop returns or raises

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        content_type = response.headers.get("content-type", "")
        if response.status_code >= 400:
            try:
                problem = codec.decode(response.content, codec.JSON) if codec.is_json(content_type) else {}
            except codec.CodecError:
                problem = {}
            if not isinstance(problem, dict) or "detail" not in problem:
                problem = {"title": response.reason_phrase, "detail": response.text[:500]}
            raise from_problem(response.status_code, problem)
        if codec.is_msgpack(content_type) or codec.is_json(content_type):
            return codec.decode(response.content, content_type)
        return response.text

    def _operation(self, method: str, device_id: str, op_path: str, token: str, body: Any = None,
                   write: bool = False) -> dict[str, Any]:
        out = self.request(method, f"/v1/devices/{device_id}/{op_path}", body,
                           headers={"X-Lease-Token": token}, write=write)
        self.totals.add(out["report"])
        if self.media == codec.JSON:  # nested lists -> arrays, so callers see one shape of answer
            for key in ARRAY_LISTS & out.keys():
                out[key] = [np.asarray(a) for a in out[key]]
            for key in ARRAY_MAPS & out.keys():
                out[key] = {name: np.asarray(a) for name, a in out[key].items()}
        return out

    # ------------------------------------------------------------------ lab
    def health(self) -> dict[str, Any]:
        return self.request("GET", "/v1/health")

    def devices(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/devices")["devices"]

    def describe(self, device_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/devices/{device_id}")

    def wait_healthy(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Poll ``/v1/health`` until the server answers (a freshly started server)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self._answer(self._http.get("/v1/health", timeout=2.0))
            except (httpx.HTTPError, DeviceUnavailable) as exc:
                if time.monotonic() > deadline:
                    raise TransportError(f"server not healthy after {timeout_s} s: {exc!r}") from exc
                time.sleep(0.05)

    # ------------------------------------------------------------------ leases
    def lease(self, device_id: str, ttl_s: float | None = None, holder: str = "hil-train",
              keepalive: bool = True) -> "Lease":
        """Take the device's lease; use as a context manager to keep it alive and release it."""
        body: dict[str, Any] = {"holder": holder}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        info = self.request("POST", f"/v1/devices/{device_id}/leases", body, write=True)
        return Lease(self, info, keepalive=keepalive)

    # ------------------------------------------------------------------ operations
    def forward(self, device_id: str, token: str, x: np.ndarray, layers: Sequence[int] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"x": np.asarray(x)}
        if layers is not None:
            body["layers"] = list(layers)
        return self._operation("POST", device_id, "forward", token, body)

    def relax(self, device_id: str, token: str, x: np.ndarray, beta: float = 0.0, target: np.ndarray | None = None,
              steps: int = 20, init: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"x": np.asarray(x), "beta": float(beta), "steps": int(steps)}
        if target is not None:
            body["target"] = np.asarray(target)
        if init is not None:
            body["init"] = [np.asarray(s) for s in init]
        return self._operation("POST", device_id, "relax", token, body)

    def program(self, device_id: str, token: str, weights: Mapping[str, np.ndarray],
                return_achieved: bool = True) -> dict[str, Any]:
        body = {"weights": {k: np.asarray(v) for k, v in weights.items()}, "return_achieved": return_achieved}
        return self._operation("PUT", device_id, "weights", token, body, write=True)

    def update(self, device_id: str, token: str, deltas: Mapping[str, np.ndarray],
               return_achieved: bool = True) -> dict[str, Any]:
        body = {"deltas": {k: np.asarray(v) for k, v in deltas.items()}, "return_achieved": return_achieved}
        return self._operation("POST", device_id, "weights:update", token, body, write=True)

    def read_weights(self, device_id: str, token: str) -> dict[str, Any]:
        return self._operation("GET", device_id, "weights", token)


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
            except (NotFound, LeaseConflict) as exc:  # the lease is gone: stop, and say so on the next call
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
        return self.client.forward(self.device_id, self._token(), x, layers)

    def relax(self, x: np.ndarray, beta: float = 0.0, target: np.ndarray | None = None, steps: int = 20,
              init: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
        return self.client.relax(self.device_id, self._token(), x, beta, target, steps, init)

    def program(self, weights: Mapping[str, np.ndarray], return_achieved: bool = True) -> dict[str, Any]:
        return self.client.program(self.device_id, self._token(), weights, return_achieved)

    def update(self, deltas: Mapping[str, np.ndarray], return_achieved: bool = True) -> dict[str, Any]:
        return self.client.update(self.device_id, self._token(), deltas, return_achieved)

    def read_weights(self) -> dict[str, Any]:
        return self.client.read_weights(self.device_id, self._token())
