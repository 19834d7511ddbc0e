"""One settings object for the server, passed to :func:`device_server.app.create_app`.

Read from arguments, or from ``SPINHIL_*`` environment variables (``SPINHIL_LAB``,
``SPINHIL_LATENCY``, …); nothing is built at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server settings; every field has a unit in its description."""

    model_config = SettingsConfigDict(env_prefix="SPINHIL_", extra="forbid")

    lab: Path | None = Field(None, description="lab config file (TOML); the built-in default lab when absent")
    host: str = Field("127.0.0.1", description="interface to listen on")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port)")
    latency: str = Field(
        "virtual",
        description="'virtual' (answer at once, report the times), 'real' (pace answers on "
        "instrument_time_s) or a scale factor applied to instrument_time_s",
    )
    max_body_bytes: int = Field(64 * 2**20, gt=0, description="[bytes] largest request body accepted")
    lease_ttl_s: float = Field(30.0, gt=0, description="[s] default lease time to live")
    max_lease_ttl_s: float = Field(3600.0, gt=0, description="[s] longest lease time to live a client may ask")
    idempotency_capacity: int = Field(4096, gt=0, description="remembered Idempotency-Key results (oldest dropped)")
    idempotency_max_bytes: int = Field(256 * 2**20, gt=0, description="[bytes] memory for remembered write results")
    open: bool = Field(False, description="serve without API keys: every caller may do everything (local use only)")
    state_dir: Path = Field(default_factory=lambda: default_state_dir(),
                            description="folder of the state database spinhil.db (keys, leases, queue, "
                            "programmed device state, audit)")
    database_url: str | None = Field(None, description="SQLAlchemy URL of the state database; overrides state_dir")
    ephemeral: bool = Field(False, description="keep state in memory only: a restart resets the lab (demo, tests)")

    @field_validator("latency")
    @classmethod
    def _check_latency(cls, value: str) -> str:
        if value in ("virtual", "real"):
            return value
        try:
            scale = float(value)
        except ValueError:
            raise ValueError("latency must be 'virtual', 'real' or a non-negative scale factor") from None
        if not 0 <= scale < float("inf"):
            raise ValueError("latency scale factor must be a finite, non-negative number")
        return value

    @model_validator(mode="after")
    def _check_access(self) -> "Settings":
        if self.ephemeral and not self.open:
            raise ValueError("an ephemeral server keeps its keys in memory, where none can be made: "
                             "add --open, or give a --state-dir instead of --ephemeral")
        return self

    @property
    def latency_scale(self) -> float:
        """Factor applied to ``instrument_time_s`` before answering (0: virtual)."""
        if self.latency == "virtual":
            return 0.0
        if self.latency == "real":
            return 1.0
        return float(self.latency)


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/spinhil`` (``~/.local/state/spinhil`` when unset)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "spinhil"
