"""The engine's read-only view of the sensors: latest readings, freshness, zone aggregates.

Nothing here changes state: each answer also says until when it holds (``changes_at``), so that an
evaluation can tell when it must look again although no reading arrives.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from daemon.engine.types import SensorInfo
from daemon.model import Quantity, Reading
from daemon.rules.model import Input

__all__ = ["InputValue", "SensorView", "Used", "zone_index"]

Used = tuple[str, float | None, float | None]  # (sensor, value, age in s): what an input was computed from

_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "mean": statistics.fmean,
    "max": max,
    "min": min,
    "median": statistics.median,
}


class InputValue(NamedTuple):
    """An input's value (``None``: unknown, no fresh reading), until when it holds, until when it is known."""

    value: float | None
    changes_at: float = math.inf  # the first moment a reading it used goes stale (its value may change)
    known_until: float = math.inf  # the moment its last fresh reading goes stale (it becomes unknown)


def zone_index(sensors: Mapping[str, SensorInfo]) -> dict[tuple[str, Quantity], tuple[str, ...]]:
    """Sensor ids per (zone, quantity), for zone aggregates."""
    zones: dict[tuple[str, Quantity], list[str]] = {}
    for s in sensors.values():
        zones.setdefault((s.zone, s.quantity), []).append(s.id)
    return {k: tuple(v) for k, v in zones.items()}


class SensorView:
    """Latest reading per sensor and what the engine needs to know about each sensor."""

    def __init__(
        self,
        sensors: Mapping[str, SensorInfo],
        readings: Mapping[str, Reading],
        *,
        started_at: float | None = None,
        zones: Mapping[tuple[str, Quantity], Sequence[str]] | None = None,
    ) -> None:
        self.sensors = sensors
        self.readings = readings
        self.started_at = started_at
        self._zones = zones if zones is not None else zone_index(sensors)

    def fresh(self, sensor: str, now: float) -> Reading | None:
        """The sensor's latest reading if it is fresh (a retained one never is)."""
        r = self.readings.get(sensor)
        info = self.sensors.get(sensor)
        if r is None or info is None or r.retained or now - r.ts > info.stale_after_s:
            return None
        return r

    def members(self, inp: Input) -> Sequence[str]:
        """The sensors an input reads: one, or a zone's sensors of one quantity."""
        if inp.sensor is not None:
            return (inp.sensor,)
        return self._zones.get((inp.zone or "", inp.quantity), ()) if inp.quantity is not None else ()

    def warming_up(self, inp: Input, now: float) -> float | None:
        """Until when an input is *not yet known* rather than stale, or None if it is not.

        A sensor that has sent nothing (or only a retained value) since the daemon started, and whose
        staleness timeout has not yet run out since then, is not yet known: rules that depend on it stay
        silent instead of falling back, so a restart toggles nothing.
        """
        for sid in self.members(inp):
            until = self.not_yet_known(sid, now)
            if until is not None:
                return until
        return None

    def not_yet_known(self, sensor: str, now: float) -> float | None:
        """Until when one sensor is *not yet known* (see :meth:`warming_up`; a trend's ``warmup_s``
        longer), or None if it is known or stale."""
        start, info = self.started_at, self.sensors.get(sensor)
        if start is None or info is None:
            return None
        r = self.readings.get(sensor)
        if r is not None and not r.retained and r.ts >= start:
            return None
        until = start + info.stale_after_s + info.warmup_s
        return until if now < until else None

    def value(self, inp: Input, now: float) -> InputValue:
        """The input's value (times its factor) now, or None when no sensor it reads is fresh."""
        if inp.sensor is not None:
            r = self.fresh(inp.sensor, now)
            if r is None:
                return InputValue(None)
            stale = r.ts + self.sensors[inp.sensor].stale_after_s
            return InputValue(r.value * inp.times, stale, stale)
        values: list[float] = []
        changes_at, known_until = math.inf, -math.inf
        for sid in self.members(inp):
            r = self.fresh(sid, now)
            if r is not None:
                values.append(r.value)
                stale = r.ts + self.sensors[sid].stale_after_s
                changes_at, known_until = min(changes_at, stale), max(known_until, stale)
        if not values:
            return InputValue(None)
        return InputValue(float(_AGGREGATES[inp.aggregate](values)) * inp.times, changes_at, known_until)

    def sources(self, inp: Input, now: float) -> tuple[Used, ...]:
        """What the input is computed from, for words: its sensor (fresh or not), or a zone's fresh sensors."""
        if inp.sensor is not None:
            last = self.readings.get(inp.sensor)
            return ((inp.sensor, last.value if last else None, (now - last.ts) if last else None),)
        return tuple((sid, r.value, now - r.ts) for sid in self.members(inp) if (r := self.fresh(sid, now)) is not None)
