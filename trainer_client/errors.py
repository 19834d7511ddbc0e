"""Typed exceptions of the trainer client, mapped from the server's problem details.

Tree::

    HILError
    ├── TransportError              the server could not be reached (after retries)
    └── ProblemError                the server answered an RFC 9457 problem
        ├── MalformedBody           400
        ├── Unauthorized            401  no API key, or an unknown, revoked or expired one
        ├── Forbidden               403  the key's role lacks the scope
        ├── NotFound                404  unknown device, layer, lease or ticket
        ├── LeaseConflict           409  leased by someone else, or a stale lease token
        ├── PayloadTooLarge         413
        ├── UnsupportedMediaType    415
        ├── InvalidInput            422  shape, dtype, NaN/Inf, beyond a limit, unknown field
        ├── LeaseRequired           428
        ├── QuotaExceeded           429  the key's device-seconds are spent
        └── DeviceUnavailable       503  (after retries)

Each ``ProblemError`` keeps ``status``, ``title``, ``detail``, ``field`` and the raw ``problem``.
"""

from __future__ import annotations

from typing import Any


class HILError(Exception):
    """Base of every error the client raises."""


class TransportError(HILError):
    """Connection refused, reset or timed out, after the configured retries."""


class ProblemError(HILError):
    status = 0

    def __init__(self, problem: dict[str, Any]) -> None:
        self.problem = problem
        self.status = int(problem.get("status", self.status))
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail", ""))
        self.field = problem.get("field")
        super().__init__(f"{self.status} {self.title}: {self.detail}")


class MalformedBody(ProblemError):
    status = 400


class Unauthorized(ProblemError):
    status = 401


class Forbidden(ProblemError):
    status = 403


class NotFound(ProblemError):
    status = 404


class LeaseConflict(ProblemError):
    status = 409


class PayloadTooLarge(ProblemError):
    status = 413


class UnsupportedMediaType(ProblemError):
    status = 415


class InvalidInput(ProblemError):
    status = 422


class LeaseRequired(ProblemError):
    status = 428


class QuotaExceeded(ProblemError):
    status = 429


class DeviceUnavailable(ProblemError):
    status = 503


_BY_STATUS = {cls.status: cls for cls in ProblemError.__subclasses__()}


def from_problem(status: int, problem: dict[str, Any]) -> ProblemError:
    """The typed exception for a problem-details body."""
    problem = {"status": status, **problem}
    return _BY_STATUS.get(status, ProblemError)(problem)
