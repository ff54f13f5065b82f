"""The point's ramp from the config's ``safety:`` block: every change the rules make is ramped (a schedule
edge, a fallback, the end of an override); an override itself applies at once; a rule's own ramp wins."""

from __future__ import annotations

import json
from typing import Any

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
    # 250 K a minute from 4500 K down to 2700 K; the step at the edge itself is one minute's worth.
    assert got == [4250, 4000, 3750, 3500, 3250, 3000, 2750, 2700, 2700]


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
        assert (d.value, d.reason.fallback) == (2700 + 250, True)  # the first minute's step
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
    assert run.value(CLOSING, CCT) == 4250  # the night rule has no ramp: the point's applies
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
    assert run.value(T0 + 110, CCT, hall_lux=200) == 3393 + 250 - 63  # the same minute: 250 from 3330 in all
    assert run.value(T0 + 150, CCT, hall_lux=100) == 3330  # back within the minute's band
    assert run.value(T0 + 170, CCT, hall_lux=900) == 3580  # a new minute: 250 from where the output is
    # above the device's range the curve is clamped to 5000, and the ramp starts from what was given
    run = Runner(ruleset(rule), limits=RAMPED)
    assert run.value(T0, CCT, hall_lux=1000) == 5000
    assert run.value(T0 + 100, CCT, hall_lux=900) == 5000  # 8370 asked, clamped: the output stays put
    assert run.memory.ramp_from.get(CCT, 5000) == 5000


def test_a_ramps_minute_survives_a_restart() -> None:
    from daemon.engine import EngineMemory

    run = Runner(ruleset(DAY), limits=RAMPED)
    run.memory.outputs[CCT] = (2700.0, T0 - 600)
    assert run.value(T0, CCT) == 2950  # a minute's step towards 4500
    run.memory = EngineMemory.from_json(json.loads(json.dumps(run.memory.to_json())))  # the state file
    assert run.memory.ramp_from == {CCT: 2700.0}
    assert run.value(T0 + 30, CCT) == 2950  # the same minute: no second step after the restart
    assert run.value(T0 + 60, CCT) == 3200
