"""The influx driver's exception hierarchy; every low-level failure is classified once, here."""

from __future__ import annotations

__all__ = ["InfluxConfigError", "InfluxError", "InfluxRejected", "InfluxUnavailable"]


class InfluxError(Exception):
    """Base of every error raised by ``drivers.influx``. Messages never contain secrets."""


class InfluxConfigError(InfluxError):
    """The configuration cannot be used (e.g. the token's environment variable is not set)."""


class InfluxUnavailable(InfluxError):
    """The server could not take the batch now (refused, timeout, 5xx, 429, auth): retry later."""


class InfluxRejected(InfluxError):
    """The server refused the points themselves (4xx): retrying the same lines will never succeed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
