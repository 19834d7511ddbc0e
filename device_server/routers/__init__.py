"""One router per resource: health, devices, leases, operations."""
