"""A burst of readings may be evaluated once, but no reading may be skipped.

The daemon evaluates its rules at most once per ``evaluate_min_gap_s``; every reading in between is
only :func:`advance`d. The property: after any burst, the memory (latches, ``for:`` start times, when
inputs were last known, overrides, the outputs of the points decided) and the decisions equal those of
evaluating after every reading. The documented exceptions: a ramp moves at its rate towards the value
asked for at the evaluation (tested on its own below), and a point that a rule decided only in the
middle of a burst keeps no record of that output (it was never decided, so never written).
"""

from __future__ import annotations

import math
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
    return (m.latched, m.since, m.known_until, outputs, m.overrides, decisions, ev.next_due, ev.stale_at)


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
    """Advance on every reading (as the control loop does: the conditions that read it, or all of them
    once ``stale_at`` has come), evaluate once at the end of each burst (at its last reading's time)."""
    readings: dict[str, Reading] = {}
    mem, t, out, stale_at = EngineMemory(), T0, [], -math.inf
    for b in bursts:
        for sensor, value, gap in b:
            t += gap
            readings[sensor] = reading(sensor, value, t)
            mem, stale_at = advance(rules, _view(readings), t, mem, sensor=sensor, stale_at=stale_at)
        ev = evaluate(rules, _view(readings), t, mem, site=SITE, limits=LIMITS)
        mem, stale_at = ev.memory, ev.stale_at
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
    mem, t, stale_at = before.memory, T0, before.stale_at
    for value in (20.0, 30.0):
        t += 0.001
        readings["hall-pm25"] = reading("hall-pm25", value, t)
        mem, stale_at = advance(rules, _view(readings), t, mem, sensor="hall-pm25", stale_at=stale_at)
    assert evaluate(rules, _view(readings), t, mem, site=SITE, limits=LIMITS).decisions[FAN].value == 1
    skipped = evaluate(rules, _view(readings), t, before.memory, site=SITE, limits=LIMITS)
    assert skipped.decisions[FAN].value == 3  # what a reading skipped by the latch would have done


def test_advance_changes_neither_its_arguments_nor_any_decision() -> None:
    rules = ruleset(PM25_HIGH)
    readings = {"hall-pm25": reading("hall-pm25", 50, T0)}
    mem = EngineMemory()
    view = _view(readings)
    moved = advance(rules, view, T0, mem, sensor="hall-pm25").memory
    assert mem == EngineMemory() and moved is not mem
    assert moved.latched and moved.outputs == {}  # a latch, no output: only evaluate decides


def test_a_reading_steps_only_the_conditions_that_read_it() -> None:
    rules = ruleset(PM25_HIGH, MENU[3], MENU[6])  # hall's max PM2.5; outdoor vs hall × 3; hall lux
    names = {s: {n.rule.id for n in rules.numeric_reading(SENSORS[s])} for s in SENSOR_IDS}
    assert names == {
        "hall-pm25": {"pm25-high", "dirty-out"},  # a zone member, and the outdoor rule's threshold
        "hall-pm25-b": {"pm25-high"},
        "hall-lux": {"dim"},
        "outdoor-pm25": {"dirty-out"},
    }
    readings = {s: reading(s, 10, T0) for s in SENSOR_IDS}
    first = evaluate(rules, _view(readings), T0, EngineMemory(), site=SITE, limits=LIMITS)
    readings["hall-lux"] = reading("hall-lux", 700, T0 + 1)
    moved = advance(rules, _view(readings), T0 + 1, first.memory, sensor="hall-lux", stale_at=first.stale_at)
    changed = {k for k in moved.memory.known_until if moved.memory.known_until[k] != first.memory.known_until[k]}
    assert {k.split("#")[0] for k in changed} == {"dim"}
    late = advance(rules, _view(readings), first.stale_at, first.memory, sensor="hall-lux", stale_at=first.stale_at)
    assert late.memory.known_until.keys() == first.memory.known_until.keys()  # at stale_at: every condition


def test_a_condition_changed_by_a_reading_going_stale_is_stepped_at_the_next_reading() -> None:
    """The hall's mean PM2.5 enters the band when one sensor's high reading goes stale, with no reading of
    the hall's PM2.5 at all: the next reading of anything steps every condition, as evaluating would."""
    rules = ruleset(MENU[2], MENU[6])  # elevated: mean(hall.pm25) between 12 and 35 for 20 s; dim: hall lux
    burst = [("hall-pm25", 60.0, 0.0), ("hall-pm25-b", 20.0, 100.0)]  # mean 40: not in the band
    burst += [("hall-lux", 100.0, 25.0), ("hall-lux", 200.0, 5.0), ("hall-lux", 300.0, 30.0)]  # hall-pm25 stale at 120
    coalesced, reference = _coalesced(rules, [burst]), _one_by_one(rules, [burst])
    assert coalesced == reference
    assert list(coalesced[0][1].values()) == [T0 + 125]  # `for:` started at the first reading after it


@settings(max_examples=100, deadline=None)
@given(burst=burst)
def test_a_ramp_after_a_burst_moves_no_faster_than_its_rate(burst: list[tuple[str, float, float]]) -> None:
    rate = 600.0
    rules = ruleset({**MENU[5], "ramp_per_minute": rate})
    readings = {"hall-lux": reading("hall-lux", 0, T0)}
    first = evaluate(rules, _view(readings), T0, EngineMemory(), site=SITE, limits=LIMITS)
    mem, t, stale_at = first.memory, T0, first.stale_at
    for sensor, value, gap in burst:
        t += gap
        readings[sensor] = reading(sensor, value, t)
        mem, stale_at = advance(rules, _view(readings), t, mem, sensor=sensor, stale_at=stale_at)
    ev = evaluate(rules, _view(readings), t, mem, site=SITE, limits=LIMITS)
    moved = abs(ev.decisions[CCT].value - first.decisions[CCT].value)
    assert moved <= rate * max(1.0, (t - T0) / 60) + 1e-6  # a step of the rate a minute, at most
