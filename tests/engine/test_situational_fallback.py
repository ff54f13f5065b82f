"""A fallback that depends on the situation, written with what the language has: a schedule condition
beside the sensor condition picks which rule falls back (a rule with a false condition does not act,
so does not fall back), and a higher-priority rule on known-bad outdoor air wins over any fallback.
rules/README.md shows the same rules to staff."""

from __future__ import annotations

from typing import Any

from tests.engine.helpers import OPENING, Runner, at, ruleset

FAN = "fresh_air.fan_level"
PM25_HIGH = {"sensor": "hall-pm25", "above": 35, "off_below": 25}
RULES: list[dict[str, Any]] = [
    {"id": "base", "target": FAN, "set": 1},
    {"id": "pm25-open", "target": FAN, "priority": 50, "set": 3, "safe_value": 2,
     "when": [{"schedule": "opening-hours"}, PM25_HIGH]},
    {"id": "pm25-closed", "target": FAN, "priority": 50, "set": 2, "safe_value": 0,
     "when": [{"outside_schedule": "opening-hours"}, PM25_HIGH]},
    {"id": "outdoor-bad", "target": FAN, "priority": 60, "set": 1,
     "when": [{"sensor": "outdoor-pm25", "above": 150, "off_below": 100}]},
]  # fmt: skip
OPEN, CLOSED = at(2026, 3, 4, 10, 0), at(2026, 3, 4, 21, 0)


def decide(now: float, **readings: float) -> tuple[float | None, str | None, bool]:
    run = Runner(ruleset(*RULES, schedules={"opening-hours": OPENING}))
    ev = run.step(now, **readings)
    d = ev.decisions.get(FAN)
    return (None, None, False) if d is None else (d.value, d.reason.rule, d.reason.fallback)


def test_the_hall_sensor_quiet_while_open_falls_back_to_the_open_value() -> None:
    assert decide(OPEN, outdoor_pm25=20) == (2, "pm25-open", True)


def test_the_hall_sensor_quiet_while_closed_falls_back_to_the_closed_value() -> None:
    assert decide(CLOSED, outdoor_pm25=20) == (0, "pm25-closed", True)


def test_known_bad_outdoor_air_wins_over_the_fallback() -> None:
    assert decide(OPEN, outdoor_pm25=300) == (1, "outdoor-bad", False)


def test_with_the_sensor_known_the_rules_act_normally() -> None:
    assert decide(OPEN, hall_pm25=50, outdoor_pm25=20) == (3, "pm25-open", False)
    assert decide(CLOSED, hall_pm25=10, outdoor_pm25=20) == (1, "base", False)
