"""Per-sensor input conditioning: the configured filter and stuck check of each sensor.

:meth:`Conditioning.apply` takes a raw reading and returns the reading the rules see (its value
filtered) and whether the sensor's stuck state changed. Sensors without ``filter:`` or ``stuck:``
are not held here at all, so they pass through unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from daemon.inputs.filters import InputFilter, make_filter
from daemon.inputs.stuck import StuckDetector
from daemon.model import Reading
from drivers.mqtt.inputs_config import FilterConfig, StuckConfig

__all__ = ["Conditioned", "Conditioning", "SensorInputs"]


class SensorInputs(NamedTuple):
    """What one sensor is configured with (from its ``SensorConfig``)."""

    id: str
    filter: FilterConfig | None
    stuck: StuckConfig | None
    stale_after_s: float = math.inf  # a median filter starts afresh after a gap this long


class Conditioned(NamedTuple):
    reading: Reading  # the value the rules see
    filtered: float | None  # the filtered value, if the sensor has a filter
    stuck_changed: bool


class Conditioning:
    """The filters and stuck detectors of the sensors that have one (no I/O, bounded memory)."""

    def __init__(self, sensors: Iterable[SensorInputs]) -> None:
        self._filters: dict[str, InputFilter] = {}
        self._stuck: dict[str, StuckDetector] = {}
        for s in sensors:
            if s.filter is not None:
                self._filters[s.id] = make_filter(s.filter, s.stale_after_s)
            if s.stuck is not None:
                self._stuck[s.id] = StuckDetector(s.stuck.after_s, s.stuck.min_change)

    def __contains__(self, sensor: object) -> bool:
        return sensor in self._filters or sensor in self._stuck

    def __bool__(self) -> bool:
        return bool(self._filters or self._stuck)

    def apply(self, r: Reading) -> Conditioned:
        """Filter ``r`` and check it for being stuck (on the raw value: a filter smooths small moves)."""
        changed = False
        det = self._stuck.get(r.sensor)
        if det is not None:
            changed = det.update(r.value, r.ts)
        f = self._filters.get(r.sensor)
        if f is None:
            return Conditioned(r, None, changed)
        value = f.update(r.value, r.ts)
        # built directly: a named tuple's _replace costs several times as much, once per reading
        return Conditioned(Reading(r.sensor, r.quantity, value, r.ts, r.zone, r.retained), value, changed)

    def stuck(self, sensor: str) -> StuckDetector | None:
        """The sensor's stuck detector, if it has one."""
        return self._stuck.get(sensor)
