"""Tools for testing drivers and servers: the conformance kit and an in-thread server.

``assert_conforms(DriverClass, lab_entry)`` checks a driver against the Driver contract through
the real server (see :mod:`device_server.testing.conformance` and docs/drivers.md);
``python -m device_server.testing --driver NAME`` runs it on a registered driver.
"""

from device_server.testing.conformance import RULES, ConformanceReport, assert_conforms, run_conformance
from device_server.testing.serve import serve_in_thread

__all__ = ["RULES", "ConformanceReport", "assert_conforms", "run_conformance", "serve_in_thread"]
