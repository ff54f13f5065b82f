"""Logging: one event per line, ``level logger: message``, to stderr (journald adds the time).

Repeated identical errors are rate-limited where they arise (see ``RateLimitedLog`` in the MQTT
driver); secrets never reach a log line because configs hold them only as ``SecretStr``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable

__all__ = ["RepeatFilter", "install_log_rate_limit", "setup_logging"]


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


class RepeatFilter(logging.Filter):
    """Let a repeated WARNING/ERROR line through at most once per ``interval_s``.

    Lines are "the same" when their format string and non-numeric arguments match (so "no sensor
    message for 130s" and "…140s" are one line). The first line after a quiet interval says how many
    were suppressed. Lower levels pass untouched.
    """

    def __init__(self, interval_s: float = 60.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._seen: dict[tuple[object, ...], tuple[float, int]] = {}
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        key = (record.name, record.levelno, str(record.msg), *(a for a in args if not isinstance(a, int | float)))
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval_s:
            self._seen[key] = (last[0], last[1] + 1)
            self.suppressed += 1
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} [{last[1]} similar suppressed in {self.interval_s:.0f}s]"
        if len(self._seen) >= 4096:  # bounded: forget the oldest
            self._seen.pop(next(iter(self._seen)))
        self._seen.pop(key, None)
        self._seen[key] = (now, 0)
        return True


def install_log_rate_limit(interval_s: float = 60.0) -> RepeatFilter:
    """Attach one :class:`RepeatFilter` to every handler of the root logger."""
    f = RepeatFilter(interval_s)
    for h in logging.getLogger().handlers:
        h.addFilter(f)
    return f
