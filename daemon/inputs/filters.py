"""Input filters: the median of the last N readings, and a time-based exponential average.

Both hold bounded memory (N values, or one value and one time) and return a value within the
minimum and maximum of the readings they were given. Only finite values reach them: the MQTT
decoder rejects NaN and infinity (counted, by reason) before a reading exists.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

from drivers.mqtt.inputs_config import FilterConfig

__all__ = ["EmaFilter", "InputFilter", "MedianFilter", "make_filter"]


class InputFilter(Protocol):
    def update(self, value: float, ts: float) -> float:
        """Take one reading; return the filtered value."""
        ...


class MedianFilter:
    """The median of the last ``n`` readings (fewer at start): one outlier among them moves nothing.

    A reading more than ``max_gap_s`` after the one before (the sensor's ``stale_after_s``: it was
    unknown in between) starts afresh. A median has no time in it, so without this the readings from
    before an outage would outvote the first ones after it for up to n/2 readings.
    """

    __slots__ = ("_last", "_max_gap", "_window")

    def __init__(self, n: int, max_gap_s: float = math.inf) -> None:
        if n < 1:
            raise ValueError("a median filter needs n ≥ 1")
        if not max_gap_s > 0:
            raise ValueError("a median filter's max_gap_s must be > 0")
        self._window: deque[float] = deque(maxlen=n)
        self._max_gap = max_gap_s
        self._last = -math.inf

    def __len__(self) -> int:
        """How many readings it holds (at most n)."""
        return len(self._window)

    def update(self, value: float, ts: float) -> float:
        if ts - self._last > self._max_gap:
            self._window.clear()
        self._last = max(self._last, ts)
        self._window.append(value)
        s = sorted(self._window)
        mid = len(s) // 2
        return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


class EmaFilter:
    """Exponential average with time constant ``tau_s``, weighted by the time since the previous
    reading: a reading after a long gap counts more than one right after another, so irregular
    spacing does not bias it. A reading at the same time as the previous one (or earlier) adds
    nothing."""

    __slots__ = ("_tau", "_ts", "_value")

    def __init__(self, tau_s: float) -> None:
        if not tau_s > 0:
            raise ValueError("an EMA filter needs a time constant > 0")
        self._tau = tau_s
        self._value: float | None = None
        self._ts = 0.0

    def update(self, value: float, ts: float) -> float:
        if self._value is None:
            self._value, self._ts = value, ts
            return value
        dt = ts - self._ts
        if dt > 0:
            alpha = -math.expm1(-dt / self._tau)  # 1 − e^(−dt/τ), exact for small dt
            lo, hi = (self._value, value) if self._value <= value else (value, self._value)
            # a convex combination, clamped so that rounding cannot leave [previous, new]
            self._value = min(max(self._value + alpha * (value - self._value), lo), hi)
            self._ts = ts
        return self._value


def make_filter(cfg: FilterConfig, max_gap_s: float = math.inf) -> InputFilter:
    """The filter a sensor's ``filter:`` names; a median starts afresh after a gap over ``max_gap_s``
    (an EMA weighs a gap by its length already)."""
    if cfg.median_of is not None:
        return MedianFilter(cfg.median_of, max_gap_s)
    assert cfg.ema_s is not None  # the config model requires one of the two
    return EmaFilter(cfg.ema_s)
