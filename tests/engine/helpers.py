"""Shared fixtures for the engine tests: a fixed site, sensors, point limits and a small runner."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from daemon.engine import EngineMemory, Evaluation, PointLimits, RuleSet, SensorInfo, SensorView, evaluate
from daemon.model import Quantity, Reading
from daemon.rules.model import RuleFile
from daemon.sun import Site

SITE = Site(31.23, 121.47, "Asia/Shanghai")
TZ = ZoneInfo(SITE.timezone)

SENSORS: dict[str, SensorInfo] = {
    s.id: s
    for s in (
        SensorInfo("hall-pm25", "hall", Quantity.PM25, 120),
        SensorInfo("hall-pm25-b", "hall", Quantity.PM25, 120),
        SensorInfo("hall-lux", "hall", Quantity.ILLUMINANCE, 120),
        SensorInfo("outdoor-pm25", "outdoor", Quantity.PM25, 600),
    )
}

LIMITS: dict[str, PointLimits] = {
    "fresh_air.fan_level": PointLimits(0, 3, (0, 1, 2, 3)),
    "lights.cct": PointLimits(2700, 5000),
    "lights.brightness": PointLimits(0, 100),
}

OPENING = {
    "mon": ["08:30", "17:30"],
    "tue": ["08:30", "17:30"],
    "wed": ["08:30", "17:30"],
    "thu": ["08:30", "17:30"],
    "fri": [["08:30", "12:00"], ["13:00", "17:30"]],
    "sat": ["09:00", "16:00"],
    "holidays": ["2026-10-01"],
}


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:  # noqa: PLR0917
    """POSIX time of a local wall-clock time at the site."""
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=TZ).timestamp()


#: Wednesday 4 March 2026, 10:00 local: the branch is open.
T0 = at(2026, 3, 4, 10, 0)


def ruleset(*rules: Mapping[str, Any], schedules: Mapping[str, Any] | None = None) -> RuleSet:
    rf = RuleFile.model_validate({"rules": list(rules), "schedules": dict(schedules or {"opening-hours": OPENING})})
    return RuleSet(rf.rules, rf.schedules)


def reading(sensor: str, value: float, ts: float, *, retained: bool = False) -> Reading:
    info = SENSORS[sensor]
    return Reading(sensor, info.quantity, value, ts, info.zone, retained)


class Runner:
    """Evaluates a rule set step by step, carrying memory and the latest readings like the daemon."""

    def __init__(
        self, rules: RuleSet, *, resume_grace_s: float = 120.0, limits: Mapping[str, PointLimits] = LIMITS
    ) -> None:
        self.rules = rules
        self.limits = limits
        self.memory = EngineMemory()
        self.readings: dict[str, Reading] = {}
        self.resume_grace_s = resume_grace_s
        self.last: Evaluation | None = None

    def feed(self, sensor: str, value: float, ts: float, *, retained: bool = False) -> None:
        self.readings[sensor] = reading(sensor, value, ts, retained=retained)

    def step(self, now: float, **values: float) -> Evaluation:
        for name, value in values.items():
            self.feed(name.replace("_", "-"), value, now)
        ev = evaluate(
            self.rules,
            SensorView(SENSORS, self.readings),
            now,
            self.memory,
            site=SITE,
            limits=self.limits,
            resume_grace_s=self.resume_grace_s,
        )
        self.memory = ev.memory
        self.last = ev
        return ev

    def value(self, now: float, target: str = "fresh_air.fan_level", **values: float) -> float | None:
        d = self.step(now, **values).decisions.get(target)
        return None if d is None else d.value


PM25_HIGH: dict[str, Any] = {
    "id": "pm25-high",
    "target": "fresh_air.fan_level",
    "priority": 50,
    "when": [{"zone": "hall", "quantity": "pm25", "aggregate": "max", "above": 35, "off_below": 25}],
    "set": 3,
    "safe_value": 2,
}
