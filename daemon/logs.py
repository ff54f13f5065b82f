"""Logging: one event per line, ``level logger: message``, to stderr (journald adds the time).

Repeated identical errors are rate-limited where they arise (see ``RateLimitedLog`` in the MQTT
driver); secrets never reach a log line because configs hold them only as ``SecretStr``.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["setup_logging"]


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace("\n", " | ")


def setup_logging(level: str = "INFO", *, with_time: bool | None = None) -> None:
    """Configure the root logger. Under systemd (JOURNAL_STREAM set) no timestamp is printed."""
    if with_time is None:
        with_time = "JOURNAL_STREAM" not in os.environ
    fmt = ("%(asctime)s " if with_time else "") + "%(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("pymodbus", "asyncio", "watchfiles", "urllib3", "influxdb_client"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
