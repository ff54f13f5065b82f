"""A burst of readings may be evaluated once, but no reading may be skipped.

The daemon evaluates its rules at most once per ``evaluate_min_gap_s``; every reading in between is
only :func:`advance`d. The property: after any burst, the memory (latches, ``for:`` start times, when
inputs were last known, overrides, the outputs of the points decided) and the decisions equal those of
evaluating after every reading. The documented exceptions: a ramp moves at its rate towards the value
asked for at the evaluation (tested on its own below), and a point that a rule decided only in the
middle of a burst keeps no record of that output (it was never decided, so never written).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.engine import EngineMemory, Evaluation, RuleSet, SensorView, advance, evaluate
from daemon.model import Reading
from tests.engine.helpers import LIMITS, PM25_HIGH, SENSORS, SITE, T0, reading, ruleset

FAN, CCT, BRIGHT = "fresh_air.fan_level", "lights.cct", "lights.brightness"

MENU: list[dict[str, Any]] = [
    PM25_HIGH,  # zone max, hysteresis, safe value
    {"id": "open", "target": FAN, "when": [{"schedule": "opening-hours"}], "set": 1},
    {"id": "elevated", "target": FAN, "priority": 40,
     "when": [{"zone": "hall", "quantity": "pm25", "aggregate": "mean", "between": [12, 35], "for": "20s"}],
     "set": 2},
    {"id": "dirty-out", "target": FAN, "priority": 60,
     "when": [{"sensor": "outdoor-pm25", "above": {"sensor": "hall-pm25", "times": 3}, "for": "30s"}],
     "set": 0, "safe_value": 1},
    {"id": "clean", "target": FAN, "priority": 45,
     "when": [{"sensor": "hall-pm25", "below": 8, "off_above": 12, "for": "1m"}], "set": 0},
    {"id": "daylight", "target": CCT,
     "set": {"curve": {"input": "hall-lux", "points": [[0, 3000], [800, 5000]]}}, "safe_value": 4000},
    {"id": "dim", "target": BRIGHT, "when": [{"sensor": "hall-lux", "above": 600, "off_below": 400}], "set": 40},
    {"id": "bright", "target": BRIGHT, "priority": -1, "set": 90},
]  # fmt: skip

SENSOR_IDS = sorted(SENSORS)

burst = st.lists(
    st.tuples(
        st.sampled_from(SENSOR_IDS),
        st.floats(0, 900, allow_nan=False),
        st.sampled_from([0.0, 0.0005, 0.002, 0.5, 3.0, 25.0, 130.0]),  # seconds after the previous reading
    ),
    min_size=1,
    max_size=40,
)


def _view(readings: dict[str, Reading]) -> SensorView:
    return SensorView(SENSORS, dict(readings), started_at=T0 - 3600)


def _state(ev: Evaluation) -> tuple[Any, ...]:
    m = ev.memory
    decisions = {t: (d.value, d.reason.rule, d.reason.fallback) for t, d in ev.decisions.items()}
    outputs = {t: v for t, v in m.outputs.items() if t in ev.decisions}
    return (m.latched, m.since, m.known_at, outputs, m.overrides, decisions, ev.next_due)


def _one_by_one(rules: RuleSet, bursts: list[list[tuple[str, float, float]]]) -> list[tuple[Any, ...]]:
    """Evaluate after every reading; the state at the end of each burst."""
    readings: dict[str, Reading] = {}
    mem, t, out = EngineMemory(), T0, []
    for b in bursts:
        for sensor, value, gap in b:
            t += gap
            readings[sensor] = reading(sensor, value, t)
            ev = evaluate(rules, _view(readings), t, mem, site=SITE, limits=LIMITS)
            mem = ev.memory
        out.append(_state(ev))
    return out


def _coalesced(rules: RuleSet, bursts: list[list[tuple[str, float, float]]]) -> list[tuple[Any, ...]]:
    """Advance on every reading, evaluate once at the end of each burst (at its last reading's time)."""
    readings: dict[str, Reading] = {}
    mem, t, out = EngineMemory(), T0, []
    for b in bursts:
        for sensor, value, gap in b:
            t += gap
            readings[sensor] = reading(sensor, value, t)
            mem = advance(rules, _view(readings), t, mem)
        ev = evaluate(rules, _view(readings), t, mem, site=SITE, limits=LIMITS)
        mem = ev.memory
        out.append(_state(ev))
    return out


@settings(max_examples=300, deadline=None)
@given(
    chosen=st.sets(st.sampled_from(range(len(MENU))), min_size=1),
    bursts=st.lists(burst, min_size=1, max_size=4),
)
def test_a_coalesced_burst_ends_where_reading_by_reading_ends(
    chosen: set[int], bursts: list[list[tuple[str, float, float]]]
) -> None:
    rules = ruleset(*(MENU[i] for i in sorted(chosen)))
    assert _coalesced(rules, bursts) == _one_by_one(rules, bursts)


def test_a_crossing_inside_a_burst_is_not_lost() -> None:
    """40 switched the high level on; in a burst, 20 switches it off and 30 (inside the band) keeps it off.

    Evaluating only after the burst, without advancing, would see 30 with the latch still on: HIGH."""
    rules = ruleset(PM25_HIGH, {"id": "base", "target": FAN, "set": 1})
    readings = {"hall-pm25": reading("hall-pm25", 40, T0)}
    before = evaluate(rules, _view(readings), T0, EngineMemory(), site=SITE, limits=LIMITS)
    assert before.decisions[FAN].value == 3
    mem, t = before.memory, T0
    for value in (20.0, 30.0):
        t += 0.001
        readings["hall-pm25"] = reading("hall-pm25", value, t)
        mem = advance(rules, _view(readings), t, mem)
    assert evaluate(rules, _view(readings), t, mem, site=SITE, limits=LIMITS).decisions[FAN].value == 1
    skipped = evaluate(rules, _view(readings), t, before.memory, site=SITE, limits=LIMITS)
    assert skipped.decisions[FAN].value == 3  # what a reading skipped by the latch would have done


def test_advance_changes_neither_its_arguments_nor_any_decision() -> None:
    rules = ruleset(PM25_HIGH)
    readings = {"hall-pm25": reading("hall-pm25", 50, T0)}
    mem = EngineMemory()
    view = _view(readings)
    moved = advance(rules, view, T0, mem)
    assert mem == EngineMemory() and moved is not mem
    assert moved.latched and moved.outputs == {}  # a latch, no output: only evaluate decides


@settings(max_examples=100, deadline=None)
@given(burst=burst)
def test_a_ramp_after_a_burst_moves_no_faster_than_its_rate(burst: list[tuple[str, float, float]]) -> None:
    rate = 600.0
    rules = ruleset({**MENU[5], "ramp_per_minute": rate})
    readings = {"hall-lux": reading("hall-lux", 0, T0)}
    first = evaluate(rules, _view(readings), T0, EngineMemory(), site=SITE, limits=LIMITS)
    mem, t = first.memory, T0
    for sensor, value, gap in burst:
        t += gap
        readings[sensor] = reading(sensor, value, t)
        mem = advance(rules, _view(readings), t, mem)
    ev = evaluate(rules, _view(readings), t, mem, site=SITE, limits=LIMITS)
    moved = abs(ev.decisions[CCT].value - first.decisions[CCT].value)
    assert moved <= rate * (t - T0) / 60 + 1e-6
