"""Sensor state: the latest reading per sensor, and what the daemon knows about freshness.

This is where every accepted reading lands (from :mod:`daemon.intake`). The engine reads it through
:class:`daemon.engine.SensorView`; ``lobbyd status`` reads :meth:`SensorState.summary`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from daemon.engine import SensorInfo, SensorView, zone_index
from daemon.model import Reading

__all__ = ["SensorState", "SensorStatus"]


@dataclass(frozen=True, slots=True)
class SensorStatus:
    sensor: str
    zone: str
    quantity: str
    value: float | None
    age_s: float | None
    fresh: bool
    retained: bool


class SensorState:
    """Latest reading per configured sensor. Older readings than the one held are ignored."""

    def __init__(self, sensors: Mapping[str, SensorInfo], *, started_at: float | None = None) -> None:
        self._sensors = dict(sensors)
        self._zones = zone_index(self._sensors)
        self.started_at = started_at
        self._latest: dict[str, Reading] = {}
        self.updates = 0
        self.out_of_order = 0
        self.last_update_at: float | None = None

    @property
    def sensors(self) -> Mapping[str, SensorInfo]:
        """The configured sensors, by id."""
        return self._sensors

    def update(self, reading: Reading) -> bool:
        """Store ``reading`` if it is newer than the one held; return whether it was stored."""
        held = self._latest.get(reading.sensor)
        if held is not None and reading.ts < held.ts and not held.retained:
            self.out_of_order += 1
            return False
        self._latest[reading.sensor] = reading
        self.updates += 1
        self.last_update_at = reading.ts
        return True

    def view(self) -> SensorView:
        return SensorView(self._sensors, self._latest, started_at=self.started_at, zones=self._zones)

    def latest(self, sensor: str) -> Reading | None:
        return self._latest.get(sensor)

    def summary(self, now: float) -> list[SensorStatus]:
        view = self.view()
        out = []
        for sid, info in sorted(self._sensors.items()):
            r = self._latest.get(sid)
            out.append(
                SensorStatus(
                    sensor=sid,
                    zone=info.zone,
                    quantity=str(info.quantity),
                    value=r.value if r else None,
                    age_s=(now - r.ts) if r else None,
                    fresh=view.fresh(sid, now) is not None,
                    retained=bool(r and r.retained),
                )
            )
        return out
