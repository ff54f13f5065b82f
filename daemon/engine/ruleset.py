"""A validated rule set, with what the engine derives from it once instead of on every evaluation."""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from daemon.engine.types import SensorInfo
from daemon.model import Quantity
from daemon.rules.model import Condition, Rule, Schedule

__all__ = ["NumericCondition", "RuleSet", "ScheduleDay", "condition_key", "day_stamps"]


class NumericCondition(NamedTuple):
    """A condition with a threshold (hysteresis, ``for:``), and the key of its timers in memory."""

    rule: Rule
    position: int
    condition: Condition
    key: str


@dataclass(frozen=True)
class RuleSet:
    """Validated rules from every file, plus named schedules."""

    rules: tuple[Rule, ...] = ()
    schedules: Mapping[str, Schedule] = field(default_factory=dict)

    def reads(self, sensor: SensorInfo) -> bool:
        """Whether any rule reads this sensor, by id or through its zone's aggregate of its quantity."""
        ids, zones = self._read_keys
        return sensor.id in ids or (sensor.zone, sensor.quantity) in zones

    @functools.cached_property
    def _read_keys(self) -> tuple[frozenset[str], frozenset[tuple[str, Quantity]]]:
        inputs = [i for r in self.rules for i in r.inputs()]
        ids = frozenset(i.sensor for i in inputs if i.sensor is not None)
        zones = frozenset((i.zone, i.quantity) for i in inputs if i.zone is not None and i.quantity is not None)
        return ids, zones

    @functools.cached_property
    def in_order(self) -> tuple[Rule, ...]:
        """The rules sorted by id: the order in which they are evaluated and traced."""
        return tuple(sorted(self.rules, key=lambda r: r.id))

    @functools.cached_property
    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    @functools.cached_property
    def targets(self) -> tuple[str, ...]:
        """Every rule target once, in the order of its first rule in :attr:`in_order`."""
        return tuple(dict.fromkeys(r.target for r in self.in_order))

    @functools.cached_property
    def numeric(self) -> tuple[NumericCondition, ...]:
        """The numeric conditions of the enabled rules, in evaluation order: what carries memory."""
        return tuple(
            NumericCondition(r, i, c, condition_key(r, i, c))
            for r in self.in_order
            if r.enabled
            for i, c in enumerate(r.when)
            if c.is_numeric
        )

    def numeric_reading(self, sensor: SensorInfo) -> tuple[NumericCondition, ...]:
        """The numeric conditions that read ``sensor`` (by id or through its zone's aggregate, as their input
        or their threshold): the ones a new reading of it can change. Kept per sensor."""
        got = self._numeric_reading.get(sensor)
        if got is None:
            got = self._numeric_reading[sensor] = tuple(n for n in self.numeric if _reads(n.condition, sensor))
        return got

    @functools.cached_property
    def _numeric_reading(self) -> dict[SensorInfo, tuple[NumericCondition, ...]]:
        return {}

    @functools.cached_property
    def numeric_by_place(self) -> dict[tuple[str, int], NumericCondition]:
        """:attr:`numeric` by (rule id, position in its ``when``)."""
        return {(n.rule.id, n.position): n for n in self.numeric}

    def schedule_day(self, name: str, tz: dt.tzinfo, day: dt.date) -> ScheduleDay | None:
        """A schedule's spans on local ``day`` and the timestamps at which it may open or close (then the
        next midnight), or None if it does not exist. Kept per day: it changes once a day."""
        cache = self._schedule_days
        got = cache.get((name, tz, day))
        if got is None:
            sched = self.schedules.get(name)
            if sched is None:
                return None
            if len(cache) >= 64:  # a few schedules a day; a replay crosses many days
                cache.clear()
            spans = tuple(sched.spans(day.weekday()))
            stamps = day_stamps(tz, day, tuple(t for span in spans for t in span))
            got = cache[(name, tz, day)] = ScheduleDay(day in sched.holidays, spans, stamps)
        return got

    @functools.cached_property
    def _schedule_days(self) -> dict[tuple[str, dt.tzinfo, dt.date], ScheduleDay]:
        return {}


class ScheduleDay(NamedTuple):
    holiday: bool
    spans: tuple[tuple[dt.time, dt.time], ...]  # of the weekday (closed all day on a holiday)
    boundaries: tuple[float, ...]  # the spans' edges as sorted timestamps, then the next midnight

    def is_open(self, t: dt.time) -> bool:
        """Whether local time ``t`` of this day is within a span."""
        if self.holiday:
            return False
        return any(a <= t < b or (b == dt.time.max and a <= t) for a, b in self.spans)

    def next_boundary(self, now: float) -> float:
        return self.boundaries[bisect.bisect_right(self.boundaries, now)]


def _reads(c: Condition, sensor: SensorInfo) -> bool:
    inputs = [c.input, *c.threshold_inputs]
    return any(i.sensor == sensor.id or (i.zone == sensor.zone and i.quantity == sensor.quantity) for i in inputs)


def condition_key(rule: Rule, index: int, cond: Condition) -> str:
    """Stable key for a condition's timers: unchanged conditions keep their timers across reloads."""
    return f"{rule.id}#{index}:{_digest(cond)}"


@functools.lru_cache(maxsize=1024)
def _digest(cond: Condition) -> str:
    return hashlib.sha1(
        json.dumps(cond.model_dump(mode="json", by_alias=True), sort_keys=True).encode(),
        usedforsecurity=False,
    ).hexdigest()[:10]


@functools.lru_cache(maxsize=256)
def day_stamps(tz: dt.tzinfo, day: dt.date, times: tuple[dt.time, ...]) -> tuple[float, ...]:
    """``times`` on local ``day`` as sorted timestamps, then the next midnight."""
    stamps = sorted(dt.datetime.combine(day, x, tzinfo=tz).timestamp() for x in times if x != dt.time.max)
    return (*stamps, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz).timestamp())
