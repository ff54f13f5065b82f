"""``lobbyd why`` text on fixed evaluations: exact key lines."""

from __future__ import annotations

from daemon.engine import Override, explain_point, format_age
from tests.engine.helpers import PM25_HIGH, T0, Runner, ruleset

FAN = "fresh_air.fan_level"
RULES = ruleset(
    PM25_HIGH,
    {
        "id": "pm25-elevated",
        "target": FAN,
        "priority": 40,
        "when": [{"zone": "hall", "quantity": "pm25", "aggregate": "max", "above": 25, "off_below": 15}],
        "set": 2,
        "safe_value": 2,
    },
    {"id": "fresh-air-open", "target": FAN, "when": [{"schedule": "opening-hours"}], "set": 1},
    {"id": "fresh-air-closed", "target": FAN, "when": [{"outside_schedule": "opening-hours"}], "set": 0},
    {"id": "quiet", "target": FAN, "when": [{"sensor": "outdoor-pm25", "above": 5}], "set": 1, "enabled": False},
)


def test_winner_conditions_inputs_losers_and_safety_hold() -> None:
    run = Runner(RULES)
    run.feed("hall-pm25-b", 12, T0 - 30)
    ev = run.step(T0, hall_pm25=40)
    text = explain_point(FAN, ev, previous=1, known=1, held_by="minimum hold time 120s (80s left)", now=T0)
    assert text.splitlines() == [
        "fresh_air.fan_level = 3",
        "  set by rule pm25-high (priority 50)",
        "  because:",
        "    - max(hall.pm25) = 40 µg/m³ is above 35",
        "    - set 3",
        "  inputs:",
        "    - hall-pm25 = 40, 0 s old",
        "    - hall-pm25-b = 12, 30 s old",
        "  other rules for fresh_air.fan_level:",
        "    - pm25-elevated (priority 40): asked for 2, lost — priority 40 < 50",
        "    - fresh-air-closed (priority 0): not active — opening-hours is open (the rule needs it closed)",
        "    - fresh-air-open (priority 0): asked for 1, lost — priority 0 < 50",
        "    - quiet (priority 0): disabled (enabled: false)",
        "  the device holds 1; previous setpoint 1",
        "  held back by the safety layer: minimum hold time 120s (80s left); the device stays at 1",
    ]


def test_fallback_is_said_in_words() -> None:
    run = Runner(RULES)
    run.step(T0, hall_pm25=40)
    run.readings.clear()
    text = explain_point(FAN, run.step(T0 + 60), previous=3, known=3, held_by=None, now=T0 + 60)
    lines = text.splitlines()
    assert lines[:5] == [
        "fresh_air.fan_level = 2",
        "  set by rule pm25-high (priority 50)",
        "  fallback: its inputs are unknown, so it asks for its safe value",
        "  because:",
        "    - max(hall.pm25) is unknown (no fresh reading)",
    ]
    assert "    - pm25-elevated (priority 40): asked for 2 (fallback), lost — priority 40 < 50" in lines


def test_override_ramp_clamp_and_nothing_to_write() -> None:
    run = Runner(RULES)
    run.memory.overrides[FAN] = Override(9, T0 + 900, "mqtt")
    text = explain_point(FAN, run.step(T0, hall_pm25=40), previous=None, known=3, held_by=None, now=T0)
    lines = text.splitlines()
    assert lines[0] == "fresh_air.fan_level = 3"
    assert lines[1] == "  set by a manual override (mqtt) until 10:15; clamped 9 to 3 (device range)"
    assert lines[2] == "  the override ends in 15 min; then the rules decide again"
    assert "    - pm25-high (priority 50): asked for 3, but a manual override is in force" in lines
    assert lines[-1] == "  the device already holds this value: nothing to write"


def test_no_decision() -> None:
    run = Runner(ruleset(PM25_HIGH))
    text = explain_point(FAN, run.step(T0, hall_pm25=10), previous=None, known=1, held_by=None, now=T0)
    assert text.splitlines() == [
        "fresh_air.fan_level: no rule asks for a value now; the device keeps what it has",
        "  the device holds 1",
        "  other rules for fresh_air.fan_level:",
        "    - pm25-high (priority 50): not active — max(hall.pm25) = 10 µg/m³ is not above 35",
    ]


def test_format_age() -> None:
    assert [format_age(x) for x in (None, 3, 119, 600, 9000)] == ["?", "3 s", "119 s", "10 min", "2.5 h"]
