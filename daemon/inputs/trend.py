"""Trend virtual sensors: how fast a sensor's value, as the rules see it, moves (per minute).

A trend is the least-squares slope of the source's readings over the last ``over_s`` seconds. A
slope over many readings is itself a filter: one outlier moves it little, and a steady fall shows
as a steady negative value. The rules read it like any sensor (``sensor: hall-pm25-trend``,
``below: -0.5``), for example to step a fan down at once when the air is clearly getting cleaner.

Memory is bounded: at most :data:`MAX_POINTS` readings are kept per trend (readings closer together
than ``over_s / MAX_POINTS`` are skipped). A trend is unknown until its readings span half its window,
and starts afresh after a gap longer than its source's ``stale_after_s``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from daemon.model import Quantity, Reading

__all__ = ["MAX_POINTS", "Trend", "TrendConfig", "Trends"]

MAX_POINTS = 240  # readings held per trend at most


class TrendConfig(BaseModel):
    """A trend virtual sensor (``trends:`` in lobbyd.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$", description="the trend's sensor id, for rules")
    sensor: str = Field(min_length=1, description="the sensor whose value (as the rules see it) the trend follows")
    over_s: float = Field(
        default=600.0, ge=60, le=21_600, description="the window the slope is fitted over (seconds; 60 s to 6 h)"
    )
    zone: str = Field(default="trends", min_length=1, description="its zone (keep it out of the source's zone)")


class Trend:
    """The slope of one source's values over a sliding window, in units per minute."""

    __slots__ = ("_max_gap", "_min_spacing", "_over", "_points")

    def __init__(self, over_s: float, max_gap_s: float = math.inf) -> None:
        if not over_s > 0:
            raise ValueError("a trend's window must be > 0 s")
        if not max_gap_s > 0:
            raise ValueError("a trend's max_gap_s must be > 0")
        self._over = over_s
        self._max_gap = max_gap_s
        self._min_spacing = over_s / MAX_POINTS
        self._points: deque[tuple[float, float]] = deque(maxlen=MAX_POINTS + 1)

    def __len__(self) -> int:
        """How many readings it holds (at most MAX_POINTS + 1)."""
        return len(self._points)

    def update(self, value: float, ts: float) -> float | None:
        """Take one reading; return the slope per minute, or None while the window is not half full,
        when the reading was skipped (older than, or too close to, the one before) or when the slope
        overflows."""
        pts = self._points
        if pts:
            last = pts[-1][0]
            if ts - last > self._max_gap:
                pts.clear()
            elif ts - last < self._min_spacing:
                return None
        pts.append((ts, value))
        while ts - pts[0][0] > self._over:
            pts.popleft()
        if len(pts) < 3 or ts - pts[0][0] < self._over / 2:
            return None
        slope = 60.0 * _slope(pts)
        # finite readings can still overflow the sums (a plausible range configured near 1e308): unknown
        return slope if math.isfinite(slope) else None


def _slope(pts: Iterable[tuple[float, float]]) -> float:
    """Least-squares slope of (t, v) per second (times taken relative to the first, for precision)."""
    items = list(pts)
    t0 = items[0][0]
    n = len(items)
    mt = sum(t - t0 for t, _ in items) / n
    mv = sum(v for _, v in items) / n
    sxx = sum((t - t0 - mt) ** 2 for t, _ in items)
    if sxx <= 0:
        return 0.0
    return sum((t - t0 - mt) * (v - mv) for t, v in items) / sxx


class Trends:
    """The trend virtual sensors of one daemon, by source sensor. No I/O, bounded memory."""

    def __init__(self, configs: Iterable[TrendConfig], *, stale_after_s: Mapping[str, float] | None = None) -> None:
        stale = stale_after_s or {}
        self._by_source: dict[str, list[tuple[TrendConfig, Trend]]] = {}
        for c in configs:
            trend = Trend(c.over_s, max_gap_s=stale.get(c.sensor, math.inf))
            self._by_source.setdefault(c.sensor, []).append((c, trend))

    def __bool__(self) -> bool:
        return bool(self._by_source)

    def on_reading(self, r: Reading) -> list[Reading]:
        """The trend readings that follow from ``r`` (the source's value as the rules see it)."""
        out: list[Reading] = []
        if r.retained:  # a value the broker replayed is not a new point in time
            return out
        for cfg, trend in self._by_source.get(r.sensor, ()):
            slope = trend.update(r.value, r.ts)
            if slope is not None:
                out.append(Reading(cfg.id, Quantity.TREND, slope, r.ts, cfg.zone))
        return out
