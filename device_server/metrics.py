"""Prometheus metrics of one app (its own registry: several apps may live in one process)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "spinhil_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "spinhil_http_request_seconds", "Wall time to answer a request [s]", ["method", "route"],
            registry=self.registry, buckets=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30),
        )
        self.device_calls = Counter(
            "spinhil_device_operations", "Device operations executed", ["device", "operation"], registry=self.registry
        )
        self.device_time = Counter(
            "spinhil_device_time_seconds", "Chip time of executed operations [s]", ["device"], registry=self.registry
        )
        self.instrument_time = Counter(
            "spinhil_instrument_time_seconds", "Bench time of executed operations [s]", ["device"],
            registry=self.registry,
        )
        self.energy = Counter(
            "spinhil_energy_joules", "Energy of executed operations [J]", ["device"], registry=self.registry
        )
        self.leased = Gauge("spinhil_device_leased", "1 while the device is leased", ["device"], registry=self.registry)
        self.queued = Gauge("spinhil_queue_length", "Tickets waiting for the device", ["device"], registry=self.registry)

        #: the labelled series of each (device, operation) served so far: ``labels()`` looks a series up
        #: under a lock from its label values each time, four times per operation on its answer's path
        self._operation_series: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {}

    def operation_done(self, device_id: str, operation: str, report: Mapping[str, Any]) -> None:
        """Count an executed operation and add its chip time, bench time and energy."""
        series = self._operation_series.get((device_id, operation))
        if series is None:  # the lab's devices and operations: a few dozen entries at most
            series = self._operation_series[(device_id, operation)] = (
                self.device_calls.labels(device_id, operation), self.device_time.labels(device_id),
                self.instrument_time.labels(device_id), self.energy.labels(device_id))
        calls, device_time, instrument_time, energy = series
        calls.inc()
        device_time.inc(report["device_time_s"])
        instrument_time.inc(report["instrument_time_s"])
        energy.inc(report["energy_j"])
