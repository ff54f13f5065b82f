"""The point's ramp from the config's ``safety:`` block: every change the rules make is ramped (a schedule
edge, a fallback, the end of an override); an override itself applies at once; a rule's own ramp wins."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from daemon.engine import Override, PointLimits
from daemon.engine.explain import explain_point
from tests.engine.helpers import LIMITS, T0, Runner, at, ruleset

CCT = "lights.cct"
RAMPED = {**LIMITS, CCT: PointLimits(2700, 5000, ramp_per_minute=250)}
DAY: dict[str, Any] = {"id": "day", "target": CCT, "when": [{"schedule": "opening-hours"}], "set": 4500}
NIGHT: dict[str, Any] = {"id": "night", "target": CCT, "when": [{"outside_schedule": "opening-hours"}], "set": 2700}
CLOSING = at(2026, 3, 4, 17, 30)


def test_closing_edge_is_ramped_at_the_points_rate() -> None:
    run = Runner(ruleset(DAY, NIGHT), limits=RAMPED)
    assert run.value(CLOSING - 60, CCT) == 4500
    got = [run.value(CLOSING + 60 * i, CCT) for i in range(9)]
    # At most 250 K a minute from 4500 K down to 2700 K: eight equal steps of 225 K, the first at the edge.
    assert got == [4275, 4050, 3825, 3600, 3375, 3150, 2925, 2700, 2700]


def test_without_a_point_ramp_the_edge_is_a_step() -> None:
    run = Runner(ruleset(DAY, NIGHT))
    run.value(CLOSING - 60, CCT)
    assert run.value(CLOSING, CCT) == 2700


def test_fallback_is_ramped_by_the_point() -> None:
    rule = {"id": "cct", "target": CCT, "set": {"curve": {"input": "hall-lux", "points": [[0, 2700], [1500, 5000]]}}}
    for ramp in ({"ramp_per_minute": 60}, {}):  # a rule's ramp never slows its fallback; the point's does
        run = Runner(ruleset({**rule, "safe_value": 4000, **ramp}), limits=RAMPED)
        run.step(T0, hall_lux=0)
        run.readings.clear()
        d = run.step(T0 + 10).decisions[CCT]
        assert d.value == pytest.approx(2700 + 1300 / 6) and d.reason.fallback  # the first of 6 steps
        assert d.reason.held_by == "ramp"


def test_override_applies_at_once_and_its_end_is_ramped() -> None:
    run = Runner(ruleset(DAY), limits=RAMPED)
    assert run.value(T0, CCT) == 4500
    run.memory.overrides[CCT] = Override(value=3000, until=T0 + 600, source="cli")
    assert run.value(T0 + 1, CCT) == 3000  # at once, not ramped
    assert run.value(T0 + 540, CCT) == 3000
    assert [run.value(T0 + 540 + 60 * i, CCT) for i in range(1, 8)] == [3250, 3500, 3750, 4000, 4250, 4500, 4500]
    assert run.last is not None and run.last.decisions[CCT].reason.held_by is None


def test_rules_own_ramp_wins_and_why_names_the_ramp() -> None:
    run = Runner(ruleset({**DAY, "ramp_per_minute": 600}, NIGHT), limits=RAMPED)
    run.value(CLOSING - 60, CCT)
    assert run.value(CLOSING, CCT) == 4275  # the night rule has no ramp: the point's applies
    run2 = Runner(ruleset(DAY, {**NIGHT, "ramp_per_minute": 600}), limits=RAMPED)
    run2.value(CLOSING - 60, CCT)
    d = run2.step(CLOSING).decisions[CCT]
    assert d.value == 3900 and "ramping at 600/min (the rule's ramp) towards 2700" in d.reason.text
    ev = run.step(CLOSING + 60)
    assert ev.decisions[CCT].reason.held_by == "ramp"
    text = explain_point(CCT, ev, previous=None, known=None, held_by=None, now=CLOSING + 60)
    assert "ramping: the point's safety ramp limits how fast the value may change" in text


def test_a_change_within_the_rate_is_one_step_and_a_minute_never_moves_more_than_the_rate() -> None:
    rule = {"id": "cct", "target": CCT, "set": {"curve": {"input": "hall-lux", "points": [[0, 2700], [1000, 9000]]}}}
    run = Runner(ruleset(rule), limits=RAMPED)
    assert run.value(T0, CCT, hall_lux=100) == 3330  # first output: nothing to ramp from
    assert run.value(T0 + 100, CCT, hall_lux=110) == 3393  # 63 K: at once, not spread over the minute
    assert run.value(T0 + 110, CCT, hall_lux=200) == 3330 + 630 / 3  # the same minute: from 3330, 1 of 3 steps
    assert run.value(T0 + 150, CCT, hall_lux=100) == 3330  # back within the minute's band
    # A new minute, from where the output is; the curve's 8370 is clamped to 5000 first: 1670 K in 7 steps.
    assert run.value(T0 + 170, CCT, hall_lux=900) == pytest.approx(3330 + 1670 / 7)
    # above the device's range the curve is clamped to 5000, and the ramp starts from what was given
    run = Runner(ruleset(rule), limits=RAMPED)
    assert run.value(T0, CCT, hall_lux=1000) == 5000
    assert run.value(T0 + 100, CCT, hall_lux=900) == 5000  # 8370 asked, clamped: the output stays put
    assert run.memory.ramp_from.get(CCT, 5000) == 5000


def test_a_ramps_minute_survives_a_restart() -> None:
    from daemon.engine import EngineMemory

    run = Runner(ruleset(DAY), limits=RAMPED)
    run.memory.outputs[CCT] = (2700.0, T0 - 600)
    assert run.value(T0, CCT) == 2925  # a minute's step towards 4500 (1800 K in 8 steps of 225)
    run.memory = EngineMemory.from_json(json.loads(json.dumps(run.memory.to_json())))  # the state file
    assert run.memory.ramp_from == {CCT: 2700.0}
    assert run.value(T0 + 30, CCT) == 2925  # the same minute: no second step after the restart
    assert run.value(T0 + 60, CCT) == 3150


def test_a_ramp_moves_in_equal_steps_none_too_small_for_the_deadband() -> None:
    # 336 K at 250 K a minute: 168 and 168, not 250 and a last 86 that a 100 K deadband would never write
    # (the device would stay 86 K off, and the next change would then be 336 K in one go).
    rule = {"id": "cct", "target": CCT, "set": {"curve": {"input": "hall-lux", "points": [[0, 2700], [1500, 5000]]}}}
    run = Runner(ruleset(rule), limits=RAMPED)
    run.memory.outputs[CCT] = (4237.0, T0 - 600)
    lux = (3901 - 2700) * 1500 / 2300
    assert [run.value(T0 + 60 * i, CCT, hall_lux=lux) for i in range(3)] == pytest.approx([4069, 3901, 3901])
    for total in (251, 499, 501, 1799, 2300):  # every step more than half the rate, whatever the distance
        run = Runner(ruleset(rule), limits=RAMPED)
        run.memory.outputs[CCT] = (2700.0, T0 - 600)
        lux = total * 1500 / 2300
        got = [2700.0] + [run.value(T0 + 60 * i, CCT, hall_lux=lux) or 0.0 for i in range(12)]
        steps = [b - a for a, b in itertools.pairwise(got) if b != a]
        assert got[-1] == pytest.approx(2700 + total) and all(125 < s <= 250 for s in steps), (total, steps)
