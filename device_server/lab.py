"""Lab config (TOML) -> device instances: the one config loader of the server.

A lab file lists devices::

    [lab]
    name = "my-bench"

    [[devices]]
    id = "crossbar-digits"          # URL-safe name
    kind = "mtj-crossbar"           # which driver
    preset = "default-v1"           # named non-idealities (device_models.presets)
    seed = 1                        # fabrication draws and noise stream
    topology = { sizes = [64, 128, 10] }
    overrides = { read_std = 0.01 } # single settings changed from the preset

The built-in default lab (``device_server/labs/default.toml``) is used when none is given.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from device_server.drivers.base import Driver
from device_server.drivers.emulated import EmulatedCrossbar

#: Driver factories by device kind.
DRIVERS: dict[str, Callable[..., Driver]] = {EmulatedCrossbar.kind: EmulatedCrossbar}


class LabError(ValueError):
    """A lab file that cannot be loaded; the message names the file and the entry."""


class DeviceSpec(BaseModel):
    """One ``[[devices]]`` entry of a lab file."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    kind: str
    topology: dict[str, Any]
    preset: str = "default-v1"
    seed: int = 0
    overrides: dict[str, Any] = Field(default_factory=dict)


class LabSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lab: dict[str, Any] = Field(default_factory=dict)
    devices: list[DeviceSpec]


@dataclass
class Lab:
    """The devices of a running server, and where their config came from."""

    name: str
    source: str
    config_sha256: str
    devices: dict[str, Driver]


def default_lab_text() -> str:
    return resources.files("device_server").joinpath("labs/default.toml").read_text()


def load_lab(path: Path | None = None) -> Lab:
    """Read a lab file (or the built-in default) and build its devices."""
    if path is None:
        text, source = default_lab_text(), "builtin:default"
    else:
        try:
            text, source = Path(path).read_text(), str(path)
        except OSError as exc:
            raise LabError(f"cannot read lab file {path}: {exc}") from exc
    return build_lab(text, source)


def build_lab(text: str, source: str) -> Lab:
    try:
        spec = LabSpec.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise LabError(f"{source}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        raise LabError(f"{source}: {exc}") from exc
    devices: dict[str, Driver] = {}
    for entry in spec.devices:
        if entry.id in devices:
            raise LabError(f"{source}: device id {entry.id!r} appears twice")
        factory = DRIVERS.get(entry.kind)
        if factory is None:
            raise LabError(f"{source}: device {entry.id!r}: unknown kind {entry.kind!r}; known: {sorted(DRIVERS)}")
        try:
            devices[entry.id] = factory(entry.id, entry.topology, entry.preset, entry.seed, entry.overrides)
        except (KeyError, ValueError, TypeError) as exc:
            raise LabError(f"{source}: device {entry.id!r}: {exc}") from exc
    return Lab(
        name=str(spec.lab.get("name", "lab")),
        source=source,
        config_sha256=hashlib.sha256(text.encode()).hexdigest(),
        devices=devices,
    )
