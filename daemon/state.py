"""Sensor state: the latest reading per sensor, and what the daemon knows about freshness.

This is where every accepted reading lands (from :mod:`daemon.intake`). The engine reads it through
:class:`daemon.engine.SensorView`; ``lobbyd status`` reads :meth:`SensorState.summary`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from daemon.engine import SensorInfo, SensorView, zone_index
from daemon.inputs import Conditioning
from daemon.model import Reading

#: Called when a sensor becomes stuck (True) or moves again (False), with the reading's time.
StuckCallback = Callable[[str, bool, Reading], None]

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
    raw: float | None = None  # the last raw value, for a sensor with a filter (``value`` is filtered)
    stuck: bool = False  # its value has not moved for its ``stuck.after_s``: the rules do not use it
    warming_up: bool = False  # a trend filling its window since the start: not yet known, not stale


class SensorState:
    """Latest reading per configured sensor. Older readings than the one held are ignored.

    With ``conditioning``, a sensor's filter and stuck check apply to each reading: the rules see the
    filtered value, and a stuck sensor is left out of what they see (as if silent) until it moves.
    """

    def __init__(
        self,
        sensors: Mapping[str, SensorInfo],
        *,
        started_at: float | None = None,
        conditioning: Conditioning | None = None,
        on_stuck: StuckCallback | None = None,
    ) -> None:
        self._sensors = dict(sensors)
        self._zones = zone_index(self._sensors)
        self.started_at = started_at
        self._latest: dict[str, Reading] = {}
        self._inputs = conditioning if conditioning else None
        self._on_stuck = on_stuck
        self._raw: dict[str, float] = {}  # sensors with a filter: the last raw value
        self._filtered: dict[str, float] = {}
        self.stuck: set[str] = set()
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
        if self._inputs is not None and not reading.retained and reading.sensor in self._inputs:
            reading = self._condition(reading)
        self._latest[reading.sensor] = reading
        self.updates += 1
        self.last_update_at = reading.ts
        return True

    def _condition(self, raw: Reading) -> Reading:
        assert self._inputs is not None
        c = self._inputs.apply(raw)
        if c.filtered is not None:
            self._raw[raw.sensor], self._filtered[raw.sensor] = raw.value, c.filtered
        if c.stuck_changed:
            now_stuck = raw.sensor not in self.stuck
            (self.stuck.add if now_stuck else self.stuck.discard)(raw.sensor)
            if self._on_stuck is not None:
                self._on_stuck(raw.sensor, now_stuck, raw)
        return c.reading

    def filtered(self, sensor: str) -> float | None:
        """The sensor's filtered value after its last reading, if it has a filter."""
        return self._filtered.get(sensor)

    def view(self) -> SensorView:
        """What the rules see: the latest readings, stuck sensors left out."""
        latest = self._latest if not self.stuck else {k: v for k, v in self._latest.items() if k not in self.stuck}
        return SensorView(self._sensors, latest, started_at=self.started_at, zones=self._zones)

    def latest(self, sensor: str) -> Reading | None:
        return self._latest.get(sensor)

    def summary(self, now: float) -> list[SensorStatus]:
        view = SensorView(self._sensors, self._latest, started_at=self.started_at, zones=self._zones)
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
                    raw=self._raw.get(sid),
                    stuck=sid in self.stuck,
                    # a trend filling its window: the view's own "not yet known", said apart from stale
                    warming_up=info.warmup_s > 0 and view.not_yet_known(sid, now) is not None,
                )
            )
        return out
