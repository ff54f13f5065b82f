"""``evaluate(..., reuse=, changed=)``: after a reading, only the rules that read it are evaluated again.

The property: a chain of evaluations that keeps what it may (``reuse`` = the previous evaluation,
``changed`` = the sensors with a new reading since) decides exactly what a chain of full evaluations
decides, step for step, with the same memory (latches, ``for`` start times, ``known_at``, ramp outputs,
overrides), and is never due later. The unit tests check which rules are kept and when nothing is.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.engine import EngineMemory, Evaluation, Override, SensorView, evaluate
from daemon.model import Reading
from tests.engine.helpers import LIMITS, PM25_HIGH, SENSORS, SITE, T0, reading, ruleset

FAN, CCT, BRIGHT = "fresh_air.fan_level", "lights.cct", "lights.brightness"

RULES = ruleset(
    PM25_HIGH,  # zone aggregate (max of hall-pm25 and hall-pm25-b) with hysteresis and a safe value
    {"id": "open", "target": FAN, "when": [{"schedule": "opening-hours"}], "set": 1},
    {"id": "dirty-out", "target": FAN, "priority": 60,
     "when": [{"sensor": "outdoor-pm25", "above": {"sensor": "hall-pm25", "times": 3}, "for": "30s"}],
     "set": 0, "safe_value": 1},
    {"id": "elevated", "target": FAN, "priority": 40,
     "when": [{"zone": "hall", "quantity": "pm25", "aggregate": "mean", "between": [12, 35]}], "set": 2},
    {"id": "daylight", "target": CCT, "ramp_per_minute": 600,
     "set": {"curve": {"input": "hall-lux", "points": [[0, 3000], [800, 5000]]}}, "safe_value": 4000},
    {"id": "evening", "target": BRIGHT, "when": [{"time": {"after": "10:02"}}, {"sensor": "hall-lux", "below": 300}],
     "set": 80},
    {"id": "off", "target": BRIGHT, "enabled": False, "when": [{"sensor": "hall-lux", "above": 0}], "set": 0},
    schedules=None,
)  # fmt: skip

SENSOR_IDS = sorted(SENSORS)


def _eval(now: float, readings: dict[str, Reading], mem: EngineMemory, **kw: Any) -> Evaluation:
    return evaluate(RULES, SensorView(SENSORS, dict(readings)), now, mem, site=SITE, limits=LIMITS, **kw)


def _decisions(ev: Evaluation) -> dict[str, tuple[float, str, bool, str | None]]:
    return {t: (d.value, d.reason.rule, d.reason.fallback, d.reason.held_by) for t, d in ev.decisions.items()}


def _memory(ev: Evaluation) -> tuple[Any, ...]:
    m = ev.memory
    return (m.latched, m.since, m.known_at, m.outputs, m.overrides)


step = st.tuples(
    st.floats(0.2, 40),  # seconds since the previous evaluation
    st.dictionaries(st.sampled_from(SENSOR_IDS), st.floats(0, 900, allow_nan=False), max_size=3),  # new readings
    st.floats(0, 3),  # how long the readings took to arrive
    st.sampled_from([None, None, None, None, "set", "clear"]),  # a manual override on the fan
)


@settings(max_examples=300, deadline=None)
@given(first=st.dictionaries(st.sampled_from(SENSOR_IDS), st.floats(0, 900)), steps=st.lists(step, max_size=40))
def test_keeping_rules_decides_what_a_full_evaluation_decides(
    first: dict[str, float], steps: list[tuple[float, dict[str, float], float, str | None]]
) -> None:
    now = T0
    readings = {s: reading(s, v, now) for s, v in first.items()}
    full = kept = _eval(now, readings, EngineMemory())
    for gap, new, lag, override in steps:
        now += gap
        readings.update({s: reading(s, v, now - min(lag, gap)) for s, v in new.items()})
        mems = (full.memory.copy(), kept.memory.copy())
        for mem in mems:  # as the daemon does: the override goes into memory, then an evaluation
            if override == "set":
                mem.overrides[FAN] = Override(3, now + 60)
            elif override == "clear":
                mem.overrides.pop(FAN, None)
        next_full = _eval(now, readings, mems[0])
        next_kept = _eval(now, readings, mems[1], reuse=kept, changed=set(new))
        assert _decisions(next_kept) == _decisions(next_full), f"+{now - T0:.1f}s kept {sorted(next_kept.kept)}"
        assert _memory(next_kept) == _memory(next_full)
        assert next_kept.next_due <= next_full.next_due  # never late: the ticker acts on it
        fresh = {t.rule: t for t in next_full.traces}
        for t in next_kept.traces:  # a kept trace's words are as old as its evaluation; the rest is the same
            f = fresh[t.rule]
            assert ((t.state, t.value) == (f.state, f.value)) if t.rule in next_kept.kept else (t == f)
        full, kept = next_full, next_kept


def test_a_reading_evaluates_only_the_rules_that_read_it() -> None:
    readings = {s: reading(s, 20, T0) for s in SENSOR_IDS}
    ev = _eval(T0, readings, EngineMemory())
    readings["hall-pm25-b"] = reading("hall-pm25-b", 30, T0 + 1)  # read through the hall's aggregates only
    after_pm = _eval(T0 + 1, readings, ev.memory, reuse=ev, changed={"hall-pm25-b"})
    assert after_pm.kept == {"open", "dirty-out", "daylight", "evening", "off"}
    assert after_pm.decisions[FAN].reason.rule == "elevated"
    readings["hall-lux"] = reading("hall-lux", 500, T0 + 2)
    after_lux = _eval(T0 + 2, readings, after_pm.memory, reuse=after_pm, changed={"hall-lux"})
    assert after_lux.kept == {"pm25-high", "open", "dirty-out", "elevated"}  # "off" reads it too: traced again
    assert after_lux.decisions[CCT].reason.held_by == "ramp"  # on its way: due at once,
    readings["hall-pm25"] = reading("hall-pm25", 21, T0 + 3)
    assert _eval(T0 + 3, readings, after_lux.memory, reuse=after_lux, changed={"hall-pm25"}).kept == frozenset()


def test_nothing_is_kept_when_something_was_due_or_the_rules_changed() -> None:
    readings = {s: reading(s, 20, T0) for s in SENSOR_IDS}
    ev = _eval(T0, readings, EngineMemory())
    assert ev.next_due < T0 + 121
    assert _eval(ev.next_due, readings, ev.memory, reuse=ev, changed=()).kept == frozenset()  # due
    late = T0 + 121  # longer than resume_grace_s: a gap, whatever is due
    quiet = Evaluation(ev.decisions, ev.traces, ev.memory, next_due=late + 1, at=T0, ruleset=RULES)
    assert _eval(late, readings, ev.memory, reuse=quiet, changed=()).kept == frozenset()
    other = ruleset(PM25_HIGH)
    again = evaluate(other, SensorView(SENSORS, readings), T0 + 1, ev.memory, site=SITE, limits=LIMITS, reuse=ev)
    assert again.kept == frozenset()  # a reload: the new rules are evaluated in full
    assert _eval(T0 + 1, readings, ev.memory, reuse=ev, changed=()).kept  # and otherwise they are kept
