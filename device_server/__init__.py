"""SpinHIL device server: spintronic chips served over HTTP through one Driver contract."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spinhil")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"
