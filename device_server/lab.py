"""Lab config (TOML) -> device instances: the one config loader of the server.

A lab file lists devices::

    [lab]
    name = "my-bench"

    [[devices]]
    id = "crossbar-digits"          # URL-safe name
    driver = "mtj-crossbar"         # a registered driver (entry point in group spinhil.drivers)
    preset = "default-v1"           # the rest is the driver's own: here named non-idealities,
    seed = 1                        # fabrication draws and noise stream,
    topology = { sizes = [64, 128, 10] }
    overrides = { read_std = 0.01 } # and single settings changed from the preset

``kind = "…"`` may stand for ``driver`` (the built-in emulated drivers are registered under
their kind), or, given with ``driver``, must match the kind the driver serves. Each driver's
declaration is checked when the lab loads: a driver that does not declare a limit for every
input it takes is refused, because the server could not enforce it.

The built-in default lab (``device_server/labs/default.toml``) is used when none is given.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from device_server.drivers.base import Driver
from device_server.drivers.declaration import declaration_problems
from device_server.drivers.registry import DriverNotFound, load_driver


class LabError(ValueError):
    """A lab file that cannot be loaded; the message names the file and the entry."""


class DeviceSpec(BaseModel):
    """One ``[[devices]]`` entry of a lab file: id, which driver, and the driver's own keys."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    driver: str | None = None
    kind: str | None = None

    @model_validator(mode="after")
    def _names_a_driver(self) -> DeviceSpec:
        if self.driver is None and self.kind is None:
            raise ValueError("name the driver: driver = \"<registered name>\" (or kind = \"<kind>\")")
        return self

    @property
    def params(self) -> dict[str, Any]:
        """The driver's own keys (topology, preset, seed, …), passed to ``from_lab_entry``."""
        return dict(self.model_extra or {})


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
        try:
            devices[entry.id] = build_device(entry.id, entry.driver or entry.kind or "", entry.params, entry.kind)
        except LabError as exc:
            raise LabError(f"{source}: device {entry.id!r}: {exc}") from exc
    return Lab(
        name=str(spec.lab.get("name", "lab")),
        source=source,
        config_sha256=hashlib.sha256(text.encode()).hexdigest(),
        devices=devices,
    )


def build_device(device_id: str, driver_name: str, params: dict[str, Any], kind: str | None = None) -> Driver:
    """One device from a registered driver and its lab keys, its declaration checked."""
    try:
        cls = load_driver(driver_name)
    except DriverNotFound as exc:
        raise LabError(str(exc)) from exc
    if kind is not None and kind != cls.kind:
        raise LabError(f"driver {driver_name!r} serves kind {cls.kind!r}, not {kind!r}")
    try:
        driver = cls.from_lab_entry(device_id, params)
    except (KeyError, ValueError, TypeError) as exc:
        raise LabError(str(exc)) from exc
    problems = declaration_problems(driver.describe(), cls.implemented_operations())
    if problems:
        raise LabError(f"driver {driver_name!r} breaks the contract: " + "; ".join(problems))
    return driver
