"""Driver plugins: found through the entry-point group ``spinhil.drivers``, named in lab files.

A package that brings a driver registers its class in its own ``pyproject.toml``::

    [project.entry-points."spinhil.drivers"]
    keysight-crossbar = "my_lab_drivers.crossbar:KeysightCrossbar"

and a lab entry names it: ``driver = "keysight-crossbar"``. The server's built-in drivers
register the same way (SpinHIL's own ``pyproject.toml``), so nothing here knows any driver by
name. Why entry points: a driver for a new instrument is installed with pip next to the server,
and the server picks it up with no change to its code (the pytest/Flask plugin pattern).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from device_server.drivers.base import Driver

GROUP = "spinhil.drivers"


class DriverNotFound(LookupError):
    """No driver of that name is registered, or its entry point cannot be loaded."""


def registered() -> dict[str, EntryPoint]:
    """Every driver registered by an installed package, by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_driver(name: str) -> type[Driver]:
    """The driver class registered as ``name``; a clear error naming what is registered otherwise."""
    ep = registered().get(name)
    if ep is None:
        raise DriverNotFound(
            f"no driver {name!r} is registered (entry-point group {GROUP!r}); registered: {sorted(registered())}"
        )
    try:
        cls = ep.load()
    except Exception as exc:  # an installed plugin that fails to import must not take the server down silently
        raise DriverNotFound(f"driver {name!r} ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverNotFound(f"driver {name!r} ({ep.value}) is not a subclass of device_server.drivers.base.Driver")
    return cls
