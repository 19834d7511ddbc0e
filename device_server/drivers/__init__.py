"""Drivers: the contract (:mod:`base`) and the emulated devices (:mod:`emulated`)."""
