"""Identity and roles: API keys, roles, scopes, and the dependency every route declares.

A key looks like ``shl_<key_id>_<secret>``. The ``key_id`` (public, 12 hex digits) names the
key in listings and the audit; the secret (32 random bytes) is shown once, at creation, and
only its SHA-256 is stored. A plain hash (not a slow password hash) is right here: the secret
has 256 bits of entropy, so there is nothing to guess, and every request checks it.

Roles are fixed sets of scopes; a route names the scope it needs with
``Security(authorize, scopes=[...])``, which also puts the requirement in the OpenAPI document
(``security: [{"HTTPBearer": ["write:lease"]}]``). Without ``--open`` every route except
``/v1/health`` and ``/metrics`` needs a key: no key, an unknown, revoked or expired key → 401;
a known key whose role lacks the scope → 403. With ``--open`` every caller acts as the
``open`` principal with every scope (the embedded server of ``hil-train demo``).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from fastapi.security.utils import get_authorization_scheme_param

from device_server.errors import Forbidden, Unauthorized
from device_server.leases import token_sha256
from device_server.store import Store

#: What each scope allows.
SCOPES: dict[str, str] = {
    "read:devices": "list and describe devices, see queues",
    "write:lease": "take, keep alive and release leases; join a device's queue",
    "operate:devices": "measure on a leased device: forward, relax, read weights",
    "program:devices": "write a leased device's weights: program, update",
    "read:audit": "read the audit log",
    "admin:leases": "break anyone's lease (with a recorded reason)",
    "admin:keys": "create, list and revoke API keys",
}
_USER = ("read:devices", "write:lease", "operate:devices", "program:devices")
ROLES: dict[str, frozenset[str]] = {
    "observer": frozenset({"read:devices"}),
    "user": frozenset(_USER),
    "admin": frozenset(SCOPES),
}
KEY_PATTERN = re.compile(r"^shl_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
#: [s] how often a key's ``last_used_at`` is written (each write is a disk commit).
LAST_USED_RESOLUTION_S = 60.0

bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer shl_<key_id>_<secret>`")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id and name, its role and scopes."""

    key_id: str
    name: str
    role: str
    scopes: frozenset[str]


OPEN = Principal(key_id="open", name="open", role="admin", scopes=ROLES["admin"])


def create_key(store: Store, name: str, role: str, expires_in_s: float | None = None,
               quota_device_s: float | None = None, now: float | None = None) -> tuple[str, dict[str, Any]]:
    """Make a key; returns the full key text (shown once) and its stored row (without the secret)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}, got {role!r}")
    if not name or len(name) > 200:
        raise ValueError("a key needs a name of 1 to 200 characters")
    if expires_in_s is not None and not expires_in_s > 0:
        raise ValueError("expiry must be in the future")
    if quota_device_s is not None and not quota_device_s >= 0:
        raise ValueError("quota must be a non-negative number of device-seconds")
    now = time.time() if now is None else now
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = {"key_id": key_id, "name": name, "role": role, "secret_sha256": token_sha256(secret),
           "created_at": now, "expires_at": None if expires_in_s is None else now + expires_in_s,
           "last_used_at": None, "revoked_at": None, "quota_device_s": quota_device_s}
    store.add_key(row)
    return f"shl_{key_id}_{secret}", public_key(row)


def public_key(row: dict[str, Any]) -> dict[str, Any]:
    """A key as listed: everything but the secret's hash."""
    return {k: v for k, v in row.items() if k != "secret_sha256"}


def key_status(row: dict[str, Any], now: float) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    return "active"


class Authenticator:
    """Checks keys against the store; writes ``last_used_at`` at most once a minute per key."""

    def __init__(self, store: Store, open_mode: bool) -> None:
        self.store = store
        self.open_mode = open_mode
        self._last_written: dict[str, float] = {}

    def principal(self, authorization: str | None, request: Request) -> Principal:
        if self.open_mode:
            return OPEN
        if not authorization:
            raise Unauthorized("this server requires an API key: send Authorization: Bearer <key>",
                               field="Authorization", headers={"WWW-Authenticate": "Bearer"})
        m = KEY_PATTERN.match(authorization)
        if m is None:
            raise Unauthorized("the API key is malformed (expected shl_<key_id>_<secret>)", field="Authorization",
                               headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        key_id, secret = m.groups()
        request.state.claimed_key_id = key_id
        row = self.store.key(key_id)
        now = time.time()
        if row is None or not secrets.compare_digest(row["secret_sha256"], token_sha256(secret)):
            raise Unauthorized(f"unknown API key {key_id}", field="Authorization",
                               headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        status = key_status(row, now)
        if status != "active":
            raise Unauthorized(f"API key {key_id} ({row['name']}) is {status}", field="Authorization",
                               headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if now - self._last_written.get(key_id, 0.0) > LAST_USED_RESOLUTION_S:
            self._last_written[key_id] = now
            self.store.set_key(key_id, last_used_at=now)
        return Principal(key_id=key_id, name=row["name"], role=row["role"], scopes=ROLES[row["role"]])


async def authorize(
    security_scopes: SecurityScopes,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None,
) -> Principal:
    """The dependency: the caller, if its key carries every scope the route names; 401/403 otherwise."""
    return await caller(request, security_scopes.scopes)


async def caller(request: Request, scopes: Sequence[str]) -> Principal:
    """The caller, if its key carries every scope in ``scopes``; 401/403 otherwise.

    What :func:`authorize` does, callable without FastAPI's dependency solver (the device
    operations' hot path). Async, so an open server pays no thread hop; a key is looked up in a
    worker thread.
    """
    auth: Authenticator = request.app.state.ctx.auth
    if auth.open_mode:
        principal = OPEN
    else:
        header = request.headers.get("authorization")
        scheme, credentials = get_authorization_scheme_param(header)
        token = credentials if scheme.lower() == "bearer" and credentials else header
        principal = await run_in_threadpool(auth.principal, token, request)
    request.state.principal = principal
    missing = [s for s in scopes if s not in principal.scopes]
    if missing:
        raise Forbidden(f"key {principal.key_id} ({principal.name}, role {principal.role}) lacks scope "
                        f"{', '.join(missing)}", field="Authorization")
    return principal
