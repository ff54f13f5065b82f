"""``Evaluation.next_due``: when the outcome can next change with no new reading.

The daemon's ticker evaluates only when this time has come (or a heartbeat), so it must never be
late: the property below checks that, between two readings, nothing changes before ``next_due``.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.control import HEARTBEAT_S
from daemon.engine import CIRCADIAN_EVERY_S, EngineMemory, Override, SensorView, evaluate
from tests.engine.helpers import LIMITS, PM25_HIGH, SENSORS, SITE, T0, Runner, at, reading, ruleset

FAN = "fresh_air.fan_level"


def test_a_fresh_reading_is_due_when_it_goes_stale() -> None:
    run = Runner(ruleset(PM25_HIGH))
    ev = run.step(T0, hall_pm25=50)
    assert ev.next_due == T0 + SENSORS["hall-pm25"].stale_after_s
    assert run.step(T0 + 121).decisions[FAN].reason.fallback  # and at that time it has changed


def test_only_a_reading_can_change_a_constant_rule_on_stale_inputs() -> None:
    run = Runner(ruleset(PM25_HIGH))
    run.feed("hall-pm25", 50, T0 - 1000)
    assert run.step(T0).next_due == math.inf


def test_a_for_timer_is_due_when_it_completes() -> None:
    rule = {"id": "r", "target": FAN, "when": [{"sensor": "outdoor-pm25", "above": 35, "for": "5m"}], "set": 3}
    run = Runner(ruleset(rule))
    assert run.step(T0, outdoor_pm25=50).next_due == T0 + 300
    run.step(T0 + 100)  # the daemon evaluates at least every heartbeat (< resume_grace_s)
    run.step(T0 + 200)
    ev = run.step(T0 + 299.5)
    assert (ev.next_due, ev.decisions) == (T0 + 300, {})
    assert run.step(T0 + 300).decisions[FAN].value == 3


def test_schedule_and_time_windows_are_due_at_their_next_edge() -> None:
    sched = {"id": "open", "target": FAN, "when": [{"schedule": "opening-hours"}], "set": 1}
    window = {"id": "evening", "target": "lights.brightness", "when": [{"time": {"after": "18:15"}}], "set": 30}
    run = Runner(ruleset(sched, window))
    wed = (2026, 3, 4)
    assert run.step(at(*wed, 8, 0)).next_due == at(*wed, 8, 30)  # opening
    assert run.step(at(*wed, 10, 0)).next_due == at(*wed, 17, 30)  # closing
    assert run.step(at(*wed, 17, 45)).next_due == at(*wed, 18, 15)  # the evening window
    assert run.step(at(*wed, 19, 0)).next_due == at(2026, 3, 5, 0, 0)  # midnight: another weekday


def test_overrides_ramps_and_circadian_colour() -> None:
    run = Runner(ruleset({"id": "r", "target": FAN, "set": 1}))
    run.memory.overrides[FAN] = Override(3, T0 + 600)
    assert run.step(T0).next_due == T0 + 600
    ramp = Runner(ruleset({"id": "cct", "target": "lights.cct", "set": 2700, "ramp_per_minute": 100}))
    ramp.memory.outputs["lights.cct"] = (5000.0, T0 - 1)
    assert ramp.step(T0).next_due == T0 + 60  # on its way: its next step when the next minute begins
    circ = Runner(ruleset({"id": "c", "target": "lights.cct", "set": {"circadian": {}}}))
    assert circ.step(T0).next_due == T0 + CIRCADIAN_EVERY_S


def _decisions(ev: Any) -> dict[str, tuple[float, str, bool]]:
    return {t: (d.value, d.reason.rule, d.reason.fallback) for t, d in ev.decisions.items()}


@settings(max_examples=200, deadline=None)
@given(
    pm25=st.floats(0, 80, allow_nan=False),
    outdoor=st.floats(0, 200, allow_nan=False),
    age=st.floats(0, 700),
    start_h=st.floats(0, 24 * 7),
    gaps=st.lists(st.floats(0.5, 2 * HEARTBEAT_S), min_size=1, max_size=40),
)
def test_nothing_changes_before_next_due(
    pm25: float, outdoor: float, age: float, start_h: float, gaps: list[float]
) -> None:
    """With the readings fixed, evaluating earlier than ``next_due`` gives the same decisions."""
    rules = ruleset(
        PM25_HIGH,
        {"id": "open", "target": FAN, "when": [{"schedule": "opening-hours"}], "set": 1},
        {"id": "night", "target": "lights.brightness", "when": [{"time": {"after": "19:00", "before": "07:00"}}],
         "set": 10},
        {"id": "dirty-out", "target": FAN, "priority": 60,
         "when": [{"sensor": "outdoor-pm25", "above": 100, "for": "10m"}], "set": 0, "safe_value": 1},
        {"id": "sun", "target": "lights.cct", "when": [{"sun": {"after": "sunrise", "before": "sunset"}}],
         "set": 4000},
    )  # fmt: skip
    now = T0 + start_h * 3600
    readings = {
        "hall-pm25": reading("hall-pm25", pm25, now - age),
        "outdoor-pm25": reading("outdoor-pm25", outdoor, now - age),
    }
    mem = EngineMemory()
    ev = evaluate(rules, SensorView(SENSORS, readings), now, mem, site=SITE, limits=LIMITS)
    for gap in gaps:
        t = now + gap
        due = min(ev.next_due, now + HEARTBEAT_S)  # when the daemon's ticker evaluates next
        if t >= due:  # due: evaluate there, and go on from that evaluation
            now = due
            ev = evaluate(rules, SensorView(SENSORS, readings), now, ev.memory, site=SITE, limits=LIMITS)
            continue
        early = evaluate(rules, SensorView(SENSORS, readings), t, ev.memory, site=SITE, limits=LIMITS)
        assert _decisions(early) == _decisions(ev), f"changed at +{t - now:.1f} s, before next_due"
