"""Fixtures for the Modbus tests (helpers live in ``helpers.py``)."""

from __future__ import annotations

from tests.drivers.modbus.helpers import clock, pty_pair

__all__ = ["clock", "pty_pair"]
